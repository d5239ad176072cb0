"""The durable outbox: order, delete only after ack, bounded with counted drops, survives reopen."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from agent.batcher import Batcher
from agent.metrics import AgentMetrics
from agent.outbox import Outbox, OutboxFull
from agent.settings import OutboxSettings
from collector.model import Observation, utcnow
from collector.wire import ObservationBatch, decode


def settings(tmp_path: Path, **overrides: object) -> OutboxSettings:
    return OutboxSettings.model_validate({"path": tmp_path / "outbox.db", **overrides})


async def fill(outbox: Outbox, count: int, size: int = 10) -> list[int]:
    ids = []
    for _ in range(count):
        seq = outbox.next_seq()
        ids.append(await outbox.append(seq, f"{seq:0{size}d}".encode()))
    return ids


async def test_rows_come_back_in_order_and_stay_until_deleted(tmp_path: Path) -> None:
    async with Outbox.open(settings(tmp_path)) as outbox:
        await fill(outbox, 5)
        rows = await outbox.read(limit=10)
        assert [r.seq for r in rows] == [0, 1, 2, 3, 4]
        assert [int(r.payload) for r in rows] == [0, 1, 2, 3, 4]
        assert [r.id for r in rows] == sorted(r.id for r in rows)
        # Reading is not consuming: without an ack the rows are still there.
        assert [r.seq for r in await outbox.read(limit=10)] == [0, 1, 2, 3, 4]
        await outbox.delete(rows[0].id)
        await outbox.delete(rows[2].id)
        assert [r.seq for r in await outbox.read(limit=10)] == [1, 3, 4]
        assert [r.seq for r in await outbox.read(after_id=rows[3].id, limit=10)] == [4]
        assert outbox.rows == 3
        await outbox.delete(rows[0].id)  # again: a no-op
        assert outbox.rows == 3


async def test_survives_reopen_and_boot_counter_increments(tmp_path: Path) -> None:
    async with Outbox.open(settings(tmp_path)) as outbox:
        first_boot = outbox.boot
        await fill(outbox, 3)
    async with Outbox.open(settings(tmp_path)) as outbox:
        assert outbox.boot == first_boot + 1
        assert outbox.rows == 3
        assert outbox.size_bytes == 30
        rows = await outbox.read(limit=10)
        assert [(r.boot, r.seq) for r in rows] == [(first_boot, 0), (first_boot, 1), (first_boot, 2)]
        # seq restarts at 0 in the new boot; the pair (boot, seq) stays unique and ordered.
        await fill(outbox, 1)
        rows = await outbox.read(limit=10)
        assert (rows[-1].boot, rows[-1].seq) == (first_boot + 1, 0)
        assert rows[-1].id > rows[-2].id
    async with Outbox.open(settings(tmp_path)) as outbox:
        assert outbox.boot == first_boot + 2


async def test_bounded_by_rows_drop_oldest_is_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = AgentMetrics()
    async with Outbox.open(settings(tmp_path, max_rows=4), metrics) as outbox:
        await fill(outbox, 7)
        assert outbox.rows == 4
        assert [r.seq for r in await outbox.read(limit=10)] == [3, 4, 5, 6]
        assert outbox.dropped == 3
        assert metrics.value("fernwart_outbox_dropped_total") == 3
        assert metrics.value("fernwart_outbox_rows") == 4


async def test_bounded_by_bytes_drop_oldest(tmp_path: Path) -> None:
    async with Outbox.open(settings(tmp_path, max_bytes=1024)) as outbox:
        await fill(outbox, 5, size=300)  # 3 fit in 1024 bytes
        assert [r.seq for r in await outbox.read(limit=10)] == [2, 3, 4]
        assert outbox.size_bytes == 900
        assert outbox.dropped == 2


async def test_drop_newest_refuses_and_counts(tmp_path: Path) -> None:
    metrics = AgentMetrics()
    async with Outbox.open(settings(tmp_path, max_rows=2, drop_policy="drop_newest"), metrics) as outbox:
        await fill(outbox, 2)
        with pytest.raises(OutboxFull):
            await outbox.append(outbox.next_seq(), b"x")
        assert [r.seq for r in await outbox.read(limit=10)] == [0, 1]
        assert metrics.value("fernwart_outbox_dropped_total") == 1


async def test_wait_helpers_wake_on_change(tmp_path: Path) -> None:
    async with Outbox.open(settings(tmp_path)) as outbox:
        waiter = asyncio.create_task(outbox.wait_for_rows_after(0))
        await asyncio.sleep(0)
        assert not waiter.done()
        (row_id,) = await fill(outbox, 1)
        async with asyncio.timeout(5):
            await waiter
        empty = asyncio.create_task(outbox.wait_empty())
        await asyncio.sleep(0)
        assert not empty.done()
        await outbox.delete(row_id)
        async with asyncio.timeout(5):
            await empty


async def test_batcher_writes_encoded_batches_with_boot_and_seq(tmp_path: Path) -> None:
    async with Outbox.open(settings(tmp_path)) as outbox:
        batcher = Batcher(outbox, site_id="s1", agent_id="a1", linger_s=0.05, max_batch=3)
        task = asyncio.create_task(batcher.run())
        for i in range(7):
            batcher.add(Observation(device_id=f"d{i}", driver="t", observed_at=utcnow()))
        async with asyncio.timeout(5):
            while outbox.rows < 3:
                await outbox.wait_changed()
        batcher.close()
        async with asyncio.timeout(5):
            await task
        rows = await outbox.read(limit=10)
        batches = []
        for row in rows:
            _, message = decode("fernwart/v1/s1/obs", row.payload)
            assert isinstance(message, ObservationBatch)
            assert (message.boot, message.seq) == (row.boot, row.seq)
            batches.append(message)
        assert [b.seq for b in batches] == [0, 1, 2]
        assert [o.device_id for b in batches for o in b.observations] == [f"d{i}" for i in range(7)]
        assert [len(b.observations) for b in batches] == [3, 3, 1]
        assert len({b.batch_id for b in batches}) == 3
        assert json.loads(rows[0].payload)["schema"] == 1
