"""Messages of wire schema version 1.

Every message carries ``schema`` (the wire version), the sending ``site_id`` and ``agent_id``,
and an ordering pair ``(boot, seq)``: ``boot`` is the agent's birth counter (persisted, incremented
at each agent start and announced in its birth message, like Sparkplug B's bdSeq) and ``seq``
counts the agent's messages from 0 within one boot, assigned when the message enters the durable
outbox. The controller records a gap when ``seq`` skips within a boot. ``batch_id`` makes a QoS 1
redelivery recognisable as such.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from collector.actions import ActionResult
from collector.model import AgentId, DeviceId, Observation, ShortText, SiteId

SCHEMA_VERSION = 1
MAX_BATCH = 1000
_Count = Annotated[int, Field(ge=0)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = Field(1, alias="schema")
    site_id: SiteId
    agent_id: AgentId
    sent_at: datetime


def new_batch_id() -> uuid.UUID:
    return uuid.uuid4()


class ObservationBatch(_Message):
    type: Literal["obs"] = "obs"
    batch_id: uuid.UUID
    boot: int = Field(ge=0)
    seq: int = Field(ge=0)
    observations: list[Observation] = Field(min_length=1, max_length=MAX_BATCH)


class AgentState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class AgentStatus(_Message):
    """Birth (retained, ``online``) and last will (``offline``) of an agent."""

    type: Literal["status"] = "status"
    state: AgentState
    boot: int = Field(ge=0)
    version: ShortText = ""
    capabilities: list[Annotated[str, StringConstraints(max_length=64)]] = Field(
        default_factory=list, max_length=64
    )
    devices: list[DeviceId] = Field(default_factory=list, max_length=100_000)
    # Expected poll interval per device, so the controller can mark a device stale.
    intervals_s: dict[DeviceId, float] = Field(default_factory=dict)


class BatchAck(_Message):
    """The controller to one agent (``agent_id``): these batches are committed to its store.

    ``ranges`` are ``[boot, first_seq, last_seq]`` (inclusive), each seq committed, whether
    stored now, stored before (a redelivery) or refused into the dead letters for good. The agent
    keeps every outbox row until a BatchAck names it, and re-sends what stays unconfirmed;
    ``batch_id`` makes the re-sends harmless. A lost BatchAck costs one re-send.
    """

    type: Literal["ack"] = "ack"
    ranges: list[tuple[_Count, _Count, _Count]] = Field(min_length=1, max_length=10_000)


class Heartbeat(_Message):
    """Every ``heartbeat_s``: the agent is alive, and how its outbox and polls are doing. The
    controller marks an agent offline when heartbeats are overdue (a last will can be lost)."""

    type: Literal["heartbeat"] = "heartbeat"
    boot: int = Field(ge=0)
    interval_s: float = Field(gt=0, le=86_400)
    outbox_rows: int = Field(ge=0)
    outbox_bytes: int = Field(ge=0)
    oldest_unsent_s: float | None = Field(None, ge=0)  # age of the oldest row not yet confirmed
    dropped: int = Field(ge=0)  # messages dropped or not stored (full disk) since the agent started
    polls: dict[Annotated[str, StringConstraints(max_length=32)], _Count] = Field(
        default_factory=dict, max_length=32
    )  # poll results by outcome since the agent started


class Command(BaseModel):
    """A signed command, controller → agent (:mod:`collector.wire.commands`).

    ``envelope`` is the canonical bytes of a :class:`~collector.wire.commands.CommandEnvelope`,
    base64, exactly as signed; ``signature`` is the Ed25519 signature of those bytes, base64.
    ``site_id`` only routes: the agent trusts the signed envelope's site alone.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = Field(1, alias="schema")
    type: Literal["cmd"] = "cmd"
    site_id: SiteId
    envelope: Annotated[str, StringConstraints(min_length=1, max_length=12_000)]
    signature: Annotated[str, StringConstraints(max_length=256)] = ""


class CommandResult(_Message):
    """Agent → controller: what came of a command, or why it was refused.

    ``refusal`` is a stable code of :data:`collector.wire.commands.REFUSAL_CODES` when the agent
    did not execute it (``command_id`` and ``device_id`` are then what the command claimed, the
    nil UUID and ``unknown`` when it claimed nothing readable); otherwise ``result`` is the
    driver's :class:`~collector.actions.ActionResult`. A refused replay carries the first
    execution's result where the agent still has it.
    """

    type: Literal["cmd_result"] = "cmd_result"
    command_id: uuid.UUID
    device_id: DeviceId
    ok: bool
    detail: ShortText = ""
    job_id: Annotated[str, StringConstraints(max_length=128)] | None = None
    refusal: Annotated[str, StringConstraints(max_length=32)] | None = None
    result: ActionResult | None = None
