"""The gufo-snmp adapter: the only module that touches gufo-snmp's private parts.

:func:`bulk_walk` is the walk of gufo's ``GetBulkIter``, a response at a time instead of a varbind
at a time: same requests and the same end conditions (StopAsyncIteration from the codec at
endOfMibView, an empty response, or ``None`` where the walk leaves the subtree), without an
awaited ``__anext__`` per varbind. It uses the session's socket and send/receive helpers
(``SnmpSession._sock``, ``_send``, ``_recv``) and the codec's ``GetIter`` from the private
``gufo.snmp._fast``, so it is written for exactly :data:`WRITTEN_FOR` (checked at import, pinned
in pyproject.toml). tests/collector/test_gufo_adapter.py walks a real snmpd with it: several
responses, the end of the subtree, the end of the MIB view and an empty subtree.

It lives beside the SNMP driver rather than in ``runtime``: a driver needs it, and drivers import
nothing of the daemons' runtime.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from importlib.metadata import version

from gufo.snmp import ValueType
from gufo.snmp._fast import GetIter
from gufo.snmp.aio import SnmpSession

WRITTEN_FOR: Mapping[str, str] = {"gufo-snmp": "0.13.0"}


class AdapterVersionError(RuntimeError):
    """The installed library is not the version the adapter was checked against."""


def check_versions(installed: Mapping[str, str]) -> None:
    """Raise :class:`AdapterVersionError` naming every library whose version differs."""
    wrong = [
        f"{name} {installed.get(name)} (written for {expected})"
        for name, expected in WRITTEN_FOR.items()
        if installed.get(name) != expected
    ]
    if wrong:
        raise AdapterVersionError(
            "collector.snmp.gufo_adapter touches private parts of gufo-snmp and was not checked against "
            f"the installed version: {', '.join(wrong)}. Run tests/collector/test_gufo_adapter.py "
            "against it, then update WRITTEN_FOR and the pin in pyproject.toml."
        )


check_versions({"gufo-snmp": version("gufo-snmp")})


async def bulk_walk(
    session: SnmpSession,
    oid: str,
    max_repetitions: int,
    pace: Callable[[], Awaitable[None]] | None = None,
) -> list[tuple[str, ValueType]]:
    """Every ``(oid, value)`` under ``oid``, by GETBULK; raises what gufo's requests raise.
    ``pace`` is awaited before each request (a rate limit: discovery sweeps)."""
    sock = session._sock  # noqa: SLF001 - the adapter
    context = GetIter(oid, max_repetitions)
    result: list[tuple[str, ValueType]] = []
    while True:
        if pace is not None:
            await pace()
        await session._send(lambda: sock.send_get_bulk(context))  # noqa: SLF001
        try:
            batch = await session._recv(lambda: sock.recv_get_bulk(context))  # noqa: SLF001
        except StopAsyncIteration:  # the codec's end of the walk (endOfMibView)
            return result
        if not batch:
            return result
        for item in batch:
            if item is None:
                return result
            result.append(item)
