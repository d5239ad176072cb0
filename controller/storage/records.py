"""Plain records passed between ingest and the store (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from collector.wire import AgentStatus, CommandResult, ObservationBatch

AGENT_MISMATCH = "agent_mismatch"
STORE_FAILED = "store_failed"  # valid on the wire, refused by the database

Accepted = ObservationBatch | AgentStatus | CommandResult


@dataclass(frozen=True, slots=True)
class Received:
    """One MQTT message after decoding: either ``message`` or a rejection (``code``, ``reason``)."""

    topic: str
    payload: bytes
    received_at: datetime
    message: Accepted | None = None
    code: str = ""
    reason: str = ""


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
