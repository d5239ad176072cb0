"""The store without MQTT: firmware history across flushes, gaps filled across flushes, ownership."""

from __future__ import annotations

import asyncio
import gc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collector.wire import encode
from controller.storage import DeviceFilter, Received, Store
from controller.storage import models as m
from tests.controller.conftest import make_batch, make_observation, make_status, obs_age


def _received(message: Any) -> Received:
    return Received(f"fernwart/v1/{message.site_id}/obs", encode(message), datetime.now(UTC), message=message)


async def test_firmware_history_only_on_change_across_flushes(database_url: str) -> None:
    async with Store.open(database_url) as store:
        versions = ["1.0", "1.0", None, "1.1", "1.1", "1.0"]
        for seq, version in enumerate(versions):
            obs = make_observation("dev", firmware=version, observed_at=obs_age(100 - seq))
            await store.write_flush([_received(make_batch("s", "a", seq, [obs]))])
        rows, _ = await store.list_devices(DeviceFilter())
        device = await store.get_device(rows[0]["id"])
        assert device is not None
        assert [h["version"] for h in device["firmware_history"]] == ["1.0", "1.1", "1.0"]
        assert device["firmware_version"] == "1.0"


async def test_late_batches_fill_gaps_across_flushes(database_url: str) -> None:
    async with Store.open(database_url) as store:
        for seq in (0, 5):
            await store.write_flush([_received(make_batch("s", "a", seq, [make_observation("d")]))])
        assert [(g["from_seq"], g["to_seq"]) for g in await store.list_gaps()] == [(1, 4)]
        result = await store.write_flush([_received(make_batch("s", "a", 3, [make_observation("d")]))])
        assert (result.late_batches, result.filled) == (1, 1)
        assert [(g["from_seq"], g["to_seq"]) for g in await store.list_gaps()] == [(1, 2), (4, 4)]
        for seq in (1, 2, 4):
            await store.write_flush([_received(make_batch("s", "a", seq, [make_observation("d")]))])
        assert await store.list_gaps() == []


async def test_first_agent_owns_the_site_across_restarts(database_url: str) -> None:
    async with Store.open(database_url) as store:
        await store.write_flush([_received(make_batch("s", "agent-1", 0, [make_observation("d")]))])
    async with Store.open(database_url) as store:  # a new process: nothing cached
        result = await store.write_flush([_received(make_batch("s", "agent-2", 0, [make_observation("d")]))])
        assert [(r.code, r.reason) for r in result.rejected] == [
            ("agent_mismatch", "agent_id: site 's' belongs to agent 'agent-1', not 'agent-2'")
        ]
        assert result.stored_batches == 0


async def test_sqlite_wal_is_copied_back_beside_the_writer(tmp_path: Path) -> None:
    """Commits no longer checkpoint (below the 10,000-page backstop): the background checkpoint
    must copy the WAL into the database file, or the file would never grow."""
    db = tmp_path / "fernwart.db"
    async with Store.open(f"sqlite+aiosqlite:///{db}") as store:
        before = db.stat().st_size
        for seq in range(20):
            observations = [make_observation(f"d{seq}-{i}", padding=2000) for i in range(20)]
            await store.write_flush([_received(make_batch("s", "a", seq, observations))])
        deadline = asyncio.get_running_loop().time() + 30
        while db.stat().st_size < before + 800_000:  # 400 observations of 2 KB
            assert asyncio.get_running_loop().time() < deadline, "the WAL was not checkpointed"
            await asyncio.sleep(0.1)
        assert await store.count(m.OBSERVATIONS) == 400


async def test_flushes_leave_no_reference_cycles(database_url: str) -> None:
    """What a flush allocates is freed by reference counting: cyclic garbage piles up until the
    collector frees it all at once, a pause of the event loop (150 ms under load, see writer)."""
    async with Store.open(database_url) as store:

        async def flush(seq: int) -> None:
            observations = [make_observation(f"d{i}") for i in range(20)]
            status = make_status("s", "a", intervals={"d0": 60.0})
            await store.write_flush([_received(make_batch("s", "a", seq, observations)), _received(status)])

        for seq in range(3):  # first use: statement caches, prepared statements, type introspection
            await flush(seq)
        gc.collect()
        gc.disable()
        try:
            for seq in range(3, 13):
                await flush(seq)
            assert gc.collect() == 0
        finally:
            gc.enable()

