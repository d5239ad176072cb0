"""Plain records passed between ingest and the store (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from collector.wire import AgentStatus, CommandResult, Heartbeat, ObservationBatch, encode
from controller.shapes import PreparedBatch, prepare_batch

AGENT_MISMATCH = "agent_mismatch"  # the site is enrolled for another agent
NOT_ENROLLED = "not_enrolled"  # no such site enrolled (or its enrollment revoked)
FUTURE_TIMESTAMP = "future_timestamp"  # sent_at or an observed_at beyond [ingest] max_future_skew_s
STORE_FAILED = "store_failed"  # valid on the wire, refused by the database

# An ObservationBatch is accepted too (tests, tools); the store prepares it first (see prepared()).
Accepted = PreparedBatch | ObservationBatch | AgentStatus | CommandResult | Heartbeat


@dataclass(frozen=True, slots=True)
class Received:
    """One MQTT message after decoding: either ``message`` or a rejection (``code``, ``reason``)."""

    topic: str
    payload: bytes
    received_at: datetime
    message: Accepted | None = None
    code: str = ""
    reason: str = ""


def prepared(items: list[Received], *, copy: bool = False) -> list[Received]:
    """``items`` with every :class:`ObservationBatch` replaced by its :class:`PreparedBatch`
    (``copy``: with its PostgreSQL COPY rows) and the payload by the batch encoded: the store
    keeps a batch's payload as its observations' bodies, and a caller handing over a model (a
    test, a tool) may have sent other bytes."""
    if not any(isinstance(item.message, ObservationBatch) for item in items):
        return items
    return [
        Received(
            item.topic, encode(item.message), item.received_at, message=prepare_batch(item.message, copy=copy)
        )
        if isinstance(item.message, ObservationBatch)
        else item
        for item in items
    ]


@dataclass(frozen=True, slots=True)
class Rejection:
    topic: str
    code: str
    reason: str
    size: int


@dataclass(frozen=True, slots=True)
class GapRecord:
    agent_id: str
    site_id: str
    boot: int
    from_seq: int
    to_seq: int


@dataclass(slots=True)
class FlushResult:
    """What one transaction did; counted and logged by the caller after the commit."""

    stored_batches: int = 0
    duplicate_batches: int = 0
    late_batches: int = 0
    filled: int = 0  # late batches that filled (part of) a recorded gap
    observations: int = 0
    statuses: int = 0
    command_results: int = 0
    detected: list[GapRecord] = field(default_factory=list)  # gaps noticed by this flush
    gaps: list[GapRecord] = field(default_factory=list)  # of those, what is still missing after it
    rejected: list[Rejection] = field(default_factory=list)
    offline_agents: list[str] = field(default_factory=list)
    # (site_id, agent_id, boot, seq) of every batch this flush committed (stored now or before):
    # the controller confirms them to their agents (collector.wire.BatchAck).
    confirmed: list[tuple[str, str, int, int]] = field(default_factory=list)
