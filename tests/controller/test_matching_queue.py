"""Which devices the matching service recomputes after flushes: each change once, none twice."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from collector.wire import encode
from controller.matching import MatchingService
from controller.storage import Received, Store
from controller.storage.records import prepared
from tests.controller.conftest import make_batch, make_observation, obs_age

_seq = itertools.count()


def _items(store: Store, firmware: str, age: float) -> list[Received]:
    """One flush's items for device d, prepared as the store hands them to flush listeners."""
    obs = make_observation("d", firmware=firmware, observed_at=obs_age(age))
    batch = make_batch("s", "a", next(_seq), [obs])
    items = [Received("fernwart/v1/s/obs", encode(batch), datetime.now(UTC), message=batch)]
    return prepared(items, copy=store.dialect == "postgresql")


async def test_each_change_is_recomputed_once(database_url: str) -> None:
    async with Store.open(database_url) as store:
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
