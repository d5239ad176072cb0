"""Messages decoded into the form the writer stores, built wherever a CPU is free.

Validating every field of an observation and shaping it into rows (the device columns, the
firmware version; the bodies stay in the payload, stored once per batch) is most of the
controller's CPU per observation, and none of it needs the database or the event loop.
:func:`prepare_many` does it for a list of received payloads and returns small, picklable
results, so :mod:`controller.decode_pool` can run it in worker processes while the event loop
receives and writes; run inline it is the same code.

This module imports only the wire contract and pydantic (no SQLAlchemy, no aiomqtt): a worker
process starts in about half a second.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from collector import wire
from collector.wire import AgentStatus, CommandResult, Heartbeat, ObservationBatch
from collector.wire.codec import WRONG_TYPE
from controller.decode import decode
from controller.pg_copy import CopyRows
from controller.pg_copy import encode as encode_copy


class PreparedObservation(NamedTuple):
    """One observation as the writer stores it (a tuple: cheap to pickle)."""

    device_id: str
    observed_us: int  # microseconds since the epoch, UTC: exact, and pickles 4x faster than a datetime
    firmware: str | None
    vendor: str
    family: str
    model: str
    serial: str | None
    hostname: str | None
    driver: str
    health: str
    reachable: bool


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """An :class:`ObservationBatch` after validation, flattened for storage."""

    site_id: str
    agent_id: str
    batch_id: str
    boot: int
    seq: int
    sent_at: datetime
    observations: tuple[PreparedObservation, ...]
    newest_us: int  # the newest observed_at (microseconds since the epoch), for the future-skew check
    # The observations as PostgreSQL COPY rows (controller.pg_copy), when the store is PostgreSQL.
    copy: CopyRows | None = None

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        """Pickled with the observations as plain tuples: pickle reduces a NamedTuple through a
        Python-level ``__getnewargs__`` each, which made a batch 3.5x dearer to pickle and 3x to
        unpickle (the decode workers hand every batch to the event loop this way)."""
        values = [getattr(self, name) for name in _BATCH_FIELDS]
        values[_OBSERVATIONS_AT] = tuple(map(tuple, self.observations))
        return _restore_batch, tuple(values)


# PreparedObservation from a plain tuple, without NamedTuple._make's Python-level call.
_new_observation = functools.partial(tuple.__new__, PreparedObservation)


# Every field, in order, taken from the class: a field added later is pickled too.
_BATCH_FIELDS = tuple(field.name for field in dataclasses.fields(PreparedBatch))
_OBSERVATIONS_AT = _BATCH_FIELDS.index("observations")


def _restore_batch(*values: Any) -> PreparedBatch:
    fields = list(values)
    fields[_OBSERVATIONS_AT] = tuple(map(_new_observation, fields[_OBSERVATIONS_AT]))
    return PreparedBatch(*fields)


Prepared = PreparedBatch | AgentStatus | CommandResult | Heartbeat


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one payload: ``message``, or a rejection (``code``, ``reason``)."""

    kind: str  # the topic kind ("obs", "status", "cmd_result"), or "invalid"
    message: Prepared | None = None
    code: str = ""
    reason: str = ""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def epoch_us(at: datetime) -> int:
    """``at`` as microseconds since the epoch; a naive datetime counts as UTC (agents send UTC)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return (at - _EPOCH) // _MICROSECOND


def utc_from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def prepare_batch(batch: ObservationBatch, *, copy: bool = False) -> PreparedBatch:
    """``batch`` flattened; with ``copy``, also encoded as PostgreSQL COPY rows."""
    rows = []
    for obs in batch.observations:
        identity = obs.identity
        rows.append(
            PreparedObservation(
                obs.device_id,
                epoch_us(obs.observed_at),
                obs.firmware_version(),
                identity.vendor,
                identity.family,
                identity.model,
                identity.serial,
                identity.hostname,
                obs.driver,
                obs.health.status.value,
                obs.reachable,
            )
        )
    batch_id = str(batch.batch_id)
    return PreparedBatch(
        batch.site_id,
        batch.agent_id,
        batch_id,
        batch.boot,
        batch.seq,
        batch.sent_at.astimezone(UTC),
        tuple(rows),
        max((row.observed_us for row in rows), default=0),
        encode_copy(batch.site_id, batch.agent_id, batch_id, rows) if copy else None,
    )


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
