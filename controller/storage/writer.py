"""One ingest flush: every message of the flush in one transaction.

Guarantees, also across restarts and several controller instances sharing one database:

* a batch is stored at most once: ``batches.batch_id`` is the primary key and the insert is
  ``ON CONFLICT DO NOTHING RETURNING``; only the batches this statement inserted get their
  observations written;
* a message is accepted only for a site enrolled by an admin (a ``sites`` row, not revoked; see
  :mod:`controller.storage.enrollment`) and only from the agent enrolled for it: others are
  dead-lettered as ``not_enrolled`` or ``agent_mismatch``. Enrollments are read in every flush
  (one indexed select), so an unenrollment or re-enrollment, also by another controller
  instance, applies from the next flush on;
* a batch stamped (``sent_at`` or an ``observed_at``) more than ``max_future_skew_s`` after it
  was received is dead-lettered as ``future_timestamp``: it would pin a device's state;
* a device row moves forward only: its upsert applies when the observation is not older;
* firmware history gets a row when a device's firmware version differs from the stored one.

The rules are pure functions in :mod:`controller.storage.rules`. This module is what both
databases share: the order of a flush's steps, the checks, the agents, gaps, command results and
dead letters. :mod:`.sqlite_writer` and :mod:`.pg_writer` write batches, observations, device
rows and firmware history, each its own way; Store.open picks one by dialect.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import sqlalchemy as sa

from collector.wire import AgentState, AgentStatus, CommandResult, Heartbeat
from controller.shapes import PreparedBatch
from controller.storage import models as m
from controller.storage.admission import check_clock, check_owners
from controller.storage.records import (
    FlushResult,
    GapRecord,
    Received,
    Rejection,
)
from controller.storage.rules import (
    AGENT_FIELDS,
    AgentRecord,
    apply_birth,
    apply_heartbeat,
    apply_will,
    fill_gap,
    split_gap,
    track_seq,
)
from controller.storage.statements import Statements

# Rows per multi-VALUES statement: far below SQLite's and PostgreSQL's bound-parameter limits.
CHUNK = 1000


def chunks(rows: list[dict[str, Any]], size: int = CHUNK) -> Iterable[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


@dataclass(slots=True)
class _Applied:
    """What applying a flush's messages found: what to write next."""

    new_batches: list[PreparedBatch] = field(default_factory=list)
    gaps: list[GapRecord] = field(default_factory=list)
    late: list[PreparedBatch] = field(default_factory=list)
    births: list[AgentStatus] = field(default_factory=list)
    results: list[tuple[CommandResult, datetime]] = field(default_factory=list)


BATCH_COLUMNS = "batch_id, site_id, agent_id, boot, seq, sent_at, stored_at, observations, payload"

DEVICE_COLUMNS = (
    "site_id", "device_id", "tenant", "agent_id", "vendor", "family", "model", "serial", "hostname",
    "driver", "firmware_version", "health", "reachable", "status", "interval_s", "first_seen",
    "last_seen", "last_seen_epoch",
)  # fmt: skip
DEVICE_UPDATED = (
    "tenant", "agent_id", "vendor", "family", "model", "serial", "hostname", "driver",
    "firmware_version", "health", "reachable", "status", "last_seen", "last_seen_epoch",
)  # fmt: skip
DEVICE_LIST = ", ".join(DEVICE_COLUMNS)
# What an observation says of a device it could not identify: collector.model.Identity's default,
# and every identity field of the observation an agent sends when a device is down (unreachable,
# rebooting, gone from its source's listing). It says nothing about who the device is, so it never
# overwrites a known vendor, family or model, and a missing serial or hostname none known: else a
# codec rebooting into an update would lose its vendor, and with it its findings, until it is back.
UNKNOWN = "unknown"
_KEPT_WHEN_UNKNOWN = frozenset({"vendor", "family", "model"})
_KEPT_WHEN_NULL = frozenset({"serial", "hostname"})


