"""The store's rules as pure functions: records in, records out, no database.

* sequence tracking: an agent's batches carry ``(boot, seq)``; a seq beyond the next one leaves a
  gap, a seq at or below the newest is late, a newer boot counts from 0 again (:func:`track_seq`);
* gap filling: a late batch inside a recorded gap shrinks it, splits it or removes it
  (:func:`split_gap`, :func:`fill_gap`);
* agent status: a birth makes an agent online, its last will offline (unless the will is of an
  earlier boot than the stored row), a heartbeat brings it back online, and overdue heartbeats
  take it offline (:func:`apply_birth`, :func:`apply_will`, :func:`apply_heartbeat`,
  :func:`heartbeat_overdue`);
* devices: a device row moves forward only, its update applies when the observation is not
  older than the row (:func:`moves_forward`); firmware history gets a row each time the firmware
  seen differs from the one before it, in observed order (:func:`firmware_changes`), and so does
  every software component's history (:func:`component_changes`).

The writers apply these (SQLite in Python; PostgreSQL's device statement evaluates the device
rules in SQL, and tests/controller/test_rules.py checks it against these functions).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Protocol

from collector.wire import AgentStatus, Heartbeat
from controller.storage.records import GapRecord


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """One ``agents`` row."""

    agent_id: str
    site_id: str
    state: str
    boot: int
    last_seq: int | None
    version: str
    capabilities: list[str]
    intervals_s: dict[str, float]
    status_at: datetime | None
    last_seen: datetime
    state_reason: str | None = None
    heartbeat_at: datetime | None = None
    heartbeat_s: float | None = None
    outbox_rows: int | None = None
    outbox_bytes: int | None = None
    oldest_unsent_s: float | None = None
    dropped: int | None = None
    polls: dict[str, int] | None = None


AGENT_FIELDS = tuple(f.name for f in dataclasses.fields(AgentRecord))


class Sequenced(Protocol):
    """What sequence tracking reads of a batch (a PreparedBatch has it)."""

    @property
    def agent_id(self) -> str: ...
    @property
    def site_id(self) -> str: ...
    @property
    def boot(self) -> int: ...
    @property
    def seq(self) -> int: ...


class SeqStep(NamedTuple):
    agent: AgentRecord
    gap: GapRecord | None  # the seqs this batch showed missing
    late: bool  # at or below the newest seq of its boot, or of an earlier boot


def track_seq(agent: AgentRecord | None, batch: Sequenced, received_at: datetime) -> SeqStep:
    """The agent after ``batch`` arrived at ``received_at``. An agent never seen takes its first
    batch as the baseline (no gap before it); a birth of a new boot sets ``last_seq`` to -1, so
    that seq 0 is expected next (see :func:`apply_birth`)."""
    if agent is None:
        row = AgentRecord(
            batch.agent_id, batch.site_id, "online", batch.boot, batch.seq, "", [], {}, None, received_at
        )
        return SeqStep(row, None, late=False)
    last_seen = max(agent.last_seen, received_at)
    if batch.boot < agent.boot:
        return SeqStep(dataclasses.replace(agent, last_seen=last_seen), None, late=True)
    last_seq = -1 if batch.boot > agent.boot else agent.last_seq
    if last_seq is not None and batch.seq <= last_seq:
        return SeqStep(dataclasses.replace(agent, last_seen=last_seen), None, late=True)
    gap = None
    if last_seq is not None and batch.seq > last_seq + 1:
        gap = GapRecord(batch.agent_id, batch.site_id, batch.boot, last_seq + 1, batch.seq - 1)
    row = dataclasses.replace(agent, boot=batch.boot, last_seq=batch.seq, last_seen=last_seen)
    return SeqStep(row, gap, late=False)


def split_gap(gap: GapRecord, seq: int) -> list[GapRecord]:
    """What remains of ``gap`` once ``seq`` (inside it) arrived: none, one or two ranges."""
    parts = []
    if gap.from_seq < seq:
        parts.append(GapRecord(gap.agent_id, gap.site_id, gap.boot, gap.from_seq, seq - 1))
    if seq < gap.to_seq:
        parts.append(GapRecord(gap.agent_id, gap.site_id, gap.boot, seq + 1, gap.to_seq))
    return parts


def fill_gap(gaps: list[GapRecord], batch: Sequenced) -> tuple[list[GapRecord], GapRecord | None]:
    """``gaps`` after the late ``batch`` arrived, and the gap it filled (part of), if any: the
    first gap of its agent and boot holding its seq is replaced by what remains of it (at the end)."""
    agent_id, boot, seq = batch.agent_id, batch.boot, batch.seq
    for gap in gaps:
        if gap.agent_id == agent_id and gap.boot == boot and gap.from_seq <= seq <= gap.to_seq:
            rest = [g for g in gaps if g is not gap]
            return rest + split_gap(gap, seq), gap
    return gaps, None


def apply_birth(agent: AgentRecord | None, status: AgentStatus, received_at: datetime) -> AgentRecord:
    """An online status (a birth, or the retained one delivered again): the agent is online with
    what the status announces; its heartbeat figures stay."""
    if agent is None:
        last_seq = None  # never seen: the first batch is the baseline
    elif status.boot != agent.boot:
        last_seq = -1  # a new boot counts from 0 again
    else:
        last_seq = agent.last_seq  # the retained birth delivered once more
    return AgentRecord(
        agent_id=status.agent_id,
        site_id=status.site_id,
        state="online",
        boot=status.boot,
        last_seq=last_seq,
        version=status.version,
        capabilities=list(status.capabilities),
        intervals_s=dict(status.intervals_s),
        status_at=received_at,
        last_seen=max(received_at, agent.last_seen) if agent else received_at,
        state_reason="birth",
        heartbeat_at=agent.heartbeat_at if agent else None,
        heartbeat_s=agent.heartbeat_s if agent else None,
        outbox_rows=agent.outbox_rows if agent else None,
        outbox_bytes=agent.outbox_bytes if agent else None,
        oldest_unsent_s=agent.oldest_unsent_s if agent else None,
        dropped=agent.dropped if agent else None,
        polls=agent.polls if agent else None,
    )


def apply_will(agent: AgentRecord | None, status: AgentStatus, received_at: datetime) -> AgentRecord | None:
    """An offline status (a last will): the agent is offline, or None when the will is of an
    earlier boot than the stored row (it arrived after the new birth) and changes nothing."""
    if agent is not None and status.boot < agent.boot:
        return None
    if agent is None:
        agent = AgentRecord(
            status.agent_id, status.site_id, "offline", status.boot, None, "", [], {}, None, received_at
        )
    return dataclasses.replace(agent, state="offline", state_reason="last_will", status_at=received_at)


def apply_heartbeat(agent: AgentRecord | None, beat: Heartbeat, received_at: datetime) -> AgentRecord:
    """The agent is alive: online (again), with what its heartbeat reports. A heartbeat of an
    earlier boot (delivered late) changes nothing."""
    if agent is None:
        agent = AgentRecord(
            beat.agent_id, beat.site_id, "online", beat.boot, None, "", [], {}, None, received_at
        )
    elif beat.boot < agent.boot:
        return agent
    state, reason, status_at = agent.state, agent.state_reason, agent.status_at
    if state != "online" or reason == "heartbeat_overdue":
        state, reason, status_at = "online", "heartbeat", received_at
    return dataclasses.replace(
        agent,
        state=state,
        state_reason=reason,
        status_at=status_at,
        last_seen=max(agent.last_seen, received_at),
        heartbeat_at=received_at,
        heartbeat_s=beat.interval_s,
        outbox_rows=beat.outbox_rows,
        outbox_bytes=beat.outbox_bytes,
        oldest_unsent_s=beat.oldest_unsent_s,
        dropped=beat.dropped,
        polls=dict(beat.polls),
    )


def heartbeat_overdue(heartbeat_at: datetime, heartbeat_s: float, now: datetime, missed: float) -> bool:
    """An online agent goes offline (``heartbeat_overdue``) once its newest heartbeat is more
    than ``missed`` of its heartbeat intervals old."""
    return (now - heartbeat_at).total_seconds() > missed * heartbeat_s


def moves_forward(stored_epoch: float | None, observed_epoch: float) -> bool:
    """A device row moves forward only: its update applies when the observation is not older."""
    return stored_epoch is None or stored_epoch <= observed_epoch


def firmware_changes(
    stored: str | None, seen: Iterable[tuple[int, str | None]]
) -> tuple[list[tuple[int, str]], str | None]:
    """The firmware history rows ``(observed_us, version)`` of one device's observations ``seen``
    (``(observed_us, firmware)``, in arrival order; ordered here by observed time, ties in arrival
    order) starting from the ``stored`` version, and the version after the last of them (an
    observation without a firmware changes nothing). Applied whether or not the device row
    moves forward: the history compares with the stored version."""
    history: list[tuple[int, str]] = []
    version = stored
    for observed_us, firmware in sorted(seen, key=_first):
        if firmware is not None and firmware != version:
            history.append((observed_us, firmware))
            version = firmware
    return history, version


def _first(entry: tuple[int, str | None]) -> int:
    return entry[0]


# A component's stored state: component name → (version, scheme).
ComponentState = dict[str, tuple[str, str | None]]
ComponentChange = tuple[int, str, str, str | None]  # observed_us, component, version, scheme


def component_changes(
    stored: ComponentState, seen: Iterable[tuple[int, Iterable[tuple[str, str, str | None]]]]
) -> tuple[list[ComponentChange], ComponentState]:
    """:func:`firmware_changes` for every component: the history rows ``(observed_us, component,
    version, scheme)`` of one device's observations ``seen`` (``(observed_us, components)``, in
    arrival order; ordered here by observed time, ties in arrival order) starting from the
    ``stored`` components, and the components after the last of them. A component an observation
    leaves out changes nothing; a new scheme alone changes the row but is no history row."""
    history: list[ComponentChange] = []
    state = dict(stored)
    for observed_us, software in sorted(seen, key=lambda entry: entry[0]):
        for name, version, scheme in software:
            before = state.get(name)
            if before is None or before[0] != version:
                history.append((observed_us, name, version, scheme))
            if before != (version, scheme):
                state[name] = (version, scheme)
    return history, state
