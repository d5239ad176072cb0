"""Which devices the matching service recomputes after flushes: each change once, none twice."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from collector.wire import encode
from controller.match_keys import CHANGED as _CHANGED
from controller.matching import MatchingService
from controller.storage import Received, Store
from controller.storage.records import prepared
from tests.controller.conftest import make_batch, make_observation, obs_age, open_store

_seq = itertools.count()


def _items(store: Store, firmware: str, age: float) -> list[Received]:
    """One flush's items for device d, prepared as the store hands them to flush listeners."""
    obs = make_observation("d", firmware=firmware, observed_at=obs_age(age))
    batch = make_batch("s", "a", next(_seq), [obs])
    items = [Received("fernwart/v1/s/obs", encode(batch), datetime.now(UTC), message=batch)]
    return prepared(items, copy=store.dialect == "postgresql")


async def test_each_change_is_recomputed_once(database_url: str) -> None:
    async with open_store(database_url) as store:
        service = MatchingService(store, CollectorRegistry())
        await service.start()
        first = _items(store, "1.0", 30)
        await store.write_flush(first)
        service.on_flush(first)
        keys, service._pending = service._pending, {}  # what run() takes for one recompute
        assert list(keys) == [("s", "d")]
        # Another flush commits before the recompute reads the device. The device is not known
        # yet, so the flush queues it again; the read sees that flush, so nothing stays queued.
        second = _items(store, "1.0", 20)
        await store.write_flush(second)
        service.on_flush(second)
        assert list(service._pending) == [("s", "d")]
        await service.recompute_devices(keys)
        service._still_pending()
        assert service._pending == {}

        # A change the read cannot have seen (heard of, not yet read) stays queued.
        third = _items(store, "2.0", 10)
        await store.write_flush(third)
        service.on_flush(third)
        keys, service._pending = service._pending, {}
        service.on_flush(_items(store, "3.0", 5))
        await service.recompute_devices(keys)
        service._still_pending()
        assert service._known["s", "d"].firmware_version == "2.0"
        assert list(service._pending) == [("s", "d")]

        # Two different reports of one device queued together: recomputed whatever it reads.
        service._pending = {}
        service.on_flush(_items(store, "4.0", 4))
        service.on_flush(_items(store, "2.0", 3))
        service.on_flush(_items(store, "5.0", 2))
        keys, service._pending = service._pending, {}
        await service.recompute_devices(keys)
        service._pending = keys
        service._still_pending()
        assert list(service._pending) == [("s", "d")]


async def test_a_failed_recompute_keeps_its_devices_and_later_changes(database_url: str) -> None:
    """A recompute that fails (the database briefly away) puts its devices back in the queue; a
    device reported otherwise meanwhile is recomputed whatever it reads, and the retry stores it."""
    async with open_store(database_url) as store:
        registry = CollectorRegistry()
        service = MatchingService(store, registry)
        await service.start()
        first = _items(store, "1.0", 30)
        await store.write_flush(first)
        service.on_flush(first)
        recompute = service.recompute_devices
        calls: list[list[tuple[str, str]]] = []

        async def flaky(keys: dict[tuple[str, str], object]) -> int:
            calls.append(list(keys))
            if len(calls) == 1:
                newer = _items(store, "2.0", 20)
                await store.write_flush(newer)
                service.on_flush(newer)  # queued while the failing recompute runs
                raise RuntimeError("database away")
            return await recompute(keys)

        service.recompute_devices = flaky  # type: ignore[assignment,method-assign]
        stop = asyncio.Event()
        runner = asyncio.create_task(service.run(stop))
        try:
            async with asyncio.timeout(10):
                while not registry.get_sample_value("fernwart_findings_store_failures_total"):
                    await asyncio.sleep(0.01)
                assert service._pending == {("s", "d"): _CHANGED}  # two reasons: whatever it reads
                while len(calls) < 2 or service._pending:
                    await asyncio.sleep(0.01)
        finally:
            stop.set()
            await runner
        assert calls == [[("s", "d")], [("s", "d")]]
        assert service._known["s", "d"].firmware_version == "2.0"
