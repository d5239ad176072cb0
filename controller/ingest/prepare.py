"""Messages decoded into the form the writer stores, built wherever a CPU is free.

Validating every field of an observation and shaping it into rows (the device columns, the
firmware version; the bodies stay in the payload, stored once per batch) is most of the
controller's CPU per observation, and none of it needs the database or the event loop.
:func:`prepare_many` does it for a list of received payloads and returns small, picklable
results, so :mod:`controller.ingest.decode_pool` can run it in worker processes while the event loop
receives and writes; run inline it is the same code.

This module imports only the wire contract, :mod:`controller.shapes` and pydantic (no SQLAlchemy,
no aiomqtt; the package's ``__init__`` imports nothing): a worker process starts in about half a
second.
"""

from __future__ import annotations

from dataclasses import dataclass

from collector import wire
from collector.wire import AgentStatus, CommandResult, Heartbeat, ObservationBatch
from collector.wire.codec import WRONG_TYPE
from controller.ingest.decode import decode
from controller.shapes import PreparedBatch, prepare_batch

Prepared = PreparedBatch | AgentStatus | CommandResult | Heartbeat


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one payload: ``message``, or a rejection (``code``, ``reason``)."""

    kind: str  # the topic kind ("obs", "status", "cmd_result"), or "invalid"
    message: Prepared | None = None
    code: str = ""
    reason: str = ""


def prepare(topic: str, payload: bytes, *, prefix: str, max_payload: int, copy: bool = False) -> Outcome:
    """Decode and shape one payload (``copy``: see :func:`prepare_batch`); never raises."""
    try:
        parsed, decoded = decode(topic, payload, prefix=prefix, max_payload=max_payload)
    except wire.DecodeError as err:
        return Outcome("invalid", code=err.code, reason=err.reason)
    kind = parsed.kind.value
    if isinstance(decoded, ObservationBatch):
        return Outcome(kind, prepare_batch(decoded, copy=copy))
    if isinstance(decoded, AgentStatus | CommandResult | Heartbeat):
        return Outcome(kind, decoded)
    # A command on our own command topic: not ours to store.
    return Outcome("invalid", code=WRONG_TYPE, reason="type: cmd")


def prepare_many(
    jobs: list[tuple[str, bytes]], prefix: str, max_payload: int, copy: bool = False
) -> list[Outcome]:
    """:func:`prepare` for each (topic, payload); the unit of work of a decode worker."""
    return [
        prepare(topic, payload, prefix=prefix, max_payload=max_payload, copy=copy) for topic, payload in jobs
    ]
