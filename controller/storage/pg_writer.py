"""The PostgreSQL writer: batch rows with one ``unnest`` insert, observations as COPY rows (encoded
by the decode workers, see :mod:`controller.shapes`), and device rows with their firmware history
derived on the server by one statement from a staged copy of the observations (and the software
components by one more, when the flush has any).

That statement evaluates the device rules of :mod:`controller.storage.rules` (``moves_forward``,
``firmware_changes``) in SQL: in one round trip, on one snapshot, without reading every device of
the flush first. tests/controller/test_rules.py checks it against those functions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from controller import shapes
from controller.shapes import PreparedBatch
from controller.storage import statements
from controller.storage.rules import AgentRecord
from controller.storage.writer import (
    BATCH_COLUMNS,
    CHUNK,
    DEVICE_LIST,
    DEVICE_UPDATED,
    FlushWriter,
    device_update,
)


def _one_of(column: sa.ColumnElement[str], name: str) -> sa.ColumnElement[bool]:
    """``column = ANY(:name)``, the values as one array (see :data:`statements.OneOf`)."""
    return column == sa.any_(sa.bindparam(name, type_=postgresql.ARRAY(sa.String())))


def _on_driver(conn: sa.Connection, call: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run ``call(asyncpg connection)`` inside the flush's transaction (PostgreSQL: the writer
    runs as synchronous code in SQLAlchemy's greenlet, see Store.write_flush)."""
    dbapi: Any = conn.connection.dbapi_connection
    return dbapi.run_async(call)


_INSERT_BATCHES_PG = sa.text(
    f"INSERT INTO batches ({BATCH_COLUMNS}) "
    "SELECT * FROM unnest(:ids, :sites, :agents, :boots, :seqs, :sent, :stored, :counts, :payloads) "
    "ON CONFLICT (batch_id) DO NOTHING RETURNING batch_id"
).bindparams(
    sa.bindparam("ids", type_=postgresql.ARRAY(sa.String())),
    sa.bindparam("sites", type_=postgresql.ARRAY(sa.String())),
    sa.bindparam("agents", type_=postgresql.ARRAY(sa.String())),
    sa.bindparam("boots", type_=postgresql.ARRAY(sa.BigInteger())),
    sa.bindparam("seqs", type_=postgresql.ARRAY(sa.BigInteger())),
    sa.bindparam("sent", type_=postgresql.ARRAY(sa.DateTime(timezone=True))),
    sa.bindparam("stored", type_=postgresql.ARRAY(sa.DateTime(timezone=True))),
    sa.bindparam("counts", type_=postgresql.ARRAY(sa.Integer())),
    sa.bindparam("payloads", type_=postgresql.ARRAY(sa.LargeBinary())),
)


