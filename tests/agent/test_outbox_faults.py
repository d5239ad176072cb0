"""Outbox faults that must not stop the agent: a corrupt file, a full disk (at append and at open).

The full disk is real: a small tmpfs mounted for the test (the sandbox and CI run as root; without
the privilege the tests skip rather than fake it), filled with a filler file until ENOSPC. A
``max_page_count`` pragma would only simulate SQLITE_FULL inside one database, and RLIMIT_FSIZE
gives EFBIG (an I/O error to SQLite, not "disk full") and signals the whole test process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog

from agent.metrics import AgentMetrics
from agent.outbox import Outbox, StoreFailed
from agent.outbox_faults import quarantine
from agent.service import AgentService
from agent.settings import OutboxSettings
from tests.agent.drivers import DriverPool
from tests.agent.receiver import receiving
from tests.agent.test_service import agent_settings, eventually
from tests.fixtures.mqtt import MosquittoBroker


def settings(path: Path, **overrides: object) -> OutboxSettings:
    return OutboxSettings.model_validate({"path": path, **overrides})


class SmallDisk:
    """A 1 MiB tmpfs; :meth:`fill` takes every free block, :meth:`free` gives them back."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._filler = root / "filler"

    def fill(self) -> None:
        chunk = b"\0" * 4096
        # ENOSPC ends the loop: full, which is the point.
        with self._filler.open("ab", buffering=0) as out, contextlib.suppress(OSError):
            while True:
                out.write(chunk)

    def free(self) -> None:
        self._filler.unlink(missing_ok=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    root = tmp_path / "disk"
    root.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(root)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield SmallDisk(root)
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


async def test_a_file_that_is_not_a_database_is_quarantined_and_replaced(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    path.write_bytes(b"this is no SQLite file" * 100)
    metrics = AgentMetrics()
    with structlog.testing.capture_logs() as logs:
        async with Outbox.open(settings(path), metrics) as outbox:
            assert outbox.unavailable is None
            assert outbox.boot == 1  # a new outbox; the controller resets seq tracking on a new boot
            assert await outbox.append(outbox.next_seq(), b"x") > 0
            quarantined = outbox.quarantined
    assert quarantined is not None
    assert quarantined.name.startswith("outbox.db.corrupt-")
    assert quarantined.read_bytes() == b"this is no SQLite file" * 100  # kept as it was
    (warning,) = events(logs, "outbox_quarantined")
    assert warning["path"] == str(path)
    assert warning["quarantined_to"] == str(quarantined)
    assert "SQLITE_NOTADB" in warning["error"]
    assert metrics.value("fernwart_outbox_quarantined_total") == 1


async def test_a_malformed_database_is_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    async with Outbox.open(settings(path)) as outbox:
        for _ in range(200):
            await outbox.append(outbox.next_seq(), os.urandom(2000))
    # Overwrite pages in the middle of the table's b-tree (the header page stays intact, so
    # SQLite opens the file and only quick_check finds the damage).
    with path.open("r+b") as file:
        file.seek(4096 * 10)
        file.write(b"\xff" * 4096 * 4)
    with structlog.testing.capture_logs() as logs:
        async with Outbox.open(settings(path)) as outbox:
            assert outbox.boot == 1
            assert outbox.rows == 0
            quarantined = outbox.quarantined
    assert quarantined is not None
    assert quarantined.exists()
    assert "quick_check" in events(logs, "outbox_quarantined")[0]["error"]


def test_quarantine_moves_the_log_files_along(tmp_path: Path) -> None:
    for name in ("outbox.db", "outbox.db-wal", "outbox.db-shm"):
        (tmp_path / name).write_text(name)
    moved = quarantine(tmp_path / "outbox.db", datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC))
    assert moved.name == "outbox.db.corrupt-20250301T120000000000Z"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        moved.name,
        moved.name + "-shm",
        moved.name + "-wal",
    ]
    assert (tmp_path / (moved.name + "-wal")).read_text() == "outbox.db-wal"


