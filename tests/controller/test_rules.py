"""The store's rules (controller.storage.rules) as properties, and both writers against them."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.wire import AgentState, AgentStatus, Heartbeat, encode
from controller.shapes import epoch_us
from controller.storage import DeviceFilter, Received, Store
from controller.storage.records import GapRecord
from controller.storage.rules import (
    AgentRecord,
    apply_birth,
    apply_heartbeat,
    apply_will,
    fill_gap,
    firmware_changes,
    heartbeat_overdue,
    moves_forward,
    track_seq,
)
from tests.controller.conftest import enroll, make_batch, make_observation, open_store

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class _Batch:
    agent_id: str
    site_id: str
    boot: int
    seq: int


def _agent(boot: int = 1, last_seq: int | None = -1) -> AgentRecord:
    return AgentRecord("a", "s", "online", boot, last_seq, "", [], {}, T0, T0)


def _status(state: AgentState, boot: int) -> AgentStatus:
    return AgentStatus(site_id="s", agent_id="a", sent_at=T0, state=state, boot=boot)


def _beat(boot: int) -> Heartbeat:
    return Heartbeat(
        site_id="s",
        agent_id="a",
        sent_at=T0,
        boot=boot,
        interval_s=30,
        outbox_rows=0,
        outbox_bytes=0,
        dropped=0,
    )


def _deliver(
    agent: AgentRecord, seqs: list[int], boot: int = 1, gaps: list[GapRecord] | None = None
) -> tuple[AgentRecord, list[GapRecord], int]:
    """Run the writer's sequence rules over ``seqs``: gaps recorded, then filled by late batches."""
    gaps = list(gaps or [])
    late = 0
    for n, seq in enumerate(seqs):
        step = track_seq(agent, _Batch("a", "s", boot, seq), T0 + timedelta(seconds=n))
        agent = step.agent
        if step.gap is not None:
            gaps.append(step.gap)
        if step.late:
            late += 1
            gaps, _ = fill_gap(gaps, _Batch("a", "s", boot, seq))
    return agent, gaps, late


def _missing(gaps: list[GapRecord]) -> list[int]:
    return sorted(seq for gap in gaps for seq in range(gap.from_seq, gap.to_seq + 1))


# A seq stream as the broker may deliver it: some seqs lost, the others in any order, some twice.
seq_streams = st.sets(st.integers(0, 60), min_size=1).flatmap(
    lambda sent: st.permutations(sorted(sent)).flatmap(
        lambda order: st.lists(st.sampled_from(order), max_size=10).map(lambda again: [*order, *again])
    )
)


@settings(max_examples=400, deadline=None)
@given(seq_streams)
def test_gaps_are_exactly_the_missing_seqs_whatever_the_order(stream: list[int]) -> None:
    agent, gaps, late = _deliver(_agent(), stream)
    delivered = set(stream)
    assert _missing(gaps) == sorted(set(range(max(delivered) + 1)) - delivered)
    ranges = sorted((gap.from_seq, gap.to_seq) for gap in gaps)
    assert all(0 <= low <= high for low, high in ranges)
    assert all(high < next_low for (_, high), (next_low, _) in itertools.pairwise(ranges)), "overlap"
    assert agent.last_seq == max(delivered)
    newest_so_far = list(itertools.accumulate(stream, max))
    assert late == sum(1 for n, seq in enumerate(stream) if n and seq <= newest_so_far[n - 1])


@settings(max_examples=200, deadline=None)
@given(seq_streams, st.integers(0, 60))
def test_a_late_batch_only_shrinks_the_gaps(stream: list[int], late_seq: int) -> None:
    agent, gaps, _ = _deliver(_agent(), stream)
    after_agent, after, _ = _deliver(agent, [late_seq], gaps=gaps)
    if late_seq <= max(stream):
        assert _missing(after) == [seq for seq in _missing(gaps) if seq != late_seq]
        assert after_agent.last_seq == agent.last_seq
    else:  # a newer seq: a gap before it, if any
        assert _missing(after) == _missing(gaps) + list(range(max(stream) + 1, late_seq))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 50), st.integers(0, 50), st.lists(st.integers(0, 50), max_size=5))