# One stage row per stored observation (controller.shapes); from there one statement writes the
# firmware history and upserts the device rows, with the rules of controller.storage.rules (which
# the SQLite writer applies in Python). All of it reads one snapshot: ``hist`` compares with the
# firmware stored before this statement, the upsert keeps the newest firmware seen (or the stored
# one). Ties in observed_at keep the order of arrival (ctid: the stage is filled by one COPY, never
# updated).
_OBS_STAGE_PG = (
    "CREATE TEMP TABLE IF NOT EXISTS obs_stage ("
    + ", ".join(f"{n} {t}" for n, t in zip(shapes.STAGE_COLUMNS, shapes.STAGE_TYPES, strict=True))
    + ") ON COMMIT DELETE ROWS"
)
# The device columns an upsert sets (firmware_version below: a missing one keeps the stored one).
_DEVICE_SET = ", ".join(
    f"{name} = {device_update(name, f'excluded.{name}', f'devices.{name}')}"
    for name in DEVICE_UPDATED
    if name != "firmware_version"
)
_DEVICES_FROM_STAGE_PG = f"""
WITH a AS MATERIALIZED (
    SELECT agent_id, intervals_s::jsonb AS intervals FROM agents WHERE agent_id = ANY($3::text[])
), s AS (
    SELECT st.*, st.ctid AS pos, first_value(st.firmware) OVER (
        PARTITION BY st.site_id, st.device_id ORDER BY st.firmware IS NULL, st.observed_at DESC, st.ctid DESC
    ) AS newest_firmware
    FROM obs_stage AS st
), hist AS (
    INSERT INTO firmware_history (site_id, device_id, version, first_seen)
    SELECT site_id, device_id, firmware, observed_at FROM (
        SELECT f.site_id, f.device_id, f.firmware, f.observed_at, f.pos,
            lag(f.firmware, 1, d.firmware_version) OVER (
                PARTITION BY f.site_id, f.device_id ORDER BY f.observed_at, f.pos
            ) AS previous
        FROM s AS f LEFT JOIN devices AS d ON d.site_id = f.site_id AND d.device_id = f.device_id
        WHERE f.firmware IS NOT NULL
    ) AS changes
    WHERE firmware IS DISTINCT FROM previous
    ORDER BY site_id, device_id, observed_at, pos
)
INSERT INTO devices ({DEVICE_LIST})
SELECT DISTINCT ON (s.site_id, s.device_id)
    s.site_id, s.device_id, t.tenant, s.agent_id, s.vendor, s.family, s.model, s.serial, s.hostname,
    s.driver, s.newest_firmware, s.health, s.reachable, 'active', (a.intervals ->> s.device_id)::float8,
    $4, s.observed_at, s.last_seen_epoch
FROM s JOIN unnest($1::text[], $2::text[]) AS t(site_id, tenant) ON t.site_id = s.site_id
LEFT JOIN a ON a.agent_id = s.agent_id
ORDER BY s.site_id, s.device_id, s.observed_at DESC, s.pos DESC
ON CONFLICT (site_id, device_id) DO UPDATE SET
    {_DEVICE_SET},
    firmware_version = coalesce(excluded.firmware_version, devices.firmware_version)
WHERE devices.last_seen_epoch IS NULL OR devices.last_seen_epoch <= excluded.last_seen_epoch
"""


# Every component of every staged observation (controller.storage.rules.component_changes): a
# history row where a component's version differs from the one before it (the stored one first),
# in observed order; the current row of each component from the device's newest observation that
# has it, written only when the device row moves forward (its stored last_seen_epoch, read before
# the device statement runs) and only when the version or scheme changed.
#
# Nearly every observation reports the components its device's newest one did: ``changed`` keeps
# only the devices with an observation whose components text differs from the stored one
# (device_software, one text comparison per staged row), and only those are taken apart. Without
# it the statement cost the server as much as the device statement (bench/ingest.py: 47,000 →
# 19,000 observations per server CPU-second).
_COMPONENTS_FROM_STAGE_PG = """
WITH changed AS MATERIALIZED (
    SELECT DISTINCT st.site_id, st.device_id
    FROM obs_stage AS st
    LEFT JOIN device_software AS ds ON ds.site_id = st.site_id AND ds.device_id = st.device_id
    WHERE st.software IS NOT NULL AND st.software IS DISTINCT FROM ds.software
), s AS MATERIALIZED (
    SELECT st.site_id, st.device_id, st.observed_at, st.last_seen_epoch AS epoch, st.ctid AS pos,
        st.software, (d.last_seen_epoch IS NULL OR d.last_seen_epoch <= st.last_seen_epoch) AS forward
    FROM obs_stage AS st
    JOIN changed AS ch ON ch.site_id = st.site_id AND ch.device_id = st.device_id
    LEFT JOIN devices AS d ON d.site_id = st.site_id AND d.device_id = st.device_id
    WHERE st.software IS NOT NULL
), c AS MATERIALIZED (
    SELECT s.site_id, s.device_id, s.observed_at, s.pos, s.forward,
        x.part ->> 0 AS component, x.part ->> 1 AS version, x.part ->> 2 AS scheme, x.n
    FROM s CROSS JOIN LATERAL jsonb_array_elements(s.software::jsonb) WITH ORDINALITY AS x(part, n)
), hist AS (
    INSERT INTO component_history (site_id, device_id, component, version, scheme, first_seen)
    SELECT site_id, device_id, component, version, scheme, observed_at FROM (
        SELECT c.*, lag(c.version, 1, dc.version) OVER (
            PARTITION BY c.site_id, c.device_id, c.component ORDER BY c.observed_at, c.pos, c.n
        ) AS previous
        FROM c LEFT JOIN device_components AS dc
            ON dc.site_id = c.site_id AND dc.device_id = c.device_id AND dc.component = c.component
    ) AS changes
    WHERE version IS DISTINCT FROM previous
    ORDER BY site_id, device_id, observed_at, pos, n
), sig AS (
    INSERT INTO device_software (site_id, device_id, software)
    SELECT DISTINCT ON (s.site_id, s.device_id) s.site_id, s.device_id, s.software
    FROM s WHERE s.forward
    ORDER BY s.site_id, s.device_id, s.observed_at DESC, s.pos DESC
    ON CONFLICT (site_id, device_id) DO UPDATE SET software = excluded.software
)
INSERT INTO device_components (site_id, device_id, component, version, scheme)
SELECT DISTINCT ON (c.site_id, c.device_id, c.component)
    c.site_id, c.device_id, c.component, c.version, c.scheme
FROM c WHERE c.forward
ORDER BY c.site_id, c.device_id, c.component, c.observed_at DESC, c.pos DESC, c.n DESC
ON CONFLICT (site_id, device_id, component) DO UPDATE
    SET version = excluded.version, scheme = excluded.scheme
WHERE (device_components.version, device_components.scheme)
    IS DISTINCT FROM (excluded.version, excluded.scheme)
"""