async def test_a_full_disk_at_append_is_counted_logged_once_and_recovers(small_disk: SmallDisk) -> None:
    metrics = AgentMetrics()
    with structlog.testing.capture_logs() as logs:
        async with Outbox.open(settings(small_disk.root / "outbox.db"), metrics) as outbox:
            await outbox.append(outbox.next_seq(), b"before")
            small_disk.fill()
            errors: list[str] = []
            for _ in range(50):  # the WAL may still have room for a few rows
                try:
                    await outbox.append(outbox.next_seq(), os.urandom(3000))
                except StoreFailed as err:
                    errors.append(str(err))
            failed = len(errors)
            assert all("SQLITE_FULL" in error for error in errors)
            assert failed >= 3
            assert outbox.store_failed == failed
            assert metrics.value("fernwart_outbox_store_failed_total") == failed
            assert outbox.rows == 51 - failed  # what was stored is still there, and counted right
            small_disk.free()
            row_id = await outbox.append(outbox.next_seq(), b"after")
            assert [r.payload for r in await outbox.read(after_id=row_id - 1)] == [b"after"]
    (failed_line,) = events(logs, "outbox_store_failed")  # once per transition, not per message
    assert "SQLITE_FULL" in failed_line["error"]
    (recovered,) = events(logs, "outbox_store_recovered")
    assert recovered["not_stored"] == failed


async def test_a_full_disk_at_open_leaves_the_outbox_unavailable_until_space_returns(
    small_disk: SmallDisk,
) -> None:
    metrics = AgentMetrics()
    small_disk.fill()
    with structlog.testing.capture_logs() as logs:
        async with Outbox.open(settings(small_disk.root / "outbox.db", retry_open_s=0), metrics) as outbox:
            assert outbox.unavailable is not None
            assert metrics.value("fernwart_outbox_available") == 0
            for _ in range(3):
                await outbox.retry_open()
                with pytest.raises(StoreFailed, match="unavailable"):
                    await outbox.append(outbox.next_seq(), b"lost")
            assert metrics.value("fernwart_outbox_store_failed_total") == 3
            assert await outbox.read() == []
            assert await outbox.confirm([(0, 0, 5)]) == []
            small_disk.free()
            await outbox.retry_open()
            assert outbox.unavailable is None
            assert outbox.boot == 1
            assert await outbox.append(outbox.next_seq(), b"kept") > 0
            assert metrics.value("fernwart_outbox_available") == 1
    assert len(events(logs, "outbox_unavailable")) == 1
    assert len(events(logs, "outbox_store_failed")) == 1
    assert events(logs, "outbox_available")[0]["not_stored"] == 3


async def test_the_agent_keeps_polling_with_a_full_disk(
    mosquitto: MosquittoBroker, topic_prefix: str, small_disk: SmallDisk
) -> None:
    settings_ = agent_settings(
        mosquitto,
        topic_prefix,
        small_disk.root,
        devices=2,
        outbox={"path": str(small_disk.root / "outbox.db"), "max_batch": 1, "retry_open_s": 0},
        mqtt={"heartbeat_s": 1},
    )
    small_disk.fill()  # not even the outbox file can be created
    pool = DriverPool()
    service = AgentService(settings_, driver_factory=pool)
    stop = asyncio.Event()
    async with receiving(mosquitto.host, mosquitto.port, topic_prefix) as rx, asyncio.TaskGroup() as tg:
        tg.create_task(service.run(stop))
        await eventually(lambda: service.metrics.value("fernwart_outbox_store_failed_total") >= 4)
        assert service.metrics.value("fernwart_polls_total", result="ok") >= 4
        # The heartbeat reports what was not stored.
        await rx.wait_for(lambda: any(b.dropped >= 1 for b in rx.heartbeats()))
        small_disk.free()
        await rx.wait_for(lambda: len(rx.batches()) >= 3)  # stored and published once space returns
        stop.set()
    assert service.outbox is not None
    assert service.outbox.unavailable is None


async def test_the_agent_keeps_polling_after_a_corrupt_outbox(
    mosquitto: MosquittoBroker, topic_prefix: str, tmp_path: Path
) -> None:
    (tmp_path / "outbox.db").write_bytes(b"\0garbage" * 512)
    settings_ = agent_settings(mosquitto, topic_prefix, tmp_path, devices=2)
    pool = DriverPool()
    service = AgentService(settings_, driver_factory=pool)
    stop = asyncio.Event()
    async with receiving(mosquitto.host, mosquitto.port, topic_prefix) as rx, asyncio.TaskGroup() as tg:
        tg.create_task(service.run(stop))
        await rx.wait_for(lambda: len(rx.batches()) >= 3)
        stop.set()
    assert service.outbox is not None
    assert service.outbox.quarantined is not None
    assert service.metrics.value("fernwart_outbox_quarantined_total") == 1
    assert {b.boot for b in rx.batches()} == {1}
