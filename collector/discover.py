"""Discovery: sweep addresses over SNMP, read the LLDP neighbours of what answers, merge.

Every address gets one GET of the system group; every device that answers also gets one walk
of its LLDP-MIB remote table (a switch lists its neighbours there; an endpoint has no table and
answers with an empty walk). Devices whose own SNMP is off but that announce themselves to a
switch over LLDP (phones, codecs) are found that way. All requests, retries included, go
through one :class:`RateLimiter`, and at most ``concurrency`` addresses are in flight.

No I/O besides SNMP, nothing printed: the ``fernwart discover`` command renders the result.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from collector.errors import AuthFailed, BadResponse, Unreachable
from collector.lldp.neighbours import REMOTE_SYSTEMS_DATA, Neighbour, neighbour_id, parse, slug
from collector.snmp import oids
from collector.snmp.client import SnmpClient
from collector.snmp.identify import Identification, identify
from collector.snmp.options import SnmpOptions
from collector.snmp.values import non_empty, text

SNMP = "snmp"


class RateLimiter:
    """A token bucket: on average ``rate`` acquisitions per second, at most ``burst`` at once.

    Callers that find the bucket empty reserve the next token (the level goes negative) and sleep
    until it is due, so concurrent callers are served in order and never exceed the rate."""

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._last = clock()
        self.acquired = 0

    async def acquire(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= 1
        self.acquired += 1
        if self._tokens < 0:
            await self._sleep(-self._tokens / self.rate)


@dataclass
class Found:
    """One device: where, how it was found (``snmp``, ``lldp:<switch address>``), who it is."""

    id: str
    address: str | None
    how: list[str]
    identification: Identification
    snmp: bool = False  # answered our SNMP request: pollable with the credentials used
    sys_name: str | None = None
    sys_descr: str | None = None
    sys_object_id: str | None = None
    chassis_id: str | None = None
    # For a device seen over LLDP: "<switch address> port <port>".
    seen_on: list[str] = field(default_factory=list)
    neighbours: int = 0  # LLDP neighbours this device reported (> 0: a switch, an LLDP source)
    error: str | None = None  # SNMP answered but refused (SNMPv3 credentials)


@dataclass
class Discovery:
    found: list[Found]
    swept: int
    silent: list[str]  # swept addresses that gave no SNMP answer and no LLDP neighbour named
    requests: int
    elapsed_s: float


def _identification(sys_descr: str, sys_object_id: str = "") -> Identification:
    return identify(sys_descr, sys_object_id, {})


async def _probe(
    address: str, options: SnmpOptions, limiter: RateLimiter
) -> tuple[Found | None, list[Neighbour]]:
    client = SnmpClient(options.model_copy(update={"host": address}), pace=limiter.acquire)
    try:
        session = await client.open()
        system = await client.get_many(session, oids.SYSTEM_GROUP, "system group")
    except Unreachable:
        return None, []
    except (AuthFailed, BadResponse) as err:
        found = Found(slug(address), address, [SNMP], Identification(), snmp=False, error=str(err)[:1024])
        return found, []
    if not system:
        return None, []
    sys_descr = text(system.get(oids.SYS_DESCR), 8192) or ""
    sys_object_id = text(system.get(oids.SYS_OBJECT_ID)) or ""
    sys_name = non_empty(system.get(oids.SYS_NAME), 255)
    found = Found(
        slug(sys_name or "") or slug(address),
        address,
        [SNMP],
        _identification(sys_descr, sys_object_id),
        snmp=True,
        sys_name=sys_name,
        sys_descr=sys_descr or None,
        sys_object_id=sys_object_id or None,
    )
    try:
        neighbours = parse(await client.walk(session, REMOTE_SYSTEMS_DATA, "LLDP-MIB remote table"))
    except (Unreachable, BadResponse):
        neighbours = []  # no LLDP-MIB (or it stopped answering): an endpoint, not a switch
    found.neighbours = len(neighbours)
    return found, neighbours


def _merge(found: dict[str, Found], switch: Found, neighbour: Neighbour) -> None:
    how = f"lldp:{switch.address}"
    where = f"{switch.address} local port {neighbour.local_port}"
    by_address = {f.address: f for f in found.values() if f.address}
    known = by_address.get(neighbour.address) if neighbour.address else None
    if known is None:
        known = found.get(neighbour_id(neighbour))
    if known is None:
        known = Found(
            neighbour_id(neighbour),
            neighbour.address,
            [],
            _identification(neighbour.sys_descr or ""),
            sys_name=neighbour.sys_name,
            sys_descr=neighbour.sys_descr,
            chassis_id=neighbour.chassis_id,
        )
        found[_key(known)] = known
    if how not in known.how:
        known.how.append(how)
    if where not in known.seen_on:
        known.seen_on.append(where)
    known.chassis_id = known.chassis_id or neighbour.chassis_id


def _key(found: Found) -> str:
    return found.address or found.id


async def discover(
    addresses: Iterable[str],
    options: SnmpOptions,
    *,
    rate: float,
    concurrency: int,
    limiter: RateLimiter | None = None,
) -> Discovery:
    """Sweep ``addresses`` with ``options`` (its ``host`` is replaced by each address)."""
    limiter = limiter or RateLimiter(rate)
    semaphore = asyncio.Semaphore(concurrency)
    started = time.monotonic()
    swept = list(addresses)

    async def one(address: str) -> tuple[Found | None, list[Neighbour]]:
        async with semaphore:
            return await _probe(address, options, limiter)

    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(one(address), name=f"discover:{address}") for address in swept]
    results = [task.result() for task in tasks]
    found: dict[str, Found] = {_key(f): f for f, _ in results if f is not None}
    for switch, neighbours in results:
        for neighbour in neighbours:
            assert switch is not None
            _merge(found, switch, neighbour)
    _unique_ids(list(found.values()))
    silent = [a for a in swept if a not in found]
    ordered = sorted(found.values(), key=lambda f: (f.address is None, _sort_key(f.address), f.id))
    return Discovery(ordered, len(swept), silent, limiter.acquired, time.monotonic() - started)


def _sort_key(address: str | None) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in (address or "").split("."))
    except ValueError:
        return ()


def _unique_ids(found: list[Found]) -> None:
    """Two devices with the same system name (phones announcing their model) get their address
    (or chassis id) appended, so every suggested device id stays unique."""
    seen: dict[str, int] = {}
    for item in found:
        seen[item.id] = seen.get(item.id, 0) + 1
    for item in found:
        if seen[item.id] > 1:
            item.id = slug(f"{item.id}-{item.address or item.chassis_id or len(seen)}")
