"""The store without MQTT: firmware history across flushes, gaps filled across flushes, ownership."""

from __future__ import annotations

import asyncio
import gc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from collector.model import Observation
from collector.wire import AgentState, encode
from controller.shapes import prepare_batch
from controller.storage import DeviceFilter, Received, Store, enrollment, migrate
from controller.storage import models as m
from controller.storage.repository import create_engine
from controller.storage.writer import FlushWriter
from tests.controller.conftest import make_batch, make_observation, make_status, obs_age, open_store


def _received(message: Any) -> Received:
    return Received(f"fernwart/v1/{message.site_id}/obs", encode(message), datetime.now(UTC), message=message)


async def test_firmware_history_only_on_change_across_flushes(database_url: str) -> None:
    async with open_store(database_url) as store:
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
    async with open_store(database_url) as store:
        for seq in (0, 5):
            await store.write_flush([_received(make_batch("s", "a", seq, [make_observation("d")]))])
        assert [(g["from_seq"], g["to_seq"]) for g in await store.list_gaps()] == [(1, 4)]
        result = await store.write_flush([_received(make_batch("s", "a", 3, [make_observation("d")]))])
        assert (result.late_batches, result.filled) == (1, 1)
        assert [(g["from_seq"], g["to_seq"]) for g in await store.list_gaps()] == [(1, 2), (4, 4)]
        for seq in (1, 2, 4):
            await store.write_flush([_received(make_batch("s", "a", seq, [make_observation("d")]))])
        assert await store.list_gaps() == []


async def test_only_the_enrolled_agent_of_an_enrolled_site_is_accepted(database_url: str) -> None:
    async with open_store(database_url, sites=(("s", "agent-1"),)) as store:
        result = await store.write_flush(
            [
                _received(make_batch("s", "agent-1", 0, [make_observation("d")])),
                _received(make_batch("s", "agent-2", 0, [make_observation("d")])),
                _received(make_batch("unknown", "agent-1", 0, [make_observation("d")])),
                _received(make_status("unknown", "agent-9")),
            ]
        )
        assert [(r.code, r.reason) for r in result.rejected] == [
            ("agent_mismatch", "agent_id: site 's' belongs to agent 'agent-1', not 'agent-2'"),
            ("not_enrolled", "site_id: site 'unknown' is not enrolled"),
            ("not_enrolled", "site_id: site 'unknown' is not enrolled"),
        ]
        assert result.stored_batches == 1
        assert await store.count(m.SITES) == 1  # nothing claimed a site
        assert await store.dead_letter_counts() == {"agent_mismatch": 1, "not_enrolled": 2}


async def test_an_unenrolled_site_is_refused_and_can_be_enrolled_for_another_agent(database_url: str) -> None:
    """The claim can be released: unenroll, enroll with another agent; a second controller
    process on the same database sees each change from its next flush on (nothing cached)."""
    async with (
        open_store(database_url, sites=(("s", "old-agent"),)) as first,
        Store.open(database_url) as second,
    ):
        assert (
            await first.write_flush([_received(make_batch("s", "old-agent", 0, [make_observation("d")]))])
        ).stored_batches == 1
        assert await enrollment.unenroll(first, "s") is not None
        refused = await second.write_flush(
            [_received(make_batch("s", "old-agent", 1, [make_observation("d")]))]
        )
        assert [r.code for r in refused.rejected] == ["not_enrolled"]
        await enrollment.enroll(first, "s", "new-agent")
        result = await second.write_flush(
            [
                _received(make_status("s", "new-agent")),
                _received(make_batch("s", "new-agent", 0, [make_observation("d", firmware="2.0")])),
                _received(make_status("s", "old-agent", state=AgentState.OFFLINE)),
            ]
        )
        assert result.stored_batches == 1
        assert [r.code for r in result.rejected] == ["agent_mismatch"]
        rows, _ = await second.list_devices(DeviceFilter(site="s"))
        assert [(r["agent_id"], r["firmware_version"]) for r in rows] == [("new-agent", "2.0")]


