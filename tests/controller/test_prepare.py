"""controller.ingest.prepare and decode_pool: the same outcome inline and in worker processes,
and a dead worker loses nothing."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector import wire
from collector.wire import encode
from collector.wire.codec import WRONG_TYPE
from controller.ingest.decode_pool import DecodePool
from controller.ingest.prepare import prepare, prepare_many
from controller.shapes import PreparedBatch, PreparedObservation, epoch_us, prepare_batch, utc_from_us
from controller.storage.sqlite_writer import _sqlite_stamp, _sqlite_time
from tests.controller.conftest import make_batch, make_observation, make_status

PREFIX = "fernwart/v1"
MAX = 64 * 1024


def _jobs() -> list[tuple[str, bytes]]:
    """Valid and invalid messages of every kind, 60 in all (enough to split across workers)."""
    jobs: list[tuple[str, bytes]] = []
    for seq in range(40):
        batch = make_batch("site-1", "agent-1", seq, [make_observation(f"d{seq}"), make_observation("d-x")])
        jobs.append((f"{PREFIX}/site-1/obs", encode(batch)))
    jobs.append((f"{PREFIX}/site-1/status", encode(make_status("site-1", "agent-1"))))
    for bad in (b"{not json", b"[]", b'{"schema": 2}', b"x" * (MAX + 1)):
        jobs.append((f"{PREFIX}/site-1/obs", bad))
    elsewhere = make_batch("site-1", "agent-1", 0, [make_observation("d1")])
    jobs.append((f"{PREFIX}/site-2/obs", encode(elsewhere)))
    jobs.append((f"{PREFIX}/site+/obs", b"{}"))
    jobs.append((f"{PREFIX}/site-1/cmd", b"{}"))
    while len(jobs) < 60:
        jobs.append(jobs[len(jobs) % 40])
    return jobs


def test_prepared_batch_carries_what_the_writer_stores() -> None:
    obs = make_observation("room-1", firmware="ce11.14.2.3")
    batch = make_batch("site-1", "agent-1", 7, [obs])
    prepared = prepare_batch(batch)
    assert (prepared.site_id, prepared.agent_id, prepared.seq) == ("site-1", "agent-1", 7)
    assert prepared.batch_id == str(batch.batch_id)
    (row,) = prepared.observations
    assert utc_from_us(row.observed_us) == obs.observed_at
    assert row.firmware == "ce11.14.2.3"
    assert (row.vendor, row.model, row.health, row.reachable) == (
        obs.identity.vendor,
        obs.identity.model,
        obs.health.status.value,
        obs.reachable,
    )


@pytest.mark.parametrize("copy", [False, True])
def test_a_prepared_batch_survives_pickle_as_it_was(copy: bool) -> None:
    """Workers hand batches over pickled, with the observations as plain tuples (see
    PreparedBatch.__reduce__): the batch comes back equal, its observations NamedTuples again."""
    batch = make_batch("site-1", "agent-1", 3, [make_observation(f"d{i}") for i in range(3)])
    prepared = prepare_batch(batch, copy=copy)
    back = pickle.loads(pickle.dumps(prepared, protocol=pickle.HIGHEST_PROTOCOL))
    assert back == prepared
    assert all(type(row) is PreparedObservation for row in back.observations)
    assert [row.device_id for row in back.observations] == ["d0", "d1", "d2"]
    assert back.copy == prepared.copy


def test_prepare_rejects_with_the_codecs_reason() -> None:
    for topic, payload in _jobs():
        outcome = prepare(topic, payload, prefix=PREFIX, max_payload=MAX)
        rejected: tuple[str, str, str] | None
        try:
            wire.decode(topic, payload, prefix=PREFIX, max_payload=MAX)
        except wire.DecodeError as err:
            rejected = ("invalid", err.code, err.reason)
        else:
            rejected = None
        if rejected is not None:
            assert (outcome.kind, outcome.code, outcome.reason) == rejected
        elif topic.endswith("/cmd"):
            assert (outcome.kind, outcome.code) == ("invalid", WRONG_TYPE)
        else:
            assert outcome.message is not None
            assert outcome.kind == topic.rsplit("/", 1)[1]


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 1),  # noqa: DTZ001 (hypothesis wants naive bounds)
        max_value=datetime(2200, 1, 1),  # noqa: DTZ001
        timezones=st.just(UTC),
    )
)
def test_time_conversions_are_exact(at: datetime) -> None:
    us = epoch_us(at)
    assert utc_from_us(us) == at
    assert _sqlite_stamp(us) == _sqlite_time(at)


def test_epoch_us_of_other_zones_and_naive() -> None:
    at = datetime(2026, 11, 25, 12, 0, 0, 1, tzinfo=timezone(timedelta(hours=2)))
    assert utc_from_us(epoch_us(at)) == at
    assert epoch_us(datetime(2026, 11, 25, 10, 0, 0, 1)) == epoch_us(at)  # noqa: DTZ001 (naive counts as UTC)


@pytest.mark.parametrize("copy", [False, True], ids=["rows", "copy"])
async def test_workers_give_the_inline_outcome_in_order(copy: bool) -> None:
    jobs = _jobs()
    pool = DecodePool(2, prefix=PREFIX, max_payload=MAX, copy=copy)
    await pool.start()
    try:
        outcomes = await pool.prepare(jobs)
    finally:
        pool.close()
    assert outcomes == prepare_many(jobs, PREFIX, MAX, copy)
    batches = [o.message for o in outcomes if isinstance(o.message, PreparedBatch)]
    assert len(batches) >= 40
    assert all((batch.copy is not None) == copy for batch in batches)


def _worker_pids(pool: DecodePool) -> list[int]:
    executor = pool._executor  # white-box: which processes to kill
    assert executor is not None
    return sorted(executor._processes)


async def test_a_dead_worker_loses_nothing() -> None:
    jobs = _jobs()
    expected = prepare_many(jobs, PREFIX, MAX)
    restarts: list[int] = []
    pool = DecodePool(1, prefix=PREFIX, max_payload=MAX, on_restart=lambda: restarts.append(1))
    await pool.start()
    try:
        (pid,) = _worker_pids(pool)
        os.kill(pid, signal.SIGKILL)
        assert await pool.prepare(jobs) == expected  # decoded inline this time
        assert pool.restarts == 1
        assert restarts == [1]  # the controller counts it (fernwart_ingest_decode_worker_restarts_total)
        assert await pool.prepare(jobs) == expected  # by the replacement pool
        assert _worker_pids(pool) != [pid]
        assert pool.restarts == 1
    finally:
        pool.close()


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_workers_end_when_the_controller_is_killed() -> None:
    script = textwrap.dedent(
        """
        import asyncio, json, sys, time
        from controller.ingest.decode_pool import DecodePool

        async def main():
            pool = DecodePool(2, prefix="fernwart/v1", max_payload=1024)
            await pool.start()
            print("PIDS", json.dumps(sorted(pool._executor._processes)), flush=True)
            time.sleep(600)

        asyncio.run(main())
        """
    )
    # stderr: the killed stand-in's resource tracker warns about its semaphores, as it should
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert proc.stdout is not None
        line = ""
        while not line.startswith("PIDS "):  # the pool logs a line of its own first
            line = proc.stdout.readline()
            assert line, "the controller stand-in ended early"
        pids = json.loads(line.removeprefix("PIDS "))
        assert len(pids) == 2
        assert all(_alive(pid) for pid in pids)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            for pid in pids:  # do not leave them behind
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            pytest.fail(f"decode workers {pids} outlived their controller")
        time.sleep(0.1)