def test_a_new_boot_counts_from_zero_and_the_old_boot_is_late(
    old_seq: int, new_seq: int, stale: list[int]
) -> None:
    agent, _, _ = _deliver(_agent(boot=1), [old_seq], boot=1)
    step = track_seq(agent, _Batch("a", "s", 2, new_seq), T0)
    assert (step.agent.boot, step.agent.last_seq, step.late) == (2, new_seq, False)
    assert step.gap == (GapRecord("a", "s", 2, 0, new_seq - 1) if new_seq else None)
    agent = step.agent
    for seq in stale:  # batches of boot 1 delivered late change nothing but last_seen
        step = track_seq(agent, _Batch("a", "s", 1, seq), T0)
        assert step.late
        assert step.gap is None
        assert (step.agent.boot, step.agent.last_seq) == (2, new_seq)


def test_the_first_batch_of_an_agent_never_seen_is_the_baseline() -> None:
    step = track_seq(None, _Batch("a", "s", 3, 17), T0)
    assert (step.agent.boot, step.agent.last_seq, step.gap, step.late) == (3, 17, None, False)
    # and a birth without a batch yet leaves the baseline to the first batch
    assert apply_birth(None, _status(AgentState.ONLINE, 3), T0).last_seq is None


statuses = st.lists(
    st.tuples(st.sampled_from(["birth", "will", "beat"]), st.integers(0, 4)), min_size=1, max_size=12
)


@settings(max_examples=400, deadline=None)
@given(statuses)
def test_an_older_boots_will_never_overrides_a_newer_birth(events: list[tuple[str, int]]) -> None:
    agent: AgentRecord | None = None
    for n, (kind, boot) in enumerate(events):
        at = T0 + timedelta(seconds=n)
        before_boot = agent.boot if agent else None
        before_state = agent.state if agent else None
        if kind == "birth":
            agent = apply_birth(agent, _status(AgentState.ONLINE, boot), at)
        elif kind == "will":
            offline = apply_will(agent, _status(AgentState.OFFLINE, boot), at)
            if agent is not None and boot < agent.boot:
                assert offline is None
            else:
                assert offline is not None
                assert offline.state == "offline"
                agent = offline
        else:
            before = agent
            agent = apply_heartbeat(agent, _beat(boot), at)
            if before is not None and boot < before.boot:
                assert agent is before
            else:
                assert (agent.state, agent.heartbeat_at) == ("online", at)
        assert agent is not None
        if kind != "birth":  # only a birth moves the boot backwards (an older agent came back)
            assert before_boot is None or agent.boot >= before_boot
        if kind == "will" and before_state == "online" and before_boot is not None and boot < before_boot:
            assert agent.state == "online"  # the newer birth stands


def test_overdue_heartbeats_then_a_heartbeat_brings_the_agent_back() -> None:
    agent = apply_heartbeat(apply_birth(None, _status(AgentState.ONLINE, 1), T0), _beat(1), T0)
    assert not heartbeat_overdue(T0, 30, T0 + timedelta(seconds=60), missed=2.0)
    assert heartbeat_overdue(T0, 30, T0 + timedelta(seconds=61), missed=2.0)
    silent = dataclasses.replace(agent, state="offline", state_reason="heartbeat_overdue")
    back = apply_heartbeat(silent, _beat(1), T0 + timedelta(seconds=90))
    assert (back.state, back.state_reason, back.status_at) == (
        "online",
        "heartbeat",
        T0 + timedelta(seconds=90),
    )
    assert apply_heartbeat(back, _beat(0), T0 + timedelta(seconds=95)) is back  # an earlier boot's


# One device's observations: distinct observed times (seconds after T0), a firmware or none.
firmware_streams = st.lists(
    st.tuples(st.integers(0, 10_000), st.sampled_from(["1.0", "1.1", "2.0", None])),
    unique_by=lambda entry: entry[0],
    max_size=20,
)


def _runs(stored: str | None, observed: list[tuple[int, str | None]]) -> list[str]:
    """The versions that differ from the one before them, in observed order."""
    out = []
    for _, firmware in sorted(observed):
        if firmware is not None and firmware != stored:
            out.append(firmware)
            stored = firmware
    return out


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["1.0", "1.1", None]), firmware_streams, st.randoms(use_true_random=False))
def test_firmware_history_is_one_row_per_change_in_observed_order(
    stored: str | None, stream: list[tuple[int, str | None]], rnd: Any
) -> None:
    history, version = firmware_changes(stored, stream)
    assert [v for _, v in history] == _runs(stored, stream)
    assert [at for at, _ in history] == sorted(at for at, _ in history)
    assert version == (history[-1][1] if history else stored)
    shuffled = list(stream)
    rnd.shuffle(shuffled)
    assert firmware_changes(stored, shuffled) == (history, version)  # arrival order within a flush
    # Delivered in observed order over several flushes: the same rows as one flush.
    cuts = sorted(rnd.sample(range(len(stream) + 1), k=min(3, len(stream) + 1)))
    ordered = sorted(stream)
    rows, current = [], stored
    for start, end in itertools.pairwise([0, *cuts, len(ordered)]):
        part, current = firmware_changes(current, ordered[start:end])
        rows += part
    assert (rows, current) == (history, version)