async def test_a_status_for_another_agent_is_refused(database_url: str) -> None:
    """A retained "offline" naming a live agent, published on another site's topic (or for a site
    nobody enrolled), never marks that agent offline."""
    sites = (("s", "a"), ("other", "b"))
    async with open_store(database_url, sites=sites) as store:
        await store.write_flush([_received(make_status("s", "a"))])
        forged = [
            make_status("other", "a", state=AgentState.OFFLINE),  # agent a on site other's topic
            make_status("nowhere", "a", state=AgentState.OFFLINE),
        ]
        result = await store.write_flush([_received(status) for status in forged])
        assert [r.code for r in result.rejected] == ["agent_mismatch", "not_enrolled"]
        assert result.offline_agents == []
        assert [(a["agent_id"], a["state"]) for a in await store.list_agents()] == [("a", "online")]


async def test_a_batch_from_the_future_is_refused(database_url: str) -> None:
    """A batch stamped beyond max_future_skew_s (sent_at, or any observed_at) is a dead letter:
    it would pin the device's firmware, since a device row only moves forward in time."""
    async with open_store(database_url, max_future_skew_s=300) as store:
        now = datetime.now(UTC)
        ok = make_batch(
            "s", "a", 0, [make_observation("d", firmware="1.0", observed_at=now + timedelta(seconds=60))]
        )
        pinned = make_batch(
            "s",
            "a",
            1,
            [make_observation("d", firmware="6.6.6", observed_at=datetime(2099, 1, 1, tzinfo=UTC))],
        )
        late_clock = make_batch("s", "a", 2, [make_observation("d", firmware="6.6.6")])
        late_clock = late_clock.model_copy(update={"sent_at": now + timedelta(hours=1)})
        result = await store.write_flush([_received(ok), _received(pinned), _received(late_clock)])
        assert result.stored_batches == 1
        assert [r.code for r in result.rejected] == ["future_timestamp", "future_timestamp"]
        assert "observed_at 2099-01-01T00:00:00+00:00 is more than 300s ahead" in result.rejected[0].reason
        assert result.rejected[1].reason.startswith("sent_at: ")
        rows, _ = await store.list_devices(DeviceFilter(site="s"))
        assert [r["firmware_version"] for r in rows] == ["1.0"]


async def test_sqlite_wal_is_copied_back_beside_the_writer(tmp_path: Path) -> None:
    """Commits no longer checkpoint (below the 10,000-page backstop): the background checkpoint
    must copy the WAL into the database file, or the file would never grow."""
    db = tmp_path / "fernwart.db"
    async with open_store(f"sqlite+aiosqlite:///{db}") as store:
        before = db.stat().st_size
        for seq in range(20):
            observations = [make_observation(f"d{seq}-{i}", padding=2000) for i in range(20)]
            await store.write_flush([_received(make_batch("s", "a", seq, observations))])
        deadline = asyncio.get_running_loop().time() + 30
        while db.stat().st_size < before + 800_000:  # 400 observations of 2 KB
            assert asyncio.get_running_loop().time() < deadline, "the WAL was not checkpointed"
            await asyncio.sleep(0.1)
        assert await store.count(m.OBSERVATIONS) == 400


