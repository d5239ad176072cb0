"""What the ingest stage hands the store: batches shaped for storage, and their rows in
PostgreSQL's binary COPY format. Both sides import this module; it imports only the wire contract.

A :class:`PreparedBatch` is an ObservationBatch after validation, flattened (:func:`prepare_batch`):
the device columns, the firmware version, the observed time in microseconds; the bodies stay in
the payload, stored once per batch. It pickles cheaply: decode workers
(:mod:`controller.ingest.decode_pool`) hand every batch to the event loop.

COPY rows: on PostgreSQL the flush writer streams these bytes as they are (``COPY … FROM STDIN
(FORMAT binary)``): building the rows in Python and encoding them in asyncpg cost the single writer
about 13 µs per observation on the event loop (a third of a flush), while a decode worker encodes
them beside it. The writer concatenates the tuples of the batches it stores between
:data:`HEADER` and :data:`TRAILER`; a batch prepared without them (tools, tests) it encodes itself.

Format (PostgreSQL documentation, "COPY", binary format): a header, then per row a 16-bit field
count and per field a 32-bit length (-1 for NULL) and the value in the type's binary ``send``
form: text as UTF-8, ``timestamptz`` as 64-bit microseconds since 2000-01-01 UTC, ``float8`` as a
big-endian IEEE double, ``int4`` as a 32-bit integer, ``bool`` as one byte; after the last row
a 16-bit -1. All integers are big-endian.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from collector.wire import ObservationBatch

# (name, version, scheme) per component; the device's firmware is the one named "firmware".
Component = tuple[str, str, str | None]
Components = tuple[Component, ...]


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
    # Every software component the observation carries, (name, version, scheme) in its order:
    # each reaches the store as its own row (device_components, component_history).
    software: Components = ()


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
    # The observations as PostgreSQL COPY rows (controller.shapes), when the store is PostgreSQL.
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
    # The devices of a batch mostly report the same components: one tuple for all of them, so
    # pickle writes it once (its memo is by identity) and encode_copy encodes it once.
    softwares: dict[Components, Components] = {}
    for obs in batch.observations:
        identity = obs.identity
        software: Components = tuple([(c.name, c.version, c.scheme) for c in obs.software])
        software = softwares.setdefault(software, software)
        rows.append(
            PreparedObservation(
                obs.device_id,
                epoch_us(obs.observed_at),
                _firmware(software),
                identity.vendor,
                identity.family,
                identity.model,
                identity.serial,
                identity.hostname,
                obs.driver,
                obs.health.status.value,
                obs.reachable,
                software,
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


def _firmware(software: Components) -> str | None:
    """The version of the component named ``firmware`` (Observation.firmware_version)."""
    for name, version, _scheme in software:
        if name == "firmware":
            return version
    return None


HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)  # signature, flags, no extension
TRAILER = struct.pack("!h", -1)

# observations(site_id, device_id, batch_id, observed_at, position): the body is the batch's payload
OBSERVATION_COLUMNS = ("site_id", "device_id", "batch_id", "observed_at", "position")
# One stage row per observation with what its device row needs (the writer's obs_stage table).
STAGE_COLUMNS = (
    "site_id", "device_id", "agent_id", "vendor", "family", "model", "serial", "hostname", "driver",
    "firmware", "health", "reachable", "observed_at", "last_seen_epoch", "software",
)  # fmt: skip
STAGE_TYPES = (
    "text", "text", "text", "text", "text", "text", "text", "text", "text",
    "text", "text", "boolean", "timestamptz", "double precision", "text",
)  # fmt: skip

_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01T00:00:00Z in microseconds since the UNIX epoch
_NULL = struct.pack("!i", -1)
_TRUE = struct.pack("!ib", 1, 1)
_FALSE = struct.pack("!ib", 1, 0)
_OBSERVATION_FIELDS = struct.pack("!h", len(OBSERVATION_COLUMNS))
_STAGE_FIELDS = struct.pack("!h", len(STAGE_COLUMNS))
_TIME = struct.Struct("!iq").pack  # length 8, microseconds since 2000
_DOUBLE = struct.Struct("!id").pack  # length 8, IEEE double
_LENGTH = struct.Struct("!i").pack
_INT4 = struct.Struct("!ii").pack  # length 4, 32-bit integer


class CopyRows(NamedTuple):
    """A batch's observation rows and stage rows, tuples only (no header, no trailer)."""

    observations: bytes
    stage: bytes


class _Texts(dict[str | None, bytes]):
    """Text fields (length + UTF-8) by value: a batch repeats its site, agent, vendor, model…"""

    def __missing__(self, value: str | None) -> bytes:
        if value is None:
            field = _NULL
        else:
            data = value.encode()
            field = _LENGTH(len(data)) + data
        self[value] = field
        return field


def encode_copy(
    site_id: str, agent_id: str, batch_id: str, observations: Sequence[PreparedObservation]
) -> CopyRows:
    """The COPY tuples of one batch's observations: rows for ``observations`` and for the stage."""
    texts = _Texts()
    softwares: dict[Components, bytes] = {}
    site, agent, batch = texts[site_id], texts[agent_id], texts[batch_id]
    rows: list[bytes] = []
    stage: list[bytes] = []
    for position, obs in enumerate(observations):
        device = texts[obs.device_id]
        at = _TIME(8, obs.observed_us - _PG_EPOCH_US)
        rows += (_OBSERVATION_FIELDS, site, device, batch, at, _INT4(4, position))
        stage += (
            _STAGE_FIELDS,
            site,
            device,
            agent,
            texts[obs.vendor],
            texts[obs.family],
            texts[obs.model],
            texts[obs.serial],
            texts[obs.hostname],
            texts[obs.driver],
            texts[obs.firmware],
            texts[obs.health],
            _TRUE if obs.reachable else _FALSE,
            at,
            _DOUBLE(8, obs.observed_us / 1e6),
            _software(softwares, obs.software),
        )
    return CopyRows(b"".join(rows), b"".join(stage))


def software_text(software: Components) -> str:
    """The components as the store compares them: ``[[name, version, scheme], …]`` as compact
    JSON, always the same text for the same components (``device_software.software``)."""
    return json.dumps(software, ensure_ascii=False, separators=(",", ":"))


def _software(encoded: dict[Components, bytes], software: Components) -> bytes:
    """The components as a text field (:func:`software_text`), NULL when none. A batch's devices
    mostly report the same components: the encoded field is cached by value in ``encoded``."""
    if not software:
        return _NULL
    field = encoded.get(software)
    if field is None:
        data = software_text(software).encode()
        field = encoded[software] = _LENGTH(len(data)) + data
    return field
