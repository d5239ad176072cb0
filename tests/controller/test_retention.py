"""Retention: old observations, batches, dead letters and superseded firmware and component
history are pruned in chunks, on SQLite and PostgreSQL; a device's current firmware row (and each
component's) stays however old."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
import structlog

from controller.inventory import prune_once
from controller.metrics import Metrics
from controller.settings import settings_from_dict
from controller.storage import Store
from controller.storage import models as m

NOW = datetime.now(UTC)


def _days(n: float) -> datetime:
    return NOW - timedelta(days=n)


async def _fill(store: Store) -> None:
    batches = [(str(uuid.uuid4()), age) for age in (1, 10, 40, 45, 60)]
    async with store.writing() as conn:
        await conn.execute(
            sa.insert(m.BATCHES),
            [
                {
                    "batch_id": batch_id,
                    "site_id": "site-1",
                    "agent_id": "agent-1",
                    "boot": 1,
                    "seq": seq,
                    "sent_at": _days(age),
                    "stored_at": _days(age),
                    "observations": 1,
                }
                for seq, (batch_id, age) in enumerate(batches)
            ],
        )
        await conn.execute(
            sa.insert(m.OBSERVATIONS),
            [
                {
                    "site_id": "site-1",
                    "device_id": "dev-1",
                    "batch_id": b,
                    "observed_at": _days(age),
                    "position": 0,
                }
                for b, age in batches
            ],
        )
        history = [
            ("dev-1", "1.0", 1000),
            ("dev-1", "2.0", 800),
            ("dev-1", "3.0", 10),
            ("dev-2", "9.0", 2000),
        ]
        await conn.execute(
            sa.insert(m.FIRMWARE_HISTORY),
            [
                {"site_id": "site-1", "device_id": d, "version": v, "first_seen": _days(a)}
                for d, v, a in history
            ],
        )
        components = [
            ("dev-1", "teams_app", "4.0", 1000),
            ("dev-1", "teams_app", "5.0", 10),
            ("dev-1", "camera", "1.0", 900),  # old, but the camera's only row: it runs it now
            ("dev-2", "teams_app", "4.1", 2000),
        ]
        await conn.execute(
            sa.insert(m.COMPONENT_HISTORY),
            [
                {"site_id": "site-1", "device_id": d, "component": c, "version": v, "first_seen": _days(a)}
                for d, c, v, a in components
            ],
        )
        await conn.execute(
            sa.insert(m.DEAD_LETTERS),
            [
                {
                    "topic": "t",
                    "payload": b"x",
                    "size": 1,
                    "reason_code": "bad_json",
                    "reason": "r",
                    "received_at": _days(a),
                }
                for a in (1, 31, 32)
            ],
        )


async def _count(store: Store, table: sa.Table) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


async def test_old_rows_are_pruned_in_chunks_and_current_firmware_stays(database_url: str) -> None:
    settings = settings_from_dict(
        {
            "database": {"url": database_url},
            "retention": {
                "observations_days": 30,
                "firmware_history_days": 730,
                "dead_letters_days": 30,
                "chunk_rows": 1,
            },
        }
    )
    metrics = Metrics()
    async with Store.open(database_url) as store:
        await _fill(store)
        with structlog.testing.capture_logs() as logs:
            pruned = await prune_once(settings, store, metrics)
        assert pruned == {
            "observations": 3,
            "batches": 3,
            "firmware_history": 2,
            "component_history": 1,
            "dead_letters": 2,
        }
        assert await _count(store, m.OBSERVATIONS) == 2
        assert await _count(store, m.BATCHES) == 2  # those stored within 30 days + 1 day margin
        async with store.engine.connect() as conn:
            kept = sorted(
                (
                    await conn.execute(
                        sa.select(m.FIRMWARE_HISTORY.c.device_id, m.FIRMWARE_HISTORY.c.version)
                    )
                ).all()
            )
        # dev-1: 1.0 and 2.0 superseded and past 730 days; dev-2's only row is what it runs now.
        assert [tuple(row) for row in kept] == [("dev-1", "3.0"), ("dev-2", "9.0")]
        async with store.engine.connect() as conn:
            table = m.COMPONENT_HISTORY
            kept = sorted(
                (await conn.execute(sa.select(table.c.device_id, table.c.component, table.c.version))).all()
            )
        assert [tuple(row) for row in kept] == [
            ("dev-1", "camera", "1.0"),
            ("dev-1", "teams_app", "5.0"),
            ("dev-2", "teams_app", "4.1"),
        ]
        assert await _count(store, m.DEAD_LETTERS) == 1
        # Again: nothing left to prune.
        assert set((await prune_once(settings, store, metrics)).values()) == {0}
    (line,) = [e for e in logs if e["event"] == "retention_pruned"]  # one line per pass
    assert line["observations"] == 3
    assert metrics.registry.get_sample_value("fernwart_retention_pruned_total", {"table": "batches"}) == 3