async def test_one_flush_derives_device_and_history_as_flushes_do(database_url: str) -> None:
    """Several observations of one device in one flush, across batches and out of order: the
    history and the device row are what one flush per observation gives (on PostgreSQL they are
    derived in SQL from the staged rows, on SQLite in Python: the same rules)."""
    async with open_store(database_url, tenant_of=lambda site: f"tenant-of-{site}") as store:
        at = {age: obs_age(age) for age in (50, 40, 30, 20, 10, 5, 1)}
        first = make_batch("s", "a", 0, [make_observation("dev", firmware="1.1", observed_at=at[30])])
        second = make_batch(
            "s",
            "a",
            1,
            [
                make_observation("dev", firmware="1.0", observed_at=at[10]),
                make_observation("dev", firmware="1.0", observed_at=at[50]),
                make_observation("dev", firmware=None, observed_at=at[40]),
                make_observation("dev", firmware="1.1", observed_at=at[20]),
                make_observation("other", firmware=None, observed_at=at[20]),
            ],
        )
        result = await store.write_flush([_received(first), _received(second)])
        assert result.observations == 6
        rows, _ = await store.list_devices(DeviceFilter())
        by_id = {row["device_id"]: row for row in rows}
        device = await store.get_device(by_id["dev"]["id"])
        assert device is not None
        history = [(h["version"], h["first_seen"]) for h in device["firmware_history"]]
        assert history == [("1.0", at[50]), ("1.1", at[30]), ("1.0", at[10])]
        assert (device["firmware_version"], device["last_seen"]) == ("1.0", at[10])
        assert (device["tenant"], device["vendor"], device["serial"]) == ("tenant-of-s", "cisco", "SN-dev")
        other = await store.get_device(by_id["other"]["id"])
        assert other is not None
        assert (other["firmware_version"], other["firmware_history"]) == (None, [])

        # Newer, without a firmware: the stored firmware stays, no history row.
        await store.write_flush(
            [_received(make_batch("s", "a", 2, [make_observation("dev", firmware=None, observed_at=at[5])]))]
        )
        device = await store.get_device(by_id["dev"]["id"])
        assert device is not None
        assert (device["firmware_version"], device["last_seen"]) == ("1.0", at[5])
        assert len(device["firmware_history"]) == 3

        # Older than the device row (a late batch): the row stays as it is.
        late = make_observation("dev", firmware="1.1", observed_at=at[40])
        await store.write_flush([_received(make_batch("s", "a", 3, [late]))])
        device = await store.get_device(by_id["dev"]["id"])
        assert device is not None
        assert (device["firmware_version"], device["last_seen"]) == ("1.0", at[5])
        assert await store.count(m.OBSERVATIONS) == 8


async def test_text_survives_the_copy_format(database_url: str) -> None:
    """Non-ASCII text, empty strings and missing optional fields stored exactly (on PostgreSQL
    they travel in COPY's binary format, encoded by controller.shapes)."""
    async with open_store(database_url) as store:
        base = make_observation("raum-3", firmware="RoomOS 11.9 \u00df \u260e", observed_at=obs_age(3))
        model = "Gr\u00f6\u00dfe"
        identity = base.identity.model_copy(update={"serial": None, "hostname": "", "model": model})
        obs = base.model_copy(update={"identity": identity, "reachable": False})
        await store.write_flush([_received(make_batch("s", "a", 0, [obs]))])
        rows, _ = await store.list_devices(DeviceFilter())
        (row,) = rows
        device = await store.get_device(row["id"])
        assert device is not None
        assert (device["firmware_version"], device["model"]) == ("RoomOS 11.9 \u00df \u260e", model)
        assert (device["serial"], device["hostname"], device["reachable"]) == (None, "", False)
        assert device["last_seen"] == obs.observed_at
        (stored,) = await store.observations("s", "raum-3")
        assert Observation.model_validate(stored["observation"]) == obs


async def test_flushes_leave_no_reference_cycles(database_url: str) -> None:
    """What a flush allocates is freed by reference counting: cyclic garbage piles up until the
    collector frees it all at once, a pause of the event loop (150 ms under load, see writer)."""
    async with open_store(database_url) as store:

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