def device_update(name: str, new: str, old: str) -> str:
    """SQL for column ``name``'s value when a device row is updated with ``new`` (a parameter or
    ``excluded.<name>``) over ``old``: the same text on SQLite and PostgreSQL."""
    if name in _KEPT_WHEN_UNKNOWN:
        return f"coalesce(nullif({new}, '{UNKNOWN}'), {old})"
    if name in _KEPT_WHEN_NULL:
        return f"coalesce({new}, {old})"
    return new


class FlushWriter(abc.ABC):
    """Writes flushes. ``max_future_skew_s``: how far beyond its receive time a batch's clock may
    be (agents' clocks drift; NTP keeps them within a second); None accepts any time."""

    statements: ClassVar[Statements]

    def __init__(
        self,
        *,
        tenant_of: Callable[[str], str],
        dead_letter_max_bytes: int,
        max_future_skew_s: float | None = 300.0,
    ) -> None:
        self._tenant_of = tenant_of
        self._dead_letter_max_bytes = dead_letter_max_bytes
        self._max_skew = None if max_future_skew_s is None else timedelta(seconds=max_future_skew_s)

    # What each database does its own way.

    @abc.abstractmethod
    def ids(self, values: list[str]) -> Any:
        """The parameter for a ``one_of`` clause of :attr:`statements`."""

    @abc.abstractmethod
    def _insert_batch_rows(self, conn: sa.Connection, rows: list[tuple[Any, ...]]) -> set[str]:
        """Insert-or-ignore the batch rows (in ``BATCH_COLUMNS`` order); the ids inserted now."""

    @abc.abstractmethod
    def _write_observations(
        self, conn: sa.Connection, batches: list[PreparedBatch], agents: dict[str, AgentRecord], now: datetime
    ) -> int:
        """Store the observations of ``batches`` (new, not empty), their devices' rows and firmware
        history (see :mod:`controller.storage.rules`); return how many observations."""

    # Hooks for a writer keeping state between flushes (SQLite's device states), no-ops here.

    def _begin(self) -> None:  # noqa: B027
        """A flush begins."""

    def _devices_changed(self) -> None:  # noqa: B027
        """Births in this flush may add or change device rows."""

    def committed(self) -> None:  # noqa: B027
        """Call after the transaction of :meth:`write` committed."""

    def write(self, conn: sa.Connection, items: list[Received]) -> FlushResult:
        """Write ``items`` on ``conn`` (inside the caller's transaction); call :meth:`committed`
        after the commit."""
        now = datetime.now(UTC)
        result = FlushResult()
        self._begin()
        dead: list[Received] = [item for item in items if item.message is None]
        accepted = [item for item in items if item.message is not None]
        owners = self._owners(conn, accepted)
        kept = check_clock(check_owners(accepted, owners, dead), dead, self._max_skew)
        batches = [item for item in kept if isinstance(item.message, PreparedBatch)]
        # Sites were locked by _owners, then agents (PostgreSQL): flushes of one agent on several
        # controllers take turns, so each sees the (boot, seq) the previous one committed. (The
        # agents lock alone missed a new agent's first flushes, which have no row to lock yet.)
        agents = self._load_agents(conn, {item.message.agent_id for item in kept if item.message})
        new_ids = self._insert_batches(conn, batches, now)
        applied = self._apply(kept, agents, new_ids, result)
        new_batches, gaps, late, births, results = (
            applied.new_batches,
            applied.gaps,
            applied.late,
            applied.births,
            applied.results,
        )
        result.stored_batches = len(new_batches)
        result.gaps = gaps
        if births:  # they may add or change device rows: read them again
            self._devices_changed()
        self._upsert_announced_devices(conn, births, now)
        result.observations = self._write_observations(conn, new_batches, agents, now) if new_batches else 0
        self._write_agents(conn, agents)
        result.detected = list(gaps)
        result.filled = self._fill_gaps(conn, gaps, late)
        self._write_gaps(conn, gaps, now)
        self._write_command_results(conn, results)
        result.rejected = self._write_dead_letters(conn, dead)
        if new_batches:  # stored_at: the end of the transaction, for publish-to-stored latency
            ids = self.ids([batch.batch_id for batch in new_batches])
            conn.execute(self.statements.stored_at, {"ids": ids, "at": datetime.now(UTC)})
        return result

    def _apply(
        self, kept: list[Received], agents: dict[str, AgentRecord], new_ids: set[str], result: FlushResult
    ) -> _Applied:
        """Each accepted message, in arrival order, against the agents' state."""
        applied = _Applied()
        for item in kept:
            message = item.message
            if isinstance(message, AgentStatus):
                result.statuses += 1
                self._apply_status(agents, message, item.received_at, result)
                if message.state is AgentState.ONLINE:
                    applied.births.append(message)
            elif isinstance(message, CommandResult):
                applied.results.append((message, item.received_at))
            elif isinstance(message, Heartbeat):
                agents[message.agent_id] = apply_heartbeat(
                    agents.get(message.agent_id), message, item.received_at
                )
            elif isinstance(message, PreparedBatch):
                result.confirmed.append((message.site_id, message.agent_id, message.boot, message.seq))
                if message.batch_id not in new_ids:
                    result.duplicate_batches += 1
                    continue
                new_ids.discard(message.batch_id)  # a second copy in this flush is a duplicate
                applied.new_batches.append(message)
                step = track_seq(agents.get(message.agent_id), message, item.received_at)
                agents[message.agent_id] = step.agent
                if step.gap is not None:
                    applied.gaps.append(step.gap)
                if step.late:
                    result.late_batches += 1
                    applied.late.append(message)
        return applied

    @staticmethod
    def _apply_status(
        agents: dict[str, AgentRecord], status: AgentStatus, received_at: datetime, result: FlushResult
    ) -> None:
        agent = agents.get(status.agent_id)
        if status.state is AgentState.ONLINE:
            agents[status.agent_id] = apply_birth(agent, status, received_at)
            return
        offline = apply_will(agent, status, received_at)
        if offline is not None:
            agents[status.agent_id] = offline
            result.offline_agents.append(status.agent_id)

    def _owners(self, conn: sa.Connection, accepted: list[Received]) -> dict[str, str]:
        """The enrolled agent of each site in ``accepted`` that is enrolled (one select, locking
        those sites' rows until the flush commits)."""
        sites = sorted({item.message.site_id for item in accepted if item.message is not None})
        if not sites:
            return {}
        found = conn.execute(self.statements.owners, {"ids": self.ids(sites)})
        return {row.site_id: row.agent_id for row in found}

    def _insert_batches(self, conn: sa.Connection, batches: list[Received], now: datetime) -> set[str]:
        rows: dict[str, tuple[Any, ...]] = {}
        for item in batches:
            batch = item.message
            assert isinstance(batch, PreparedBatch)
            batch_id = batch.batch_id
            if batch_id not in rows:
                rows[batch_id] = (
                    batch_id,
                    batch.site_id,
                    batch.agent_id,
                    batch.boot,
                    batch.seq,
                    batch.sent_at,
                    now,
                    len(batch.observations),
                    item.payload,  # as received: the observations' bodies (see models.Batch)
                )
        if not rows:
            return set()
        return self._insert_batch_rows(conn, list(rows.values()))

    def _load_agents(self, conn: sa.Connection, agent_ids: set[str]) -> dict[str, AgentRecord]:
        if not agent_ids:
            return {}
        found = conn.execute(self.statements.load_agents, {"ids": self.ids(sorted(agent_ids))})
        return {row.agent_id: AgentRecord(**{c: getattr(row, c) for c in AGENT_FIELDS}) for row in found}

    def _upsert_announced_devices(
        self, conn: sa.Connection, births: list[AgentStatus], now: datetime
    ) -> None:
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for birth in births:
            for device_id in {*birth.devices, *birth.intervals_s}:
                rows[birth.site_id, device_id] = {
                    "site_id": birth.site_id,
                    "device_id": device_id,
                    "tenant": self._tenant_of(birth.site_id),
                    "agent_id": birth.agent_id,
                    "status": "unknown",
                    "interval_s": birth.intervals_s.get(device_id),
                    "first_seen": now,
                    "vendor": "unknown",
                    "family": "unknown",
                    "model": "unknown",
                    "health": "unknown",
                }
        if not rows:
            return
        stmt = self.statements.announce_devices
        for chunk in chunks(list(rows.values())):
            conn.execute(stmt, chunk)

    def _write_agents(self, conn: sa.Connection, agents: dict[str, AgentRecord]) -> None:
        if not agents:
            return
        rows = [{c: getattr(row, c) for c in AGENT_FIELDS} for row in agents.values()]
        conn.execute(self.statements.upsert_agents, rows)

    def _fill_gaps(self, conn: sa.Connection, gaps: list[GapRecord], late: list[PreparedBatch]) -> int:
        """A late batch inside a recorded gap shrinks (or splits, or removes) it: the gaps table
        holds the ranges still missing. Returns how many late batches filled a gap."""
        filled = 0
        table = m.GAPS
        for batch in late:
            rest, hit = fill_gap(gaps, batch)
            if hit is not None:
                gaps[:] = rest
                filled += 1
                continue
            row = (
                conn.execute(
                    sa.select(table).where(
                        table.c.agent_id == batch.agent_id,
                        table.c.boot == batch.boot,
                        table.c.from_seq <= batch.seq,
                        table.c.to_seq >= batch.seq,
                    )
                )
            ).first()
            if row is None:
                continue
            filled += 1
            conn.execute(sa.delete(table).where(table.c.id == row.id))
            rest = split_gap(
                GapRecord(row.agent_id, row.site_id, row.boot, row.from_seq, row.to_seq), batch.seq
            )
            if rest:
                conn.execute(
                    sa.insert(table),
                    [
                        {
                            "agent_id": g.agent_id,
                            "site_id": g.site_id,
                            "boot": g.boot,
                            "from_seq": g.from_seq,
                            "to_seq": g.to_seq,
                            "detected_at": row.detected_at,
                        }
                        for g in rest
                    ],
                )
        return filled

    def _write_gaps(self, conn: sa.Connection, gaps: list[GapRecord], now: datetime) -> None:
        if gaps:
            rows = [
                {
                    "agent_id": g.agent_id,
                    "site_id": g.site_id,
                    "boot": g.boot,
                    "from_seq": g.from_seq,
                    "to_seq": g.to_seq,
                    "detected_at": now,
                }
                for g in gaps
            ]
            conn.execute(sa.insert(m.GAPS), rows)

    def _write_command_results(
        self, conn: sa.Connection, results: list[tuple[CommandResult, datetime]]
    ) -> None:
        if results:
            rows = [
                {
                    "command_id": str(r.command_id),
                    "site_id": r.site_id,
                    "agent_id": r.agent_id,
                    "device_id": r.device_id,
                    "ok": r.ok,
                    "detail": r.detail,
                    "received_at": at,
                }
                for r, at in results
            ]
            conn.execute(sa.insert(m.COMMAND_RESULTS), rows)

    def _write_dead_letters(self, conn: sa.Connection, dead: list[Received]) -> list[Rejection]:
        if not dead:
            return []
        limit = self._dead_letter_max_bytes
        rows = [
            {
                "topic": item.topic[:1024],
                "payload": bytes(item.payload[:limit]),
                "size": len(item.payload),
                "reason_code": item.code,
                "reason": item.reason[:4096],
                "received_at": item.received_at,
            }
            for item in dead
        ]
        conn.execute(sa.insert(m.DEAD_LETTERS), rows)
        return [Rejection(item.topic, item.code, item.reason, len(item.payload)) for item in dead]
