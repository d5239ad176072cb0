"""The controller's database faults: a SQLite file deleted while it runs, and a missing or empty
database at start (never created unasked; `fernwart controller init` creates it)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
import structlog

from collector.wire import BatchAck, decode
from collector.wire.topics import TopicKind
from controller import service
from controller.settings import settings_from_dict
from controller.storage.guard import DatabaseNotInitialized
from fernwart_cli.main import main as fernwart
from tests.controller.conftest import (
    BrokerInfo,
    Harness,
    controller_config,
    make_batch,
    make_observation,
    publisher_client,
    wait_for_connection,
    wait_until,
)


async def _metric(h: Harness, name: str) -> float:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{h.http_url}/metrics", headers=h.auth) as resp,
    ):
        text = await resp.text()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
async def test_a_deleted_database_file_fails_healthz_and_nothing_is_acknowledged(
    make_harness: Callable[..., Awaitable[Harness]], database_url: str, tmp_path: Path
) -> None:
    h = await make_harness(http={"metrics_public": True})  # the token check needs the database too
    path = tmp_path / "fernwart.db"
    acks: list[BatchAck] = []
    async with publisher_client(h.broker) as listener:
        await listener.subscribe(h.topic("site-1", TopicKind.ACK), qos=1)

        async def collect() -> None:
            async for message in listener.messages:
                assert isinstance(message.payload, bytes)
                _, ack = decode(str(message.topic), message.payload, prefix=h.prefix)
                assert isinstance(ack, BatchAck)
                acks.append(ack)

        async with asyncio.TaskGroup() as tg:
            collecting = tg.create_task(collect())
            await h.send_batch(make_batch("site-1", "agent-1", 0, [make_observation("dev-1")]))
            await wait_until(lambda: _acked(acks, 0), what="the first batch confirmed")

            with structlog.testing.capture_logs() as logs:
                for suffix in ("", "-wal", "-shm"):
                    path.with_name(path.name + suffix).unlink(missing_ok=True)
                async with aiohttp.ClientSession() as session, session.get(f"{h.http_url}/healthz") as resp:
                    assert resp.status == 503
                    body = await resp.json()
                assert body["database"] == "lost"
                assert str(path) in body["detail"]
                # Deleted; or replaced, since a new pooled connection recreates an empty file.
                assert "deleted" in body["detail"] or "replaced" in body["detail"]

                errors_before = await _metric(h, "fernwart_ingest_store_errors_total")
                await h.send_batch(make_batch("site-1", "agent-1", 1, [make_observation("dev-1")]))
                await wait_until(
                    lambda: _more(h, errors_before + 2), what="the flush into the deleted file refused twice"
                )
            assert not await _acked(acks, 1)  # nothing confirmed: the agent keeps its row
            lost = [e for e in logs if e["event"] == "database_file_lost"]
            assert len(lost) == 1  # once, not per flush or per request
            assert lost[0]["path"] == str(path)
            collecting.cancel()


async def _acked(acks: list[BatchAck], seq: int) -> bool:
    return any(first <= seq <= last for ack in acks for _boot, first, last in ack.ranges)


def _more(h: Harness, at_least: float) -> Awaitable[bool]:
    async def check() -> bool:
        return await _metric(h, "fernwart_ingest_store_errors_total") >= at_least

    return check()


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "controller.toml"
    path.write_text(f'[database]\nurl = "{url}"\n[http]\nport = 0\n[mqtt]\nport = 1\n')
    return path


@pytest.mark.parametrize("check", [True, False])
def test_a_missing_sqlite_file_is_refused_at_start_and_by_check(tmp_path: Path, *, check: bool) -> None:
    db = tmp_path / "var" / "fernwart.db"
    config = _config(tmp_path, f"sqlite+aiosqlite:///{db}")
    argv = [sys.executable, "-m", "controller", "--config", str(config), *(["--check"] if check else [])]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 78, proc.stderr
    assert f"database.url: {db}: no such database file" in proc.stderr
    assert "fernwart controller init --config FILE" in proc.stderr
    assert not db.exists()  # nothing created unasked
    assert not db.parent.exists()


async def test_an_empty_database_is_refused_until_init(
    database_url: str, tmp_path: Path, broker: BrokerInfo, topic_prefix: str
) -> None:
    if database_url.startswith("sqlite"):
        Path(database_url.removeprefix("sqlite+aiosqlite:///")).touch()  # there, but empty
    settings = settings_from_dict(controller_config(broker, database_url, topic_prefix))
    with pytest.raises(DatabaseNotInitialized, match="holds no fernwart schema"):
        await service.run(settings, asyncio.Event(), handle_signals=False)
    # Told to: init creates the schema, and then the daemon starts.
    config = tmp_path / "c.toml"
    config.write_text(f'[database]\nurl = "{database_url}"\n')
    assert await asyncio.to_thread(fernwart, ["controller", "init", "--config", str(config)]) == 0
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(settings, stop, handle_signals=False))
    await wait_for_connection(settings, task)
    stop.set()
    await task


def test_init_is_idempotent_and_the_token_command_does_not_create(tmp_path: Path) -> None:
    db = tmp_path / "fernwart.db"
    config = _config(tmp_path, f"sqlite+aiosqlite:///{db}")
    assert fernwart(["controller", "token", "list", "--config", str(config)]) == 78
    assert not db.exists()
    assert fernwart(["controller", "init", "--config", str(config)]) == 0
    assert fernwart(["controller", "init", "--config", str(config)]) == 0
    assert fernwart(["controller", "token", "list", "--config", str(config)]) == 0