async def test_batches_prepared_with_or_without_copy_rows_are_stored_alike(database_url: str) -> None:
    """Decode workers add COPY rows only for PostgreSQL; a batch prepared without them (inline,
    tools) is encoded by the writer, one prepared with them is stored from them."""
    async with open_store(database_url) as store:
        for seq, copy in enumerate((False, True)):
            batch = make_batch("s", "a", seq, [make_observation(f"d{seq}", observed_at=obs_age(5))])
            prepared = prepare_batch(batch, copy=copy)
            assert (prepared.copy is not None) == copy
            received = Received("fernwart/v1/s/obs", encode(batch), datetime.now(UTC), message=prepared)
            result = await store.write_flush([received])
            assert (result.stored_batches, result.observations) == (1, 1)
        rows, total = await store.list_devices(DeviceFilter())
        assert total == 2
        assert {row["firmware_version"] for row in rows} == {"11.5.1"}


async def test_device_row_follows_status_vendor_and_tenant_changes(database_url: str) -> None:
    """A device reporting again keeps its indexed columns unless they change (SQLite: a plain
    UPDATE then); announced → active, stale → active, a new vendor and a new tenant all land."""
    tenants = {"s": "first"}

    async def device(store: Store) -> dict[str, Any]:
        rows, total = await store.list_devices(DeviceFilter())
        assert total == 1
        return rows[0]

    async with open_store(database_url, tenant_of=lambda site: tenants[site]) as store:
        await store.write_flush([_received(make_status("s", "a", intervals={"dev": 60}))])
        assert (await device(store))["status"] == "unknown"
        await store.write_flush(
            [_received(make_batch("s", "a", 0, [make_observation("dev", observed_at=obs_age(900))]))]
        )
        row = await device(store)
        assert (row["status"], row["vendor"], row["tenant"]) == ("active", "cisco", "first")
        assert (
            await store.mark_stale(
                now_epoch=datetime.now(UTC).timestamp(), after_intervals=3, default_interval_s=60
            )
            == 1
        )
        assert (await device(store))["status"] == "stale"
        await store.write_flush(
            [_received(make_batch("s", "a", 1, [make_observation("dev", observed_at=obs_age(30))]))]
        )
        row = await device(store)
        assert (row["status"], row["vendor"], row["firmware_version"]) == ("active", "cisco", "11.5.1")
        await store.write_flush(
            [
                _received(
                    make_batch(
                        "s", "a", 2, [make_observation("dev", firmware="11.6", observed_at=obs_age(20))]
                    )
                )
            ]
        )
        row = await device(store)
        assert (row["status"], row["firmware_version"]) == ("active", "11.6")
        await store.write_flush(
            [
                _received(
                    make_batch(
                        "s", "a", 3, [make_observation("dev", vendor="yealink", observed_at=obs_age(10))]
                    )
                )
            ]
        )
        assert (await device(store))["vendor"] == "yealink"
        assert (await store.list_devices(DeviceFilter(vendor="yealink")))[1] == 1
        assert (await store.list_devices(DeviceFilter(vendor="cisco")))[1] == 0
    tenants["s"] = "second"  # the tenant map changed while the controller was down
    async with open_store(database_url, tenant_of=lambda site: tenants[site]) as store:
        await store.write_flush(
            [_received(make_batch("s", "a", 4, [make_observation("dev", vendor="yealink")]))]
        )
        row = await device(store)
        assert (row["tenant"], row["vendor"], row["status"]) == ("second", "yealink", "active")
        assert (await store.list_devices(DeviceFilter(tenant="second")))[1] == 1
        assert (await store.list_devices(DeviceFilter(tenant="first")))[1] == 0
        history = await store.get_device(row["id"])
        assert history is not None
        assert [h["version"] for h in history["firmware_history"]] == ["11.5.1", "11.6", "11.5.1"]