@given(st.one_of(st.none(), st.floats(0, 1e9)), st.floats(0, 1e9))
def test_a_device_row_moves_forward_only(stored: float | None, observed: float) -> None:
    assert moves_forward(stored, observed) == (stored is None or observed >= stored)


# ---- both writers against the rules ------------------------------------------------------------

# Flushes of observations for two devices: each flush a list of batches, each batch a list of
# (device, seconds after the base, firmware); observed times distinct over the whole stream.
_obs = st.tuples(st.sampled_from(["d1", "d2"]), st.integers(0, 3_000), st.sampled_from(["1.0", "1.1", None]))
flush_streams = st.lists(
    st.lists(st.lists(_obs, min_size=1, max_size=4), min_size=1, max_size=3), min_size=1, max_size=4
).filter(
    lambda flushes: (
        len({t for f in flushes for b in f for _, t, _ in b}) == sum(len(b) for f in flushes for b in f)
    )
)


def _model(flushes: list[list[list[tuple[str, int, str | None]]]], base_us: int) -> dict[str, Any]:
    """Per device: (firmware_version, last_seen_us, sorted history) by the rules, flush by flush."""
    state: dict[str, tuple[str | None, int | None, list[tuple[int, str]]]] = {}
    for flush in flushes:
        seen: dict[str, list[tuple[int, str | None]]] = {}
        for batch in flush:
            for device, t, firmware in batch:
                seen.setdefault(device, []).append((base_us + t * 1_000_000, firmware))
        for device, entries in seen.items():
            stored, last_us, history = state.get(device, (None, None, []))
            changes, version = firmware_changes(stored, entries)
            newest = max(us for us, _ in entries)
            if moves_forward(None if last_us is None else last_us / 1e6, newest / 1e6):
                stored, last_us = version, newest
            state[device] = (stored, last_us, sorted(history + changes))
    return state


async def _stored(store: Store, site: str) -> dict[str, Any]:
    rows, _ = await store.list_devices(DeviceFilter(site=site))
    out = {}
    for row in rows:
        device = await store.get_device(row["id"])
        assert device is not None
        history = sorted((epoch_us(h["first_seen"]), h["version"]) for h in device["firmware_history"])
        out[row["device_id"]] = (device["firmware_version"], epoch_us(device["last_seen"]), history)
    return out


async def test_both_writers_apply_the_device_and_firmware_rules(database_url: str) -> None:
    """The SQLite writer applies rules.firmware_changes and moves_forward in Python; PostgreSQL's
    device statement evaluates them in SQL. Both must store what the rules give."""
    loop = asyncio.get_running_loop()
    seqs = itertools.count()
    async with open_store(database_url) as store:

        async def run(flushes: list[list[list[tuple[str, int, str | None]]]]) -> None:
            site = f"s{uuid.uuid4().hex[:8]}"
            await enroll(store, (site, "a-" + site))
            base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
            for flush in flushes:
                items = []
                for batch in flush:
                    observations = [
                        make_observation(device, firmware=firmware, observed_at=base + timedelta(seconds=t))
                        for device, t, firmware in batch
                    ]
                    message = make_batch(site, "a-" + site, next(seqs), observations)
                    received = datetime.now(UTC)
                    items.append(
                        Received(f"fernwart/v1/{site}/obs", encode(message), received, message=message)
                    )
                await store.write_flush(items)
            expected = {
                device: (version, last_us, history)
                for device, (version, last_us, history) in _model(flushes, epoch_us(base)).items()
            }
            assert await _stored(store, site) == expected

        @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(flush_streams)
        def check(flushes: list[list[list[tuple[str, int, str | None]]]]) -> None:
            asyncio.run_coroutine_threadsafe(run(flushes), loop).result()

        await asyncio.to_thread(check)
