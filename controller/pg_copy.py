"""A batch's rows in PostgreSQL's binary COPY format, encoded where the batch is decoded.

On PostgreSQL the flush writer streams these bytes as they are (``COPY … FROM STDIN (FORMAT
binary)``): building the rows in Python and encoding them in asyncpg cost the single writer about
13 µs per observation on the event loop (a third of a flush), while a decode worker (a process of
its own, see :mod:`controller.decode_pool`) encodes them beside it. The writer concatenates the
tuples of the batches it stores between :data:`HEADER` and :data:`TRAILER`.

Format (PostgreSQL documentation, "COPY", binary format): a header, then per row a 16-bit field
count and per field a 32-bit length (-1 for NULL) and the value in the type's binary ``send``
form: text as UTF-8, ``timestamptz`` as 64-bit microseconds since 2000-01-01 UTC, ``float8`` as a
big-endian IEEE double, ``int4`` as a 32-bit integer, ``bool`` as one byte; after the last row
a 16-bit -1. All integers are big-endian.

Pure Python on the standard library: decode workers import it without SQLAlchemy.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from controller.prepare import PreparedObservation

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)  # signature, flags, no extension
TRAILER = struct.pack("!h", -1)

# observations(site_id, device_id, batch_id, observed_at, position): the body is the batch's payload
OBSERVATION_COLUMNS = ("site_id", "device_id", "batch_id", "observed_at", "position")
# One stage row per observation with what its device row needs (the writer's obs_stage table).
STAGE_COLUMNS = (
    "site_id", "device_id", "agent_id", "vendor", "family", "model", "serial", "hostname", "driver",
    "firmware", "health", "reachable", "observed_at", "last_seen_epoch",
)  # fmt: skip
STAGE_TYPES = (
    "text", "text", "text", "text", "text", "text", "text", "text", "text",
    "text", "text", "boolean", "timestamptz", "double precision",
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


def encode(
    site_id: str, agent_id: str, batch_id: str, observations: Sequence[PreparedObservation]
) -> CopyRows:
    """The COPY tuples of one batch's observations: rows for ``observations`` and for the stage."""
    texts = _Texts()
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
        )
    return CopyRows(b"".join(rows), b"".join(stage))