async def test_stale_marking_skips_rows_a_flush_is_writing(database_url: str) -> None:
    """PostgreSQL: the stale marker neither waits for a flush holding device rows nor holds
    rows a flush then waits for; it marks the rest, the locked device at its next run."""
    if not database_url.startswith("postgresql"):
        pytest.skip("one writer at a time on SQLite: nothing to skip")
    async with open_store(database_url) as store:
        old = [make_observation(f"d{i}", observed_at=obs_age(600)) for i in range(3)]
        await store.write_flush([_received(make_batch("s", "a", 0, old))])
        async with store.engine.connect() as conn, conn.begin():
            devices = m.DEVICES
            await conn.execute(sa.select(devices.c.id).where(devices.c.device_id == "d0").with_for_update())
            async with asyncio.timeout(10):
                marked = await store.mark_stale(
                    now_epoch=datetime.now(UTC).timestamp(), after_intervals=3, default_interval_s=60
                )
            assert marked == 2
        marked = await store.mark_stale(
            now_epoch=datetime.now(UTC).timestamp(), after_intervals=3, default_interval_s=60
        )
        assert marked == 1


async def test_bodies_survive_revision_0004_both_ways(database_url: str) -> None:
    """Rows stored with their own body (before 0004) stay readable after it; bodies kept in the
    batch payload are copied back into the rows by the downgrade."""
    old = make_observation("dev", firmware="1.0", observed_at=obs_age(60))
    engine = create_engine(database_url)
    try:
        await migrate.upgrade(engine, "0003")
        async with engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO batches (batch_id, site_id, agent_id, boot, seq, sent_at, stored_at, "
                    "observations) VALUES ('old-batch', 's', 'a', 1, 0, :at, :at, 1)"
                ),
                {"at": old.observed_at},
            )
            await conn.execute(
                sa.insert(m.OBSERVATIONS).values(
                    site_id="s",
                    device_id="dev",
                    batch_id="old-batch",
                    observed_at=old.observed_at,
                    body=old.model_dump_json(exclude_none=True),
                )
            )
    finally:
        await engine.dispose()
    new = make_observation("dev", firmware="1.1", observed_at=obs_age(30))
    other = make_observation("other", observed_at=obs_age(20))
    async with open_store(database_url) as store:
        await store.write_flush([_received(make_batch("s", "a", 1, [other, new]))])
        stored = await store.observations("s", "dev")
        assert [Observation.model_validate(row["observation"]) for row in stored] == [new, old]
        await migrate.downgrade(store.engine, "0003")
        async with store.engine.connect() as conn:
            bodies = (
                await conn.execute(
                    sa.text("SELECT device_id, body FROM observations ORDER BY observed_at, device_id")
                )
            ).all()
        found = [(row.device_id, Observation.model_validate_json(row.body)) for row in bodies]
        assert found == [("dev", old), ("dev", new), ("other", other)]
        await migrate.upgrade(store.engine)


async def test_device_states_follow_rollbacks_and_other_writers(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite keeps the devices' stored state between flushes: a rolled-back flush must not leave
    its state behind, and a row another connection changed must be read again."""
    async with open_store(database_url) as store:

        async def flush(seq: int, firmware: str) -> None:
            obs = make_observation("dev", firmware=firmware, observed_at=obs_age(100 - seq))
            await store.write_flush([_received(make_batch("s", "a", seq, [obs]))])

        async def history() -> list[str]:
            rows, _ = await store.list_devices(DeviceFilter())
            device = await store.get_device(rows[0]["id"])
            assert device is not None
            return [h["version"] for h in device["firmware_history"]]

        await flush(0, "1.0")
        with monkeypatch.context() as patch:

            def refuse(*_args: Any) -> None:
                raise RuntimeError("refused after the device rows were written")

            patch.setattr(FlushWriter, "_write_gaps", refuse)
            with pytest.raises(RuntimeError):
                await flush(1, "2.0")
        assert await history() == ["1.0"]
        await flush(2, "2.0")  # the refused flush's 2.0 was never stored: history records it now
        assert await history() == ["1.0", "2.0"]

        async with store.engine.begin() as conn:  # another connection (an operator, say)
            await conn.execute(sa.update(m.DEVICES).values(firmware_version="1.0"))
        await flush(3, "2.0")
        assert await history() == ["1.0", "2.0", "2.0"]
