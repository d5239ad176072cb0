"""A thin client over gufo-snmp: per-request timeout, our own retries, errors translated.

gufo-snmp's exceptions stop here; the driver sees only :mod:`collector.errors` types.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from gufo.snmp import (
    Aes128Key,
    Aes192Key,
    Aes256Key,
    BaseAuthKey,
    BasePrivKey,
    DesKey,
    Md5Key,
    Sha1Key,
    Sha224Key,
    Sha256Key,
    Sha384Key,
    Sha512Key,
    SnmpAuthError,
    SnmpError,
    User,
    ValueType,
)
from gufo.snmp.aio import SnmpSession

from collector.errors import AuthFailed, BadResponse, Unreachable
from collector.snmp.gufo_adapter import bulk_walk
from collector.snmp.options import SnmpOptions

T = TypeVar("T")

_AUTH_KEYS: dict[str, type[BaseAuthKey]] = {
    "MD5": Md5Key,
    "SHA": Sha1Key,
    "SHA-224": Sha224Key,
    "SHA-256": Sha256Key,
    "SHA-384": Sha384Key,
    "SHA-512": Sha512Key,
}
_PRIV_KEYS: dict[str, type[BasePrivKey]] = {
    "DES": DesKey,
    "AES": Aes128Key,
    "AES-192": Aes192Key,
    "AES-256": Aes256Key,
}
# RFC 3414 §3.2 step 7: a message more than 150 s off the agent's clock is dropped. gufo-snmp
# learns engine boots/time once per refresh, so a kept v3 session re-synchronises well before.
_V3_RESYNC_S = 100.0


def _user(options: SnmpOptions) -> User:
    assert options.user is not None
    auth = priv = None
    if options.auth_key is not None:
        auth = _AUTH_KEYS[options.auth_proto](options.auth_key.get_secret_value().encode())
    if options.priv_key is not None:
        priv = _PRIV_KEYS[options.priv_proto](options.priv_key.get_secret_value().encode())
    return User(options.user, auth_key=auth, priv_key=priv)


class SnmpClient:
    """One device's SNMP requests.

    SNMPv2c builds a fresh session (one UDP socket) per :meth:`open` — cheap, and no file
    descriptor stays open between polls. SNMPv3 keeps its session, because engine discovery and
    time synchronisation cost a round trip each.
    """

    def __init__(self, options: SnmpOptions, pace: Callable[[], Awaitable[None]] | None = None) -> None:
        """``pace`` is awaited before every request sent, retries included (a rate limit)."""
        self._options = options
        self._pace = pace or _no_pace
        self._target = f"{options.host}:{options.port}"
        self._address: str | None = None
        self._v3_session: SnmpSession | None = None
        self._v3_synced_at = 0.0
        self._user = _user(options) if options.user is not None else None

    @property
    def target(self) -> str:
        return self._target

    async def _resolve(self) -> str:
        if self._address is None:
            try:
                self._address = str(ipaddress.ip_address(self._options.host))
            except ValueError:
                try:
                    infos = await asyncio.get_running_loop().getaddrinfo(
                        self._options.host, self._options.port, type=socket.SOCK_DGRAM
                    )
                except OSError as err:
                    raise Unreachable(f"{self._target}: cannot resolve host: {err}") from err
                self._address = str(infos[0][4][0])
        return self._address

    async def open(self) -> SnmpSession:
        """A session ready for requests; raises Unreachable/AuthFailed when v3 discovery fails."""
        address = await self._resolve()
        opts = self._options
        if self._user is None:
            assert opts.community is not None
            return SnmpSession(
                address,
                opts.port,
                community=opts.community.get_secret_value(),
                timeout=opts.timeout_s,
                max_repetitions=opts.max_repetitions,
            )
        now = time.monotonic()
        if self._v3_session is None or now - self._v3_synced_at > _V3_RESYNC_S:
            session = self._v3_session or SnmpSession(
                address,
                opts.port,
                user=self._user,
                timeout=opts.timeout_s,
                max_repetitions=opts.max_repetitions,
            )
            self._v3_session = None
            await self.request(lambda: self._paced(session.refresh), "engine discovery")
            self._v3_session = session
            self._v3_synced_at = now
        return self._v3_session

    def forget(self) -> None:
        """Drop a kept session (after a failure) so the next poll discovers the engine again."""
        self._v3_session = None

    async def request(self, operation: Callable[[], Awaitable[T]], what: str) -> T:
        """Run one request, sending it again on timeout up to ``retries`` times.

        Raises Unreachable (no answer), AuthFailed (v3 credentials refused) or BadResponse.
        """
        attempts = self._options.retries + 1
        for _ in range(attempts):
            try:
                return await operation()
            except TimeoutError:
                continue
            except SnmpAuthError as err:
                self.forget()
                raise AuthFailed(f"{self._target}: {what}: SNMPv3 credentials refused ({err})") from err
            except SnmpError as err:
                raise BadResponse(f"{self._target}: {what}: {type(err).__name__}: {err}") from err
            except OSError as err:
                self.forget()
                raise Unreachable(f"{self._target}: {what}: {err}") from err
        self.forget()
        raise Unreachable(
            f"{self._target}: {what}: no answer after {attempts} attempt(s) of {self._options.timeout_s}s"
        )

    async def _paced(self, operation: Callable[[], Awaitable[T]]) -> T:
        await self._pace()
        return await operation()

    async def get_many(self, session: SnmpSession, oids: tuple[str, ...], what: str) -> dict[str, ValueType]:
        return await self.request(lambda: self._paced(lambda: session.get_many(oids)), what)

    async def walk(self, session: SnmpSession, oid: str, what: str) -> list[tuple[str, ValueType]]:
        """GETBULK through the subtree under ``oid``; a retry restarts the walk of that subtree."""
        return await self.request(
            lambda: bulk_walk(session, oid, self._options.max_repetitions, self._pace), what
        )


async def _no_pace() -> None:
    return None