class PgFlushWriter(FlushWriter):
    statements = statements.build(postgresql.insert, _one_of)

    def ids(self, values: list[str]) -> list[str]:
        return values

    def _insert_batch_rows(self, conn: sa.Connection, rows: list[tuple[Any, ...]]) -> set[str]:
        """Insert-or-ignore the batch rows with one statement text whatever their number (arrays):
        SQLAlchemy compiled a multi-VALUES insert anew for every flush (a millisecond per ten rows)."""
        inserted: set[str] = set()
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            names = ("ids", "sites", "agents", "boots", "seqs", "sent", "stored", "counts", "payloads")
            arrays = {name: [row[i] for row in chunk] for i, name in enumerate(names)}
            arrays["sent"] = [at.astimezone(UTC) for at in arrays["sent"]]
            arrays["stored"] = [at.astimezone(UTC) for at in arrays["stored"]]
            inserted.update((conn.execute(_INSERT_BATCHES_PG, arrays)).scalars())
        return inserted

    def _write_observations(
        self,
        conn: sa.Connection,
        batches: list[PreparedBatch],
        agents: dict[str, AgentRecord],  # noqa: ARG002 (the statement reads the agents' intervals itself)
        now: datetime,
    ) -> int:
        """PostgreSQL: the batches' COPY rows (encoded by the decode workers) go to the server as
        they are; device rows and firmware history are derived there, in one statement."""
        rows: list[bytes] = [shapes.HEADER]
        stage: list[bytes] = [shapes.HEADER]
        count = 0
        for batch in batches:
            copy = batch.copy
            if copy is None:  # prepared for another store (tests, tools): encode it here
                copy = shapes.encode_copy(batch.site_id, batch.agent_id, batch.batch_id, batch.observations)
            rows.append(copy.observations)
            stage.append(copy.stage)
            count += len(batch.observations)
        rows.append(shapes.TRAILER)
        stage.append(shapes.TRAILER)
        sites = sorted({batch.site_id for batch in batches})
        tenants = [self._tenant_of(site) for site in sites]
        agent_ids = sorted({batch.agent_id for batch in batches})
        has_software = any(obs.software for batch in batches for obs in batch.observations)

        async def write(driver: Any) -> None:
            # A memoryview: asyncpg takes bytes for a file name.
            await driver.copy_to_table(
                "observations",
                source=memoryview(b"".join(rows)),
                columns=shapes.OBSERVATION_COLUMNS,
                format="binary",
            )
            # Every flush, not once per connection: a rolled-back first flush takes the table with it.
            await driver.execute(_OBS_STAGE_PG)
            await driver.copy_to_table(
                "obs_stage",
                source=memoryview(b"".join(stage)),
                columns=shapes.STAGE_COLUMNS,
                format="binary",
            )
            if has_software:  # before the device rows move: it compares with their stored time
                await driver.execute(_COMPONENTS_FROM_STAGE_PG)
            await driver.execute(_DEVICES_FROM_STAGE_PG, sites, tenants, agent_ids, now)

        _on_driver(conn, write)
        return count
