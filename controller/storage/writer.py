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
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from collector.wire import AgentState, AgentStatus, CommandResult, Heartbeat
from controller import pg_copy
from controller.prepare import PreparedBatch, PreparedObservation, epoch_us, utc_from_us
from controller.storage import models as m
from controller.storage.records import (
    AGENT_MISMATCH,
    FUTURE_TIMESTAMP,
    NOT_ENROLLED,
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
    firmware_changes,
    moves_forward,
    split_gap,
    track_seq,
)

_EPOCH_NAIVE = datetime(1970, 1, 1)  # noqa: DTZ001 (SQLite stores naive UTC)

# Rows per multi-VALUES statement: far below SQLite's and PostgreSQL's bound-parameter limits.
_CHUNK = 1000


def _on_driver(conn: sa.Connection, call: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run ``call(asyncpg connection)`` inside the flush's transaction (PostgreSQL: the writer
    runs as synchronous code in SQLAlchemy's greenlet, see Store.write_flush)."""
    dbapi: Any = conn.connection.dbapi_connection
    return dbapi.run_async(call)


def _one_of(dialect: str, column: sa.ColumnElement[str], name: str) -> sa.ColumnElement[bool]:
    """``column IN :name`` as one statement text whatever the number of values (an array on
    PostgreSQL, a JSON array on SQLite, see :func:`_values`): an IN list is a new statement for
    every length, which PostgreSQL prepared and planned anew in most flushes (5 ms each)."""
    if dialect == "postgresql":
        return column == sa.any_(sa.bindparam(name, type_=postgresql.ARRAY(sa.String())))
    listed: sa.Select[tuple[str]] = sa.select(sa.column("value")).select_from(
        sa.func.json_each(sa.bindparam(name, type_=sa.String()))
    )
    return column.in_(listed.scalar_subquery())


def _values(dialect: str, values: list[str]) -> list[str] | str:
    """The parameter for an :func:`_one_of` clause."""
    return values if dialect == "postgresql" else json.dumps(values)


@functools.cache
def _statements(dialect: str) -> _Statements:
    """The statements of every flush, built once per dialect: built anew in each flush, SQLAlchemy's
    expression objects (reference cycles, ~140 per flush) left the garbage collector 150,000
    objects to free at once every 20-30 s under load, a pause of ~150 ms."""
    agents = m.AGENTS
    upsert = postgresql.insert(agents) if dialect == "postgresql" else sqlite.insert(agents)
    upsert = upsert.on_conflict_do_update(
        index_elements=["agent_id"],
        set_={name: upsert.excluded[name] for name in AGENT_FIELDS if name != "agent_id"},
    )
    devices = m.DEVICES
    announce = postgresql.insert(devices) if dialect == "postgresql" else sqlite.insert(devices)
    announce = announce.on_conflict_do_update(
        index_elements=["site_id", "device_id"],
        set_={
            "interval_s": sa.func.coalesce(announce.excluded.interval_s, devices.c.interval_s),
            "agent_id": announce.excluded.agent_id,
        },
    )
    sites = m.SITES
    return _Statements(
        # Locked, in one order (PostgreSQL; SQLite has one writer anyway): flushes for one site on
        # several controllers take turns, also before its agent has an ``agents`` row to lock.
        owners=sa.select(sites.c.site_id, sites.c.agent_id)
        .where(_one_of(dialect, sites.c.site_id, "ids"), sites.c.revoked_at.is_(None))
        .order_by(sites.c.site_id)
        .with_for_update(),
        announce_devices=announce,
        load_agents=sa.select(agents)
        .where(_one_of(dialect, agents.c.agent_id, "ids"))
        .order_by(agents.c.agent_id)  # one lock order for every flush: no deadlocks
        .with_for_update(),  # ignored by SQLite, where a writing transaction is alone anyway
        upsert_agents=upsert,
        stored_at=sa.update(m.BATCHES)
        .where(_one_of(dialect, m.BATCHES.c.batch_id, "ids"))
        .values(stored_at=sa.bindparam("at", type_=m.BATCHES.c.stored_at.type)),
    )


@dataclass(frozen=True, slots=True)
class _Statements:
    owners: sa.Select[Any]
    announce_devices: Any
    load_agents: sa.Select[Any]
    upsert_agents: Any
    stored_at: sa.Update


def _chunks(rows: list[dict[str, Any]], size: int = _CHUNK) -> Iterable[list[dict[str, Any]]]:
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


# site, device, batch id, observed_at as the column stores it (see _stamp), position in the batch
ObservationRow = tuple[str, str, str, Any, int]


def _insert_observations(conn: sa.Connection, rows: list[ObservationRow]) -> None:
    """SQLite's hot insert, straight to the driver (SQLAlchemy's per-row processing cost a fifth of
    the flush). PostgreSQL streams COPY rows instead (FlushWriter._write_observations_pg)."""
    columns = "site_id, device_id, batch_id, observed_at, position"
    conn.exec_driver_sql(f"INSERT INTO observations ({columns}) VALUES (?, ?, ?, ?, ?)", rows)


_BATCH_COLUMNS = "batch_id, site_id, agent_id, boot, seq, sent_at, stored_at, observations, payload"

_INSERT_BATCHES_PG = sa.text(
    f"INSERT INTO batches ({_BATCH_COLUMNS}) "
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


def _insert_batch_rows(conn: sa.Connection, rows: list[tuple[Any, ...]]) -> set[str]:
    """Insert-or-ignore the batch rows, returning the ids this statement inserted, with statements
    that compile once: SQLAlchemy compiled the multi-VALUES insert anew for every flush (a
    millisecond per ten rows). Timestamps as in :func:`_insert_observations`."""
    inserted: set[str] = set()
    if conn.dialect.name == "postgresql":
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            names = ("ids", "sites", "agents", "boots", "seqs", "sent", "stored", "counts", "payloads")
            arrays = {name: [row[i] for row in chunk] for i, name in enumerate(names)}
            arrays["sent"] = [at.astimezone(UTC) for at in arrays["sent"]]
            arrays["stored"] = [at.astimezone(UTC) for at in arrays["stored"]]
            inserted.update((conn.execute(_INSERT_BATCHES_PG, arrays)).scalars())
        return inserted
    # SQLite: a multi-VALUES statement straight to the driver (which caches it by its text).
    for start in range(0, len(rows), 100):
        chunk = rows[start : start + 100]
        values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
        sql = (
            f"INSERT INTO batches ({_BATCH_COLUMNS}) VALUES {values} "
            "ON CONFLICT (batch_id) DO NOTHING RETURNING batch_id"
        )
        params: list[Any] = []
        for batch_id, site, agent, boot, seq, sent, stored, count, payload in chunk:
            params += (
                batch_id,
                site,
                agent,
                boot,
                seq,
                _sqlite_time(sent),
                _sqlite_time(stored),
                count,
                payload,
            )
        inserted.update((conn.exec_driver_sql(sql, tuple(params))).scalars())
    return inserted


def _sqlite_time(at: datetime) -> str:
    """``at`` as SQLAlchemy's DateTime stores it on SQLite: naive UTC, microseconds always written."""
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


@functools.lru_cache(maxsize=4096)
def _sqlite_second(second: int) -> str:
    return (_EPOCH_NAIVE + timedelta(seconds=second)).isoformat(" ")


def _sqlite_stamp(us: int) -> str:
    """Microseconds since the epoch as :func:`_sqlite_time` writes them (the seconds part cached:
    a flush's observations share a few seconds; this cost a tenth of the flush per datetime)."""
    second, micro = divmod(us, 1_000_000)
    return f"{_sqlite_second(second)}.{micro:06d}"


def _stamp(conn: sa.Connection) -> Callable[[int], Any]:
    """Microseconds since the epoch → a ``UtcDateTime`` column's value straight for the driver:
    naive UTC text on SQLite, an aware datetime (``timestamptz``) on PostgreSQL."""
    return _sqlite_stamp if conn.dialect.name == "sqlite" else utc_from_us


_DEVICE_COLUMNS = (
    "site_id", "device_id", "tenant", "agent_id", "vendor", "family", "model", "serial", "hostname",
    "driver", "firmware_version", "health", "reachable", "status", "interval_s", "first_seen",
    "last_seen", "last_seen_epoch",
)  # fmt: skip
_DEVICE_UPDATED = (
    "tenant", "agent_id", "vendor", "family", "model", "serial", "hostname", "driver",
    "firmware_version", "health", "reachable", "status", "last_seen", "last_seen_epoch",
)  # fmt: skip
_DEVICE_LIST = ", ".join(_DEVICE_COLUMNS)
# A device row moves forward only: the update applies when the observation is not older.
_ON_DEVICE_CONFLICT = (
    "ON CONFLICT (site_id, device_id) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in _DEVICE_UPDATED)
    + " WHERE devices.last_seen_epoch IS NULL OR devices.last_seen_epoch <= excluded.last_seen_epoch"
)
_DEVICE_VALUES = ", ".join("?" * len(_DEVICE_COLUMNS))
_UPSERT_DEVICES_SQLITE = (
    f"INSERT INTO devices ({_DEVICE_LIST}) VALUES ({_DEVICE_VALUES}) {_ON_DEVICE_CONFLICT}"
)


# Known devices reporting again: every updated column but the indexed tenant, vendor and status
# (an UPDATE naming them rewrites their index entries even when the value stays the same). The
# parameters: these columns, then site_id, device_id and last_seen_epoch for the condition.
_DEVICE_REFRESHED = (
    "agent_id", "family", "model", "serial", "hostname", "driver", "firmware_version", "health",
    "reachable", "last_seen", "last_seen_epoch",
)  # fmt: skip
assert set(_DEVICE_REFRESHED) == set(_DEVICE_UPDATED) - {"tenant", "vendor", "status"}
_REFRESH_DEVICES_SQLITE = (
    "UPDATE devices SET "
    + ", ".join(f"{name} = ?" for name in _DEVICE_REFRESHED)
    + " WHERE site_id = ? AND device_id = ? AND (last_seen_epoch IS NULL OR last_seen_epoch <= ?)"
)


class _Tenants(dict[str, str]):
    """Site → tenant, asked once per site."""

    def __init__(self, tenant_of: Callable[[str], str]) -> None:
        super().__init__()
        self._tenant_of = tenant_of

    def __missing__(self, site: str) -> str:
        tenant = self[site] = self._tenant_of(site)
        return tenant


def _observed_us(entry: tuple[PreparedObservation, str, Any]) -> int:
    return entry[0].observed_us


def _history_row(key: tuple[str, str], observed_us: int, version: str) -> dict[str, Any]:
    return {
        "site_id": key[0],
        "device_id": key[1],
        "version": version,
        "first_seen": utc_from_us(observed_us),
    }


def _upsert_devices(
    conn: sa.Connection, refresh: list[tuple[Any, ...]], upsert: list[tuple[Any, ...]]
) -> None:
    """Write device rows on SQLite, straight to the driver (SQLAlchemy's per-row bind processing
    cost more than the statements): ``refresh`` rows (known devices whose tenant, vendor and
    status stay as they are, the common case) with a plain UPDATE that leaves those indexed
    columns alone, half the upsert's cost; new and changed devices with the full upsert."""
    if refresh:
        conn.exec_driver_sql(_REFRESH_DEVICES_SQLITE, refresh)
    if upsert:
        conn.exec_driver_sql(_UPSERT_DEVICES_SQLITE, upsert)


# PostgreSQL: one stage row per stored observation (controller.pg_copy); from there one statement
# writes the firmware history and upserts the device rows, with the same rules as the Python code
# above for SQLite. All of it reads one snapshot: ``hist`` compares with the firmware stored before
# this statement, the upsert keeps the newest firmware seen (or the stored one). Ties in
# observed_at keep the order of arrival (ctid: the stage is filled by one COPY, never updated).
_OBS_STAGE_PG = (
    "CREATE TEMP TABLE IF NOT EXISTS obs_stage ("
    + ", ".join(f"{n} {t}" for n, t in zip(pg_copy.STAGE_COLUMNS, pg_copy.STAGE_TYPES, strict=True))
    + ") ON COMMIT DELETE ROWS"
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
INSERT INTO devices ({_DEVICE_LIST})
SELECT DISTINCT ON (s.site_id, s.device_id)
    s.site_id, s.device_id, t.tenant, s.agent_id, s.vendor, s.family, s.model, s.serial, s.hostname,
    s.driver, s.newest_firmware, s.health, s.reachable, 'active', (a.intervals ->> s.device_id)::float8,
    $4, s.observed_at, s.last_seen_epoch
FROM s JOIN unnest($1::text[], $2::text[]) AS t(site_id, tenant) ON t.site_id = s.site_id
LEFT JOIN a ON a.agent_id = s.agent_id
ORDER BY s.site_id, s.device_id, s.observed_at DESC, s.pos DESC
ON CONFLICT (site_id, device_id) DO UPDATE SET
    {", ".join(f"{name} = excluded.{name}" for name in _DEVICE_UPDATED if name != "firmware_version")},
    firmware_version = coalesce(excluded.firmware_version, devices.firmware_version)
WHERE devices.last_seen_epoch IS NULL OR devices.last_seen_epoch <= excluded.last_seen_epoch
"""

_DEVICES_BY_KEYS_SQLITE = (
    "SELECT d.site_id, d.device_id, d.firmware_version, d.tenant, d.vendor, d.status, d.last_seen_epoch "
    "FROM json_each(?) AS k JOIN devices AS d ON d.site_id = json_extract(k.value, '$[0]') "
    "AND d.device_id = json_extract(k.value, '$[1]')"
)

# A stored device as a flush needs it: firmware_version, tenant, vendor, status, last_seen_epoch.
_StoredDevice = tuple[str | None, str, str, str, float | None]


def _stored_devices(conn: sa.Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], _StoredDevice]:
    """The stored rows of the devices ``keys`` (site, device) on SQLite, with one statement
    whatever the number of keys (a JSON array; a row-value IN list is a new statement each
    flush), from the driver's own cursor: SQLAlchemy's result rows cost more than the query."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        found = cursor.execute(_DEVICES_BY_KEYS_SQLITE, (json.dumps(keys),)).fetchall()
    finally:
        cursor.close()
    return {(row[0], row[1]): (row[2], row[3], row[4], row[5], row[6]) for row in found}


class _DeviceStates:
    """SQLite: the stored state of the devices (see _StoredDevice) as of the last committed flush,
    so that a flush reads only devices it has not met: reading every device of the flush again
    cost a fifth of the flush (bench/ingest.py, 4,000 devices).

    Valid while no other connection wrote: ``PRAGMA data_version`` changes when one did (the
    stale marker, findings, another controller on the same file), and then every state is
    dropped. What a flush reads and writes becomes the state only once it committed."""

    def __init__(self) -> None:
        self._states: dict[tuple[str, str], _StoredDevice] = {}
        self._version: tuple[object, int] | None = None
        self._pending: dict[tuple[str, str], _StoredDevice] = {}

    def begin(self) -> None:
        self._pending = {}

    def forget(self) -> None:
        self._states.clear()

    def read(self, conn: sa.Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], _StoredDevice]:
        """The states of ``keys`` that have a row (inside the flush's write transaction)."""
        dbapi: Any = conn.connection.dbapi_connection
        token = conn.connection.info.setdefault("fernwart_states", object())  # one per connection
        cursor = dbapi.cursor()
        try:
            version = (token, cursor.execute("PRAGMA data_version").fetchone()[0])
        finally:
            cursor.close()
        if version != self._version:
            self._states.clear()
            self._version = version
        states = self._states
        found = {key: states[key] for key in keys if key in states}
        if len(found) < len(keys):
            read = _stored_devices(conn, [key for key in keys if key not in states])
            self._pending.update(read)
            found.update(read)
        return found

    def wrote(self, key: tuple[str, str], state: _StoredDevice) -> None:
        self._pending[key] = state

    def committed(self) -> None:
        self._states.update(self._pending)
        self._pending = {}


class FlushWriter:
    """Writes flushes. ``max_future_skew_s``: how far beyond its receive time a batch's clock may
    be (agents' clocks drift; NTP keeps them within a second); None accepts any time."""

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
        self._devices = _DeviceStates()

    def committed(self) -> None:
        """Call after the transaction of :meth:`write` committed."""
        self._devices.committed()

    def write(self, conn: sa.Connection, items: list[Received]) -> FlushResult:
        """Write ``items`` on ``conn`` (inside the caller's transaction); call :meth:`committed`
        after the commit."""
        now = datetime.now(UTC)
        result = FlushResult()
        self._devices.begin()
        dead: list[Received] = [item for item in items if item.message is None]
        accepted = [item for item in items if item.message is not None]
        owners = self._owners(conn, accepted)
        kept = self._check_clock(self._check_owners(accepted, owners, dead), dead)
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
            self._devices.forget()
        self._upsert_announced_devices(conn, births, now)
        result.observations = self._write_observations(conn, new_batches, agents, now)
        self._write_agents(conn, agents)
        result.detected = list(gaps)
        result.filled = self._fill_gaps(conn, gaps, late)
        self._write_gaps(conn, gaps, now)
        self._write_command_results(conn, results)
        result.rejected = self._write_dead_letters(conn, dead)
        if new_batches:  # stored_at: the end of the transaction, for publish-to-stored latency
            dialect = conn.dialect.name
            ids = _values(dialect, [batch.batch_id for batch in new_batches])
            conn.execute(_statements(dialect).stored_at, {"ids": ids, "at": datetime.now(UTC)})
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

    @staticmethod
    def _owners(conn: sa.Connection, accepted: list[Received]) -> dict[str, str]:
        """The enrolled agent of each site in ``accepted`` that is enrolled (one select, locking
        those sites' rows until the flush commits)."""
        sites = sorted({item.message.site_id for item in accepted if item.message is not None})
        if not sites:
            return {}
        dialect = conn.dialect.name
        found = conn.execute(_statements(dialect).owners, {"ids": _values(dialect, sites)})
        return {row.site_id: row.agent_id for row in found}

    @staticmethod
    def _check_owners(
        accepted: list[Received], owners: dict[str, str], dead: list[Received]
    ) -> list[Received]:
        """The messages from the agent enrolled for their site; the others go to ``dead``, as
        ``not_enrolled`` (no such site enrolled) or ``agent_mismatch`` (another agent's site)."""
        kept: list[Received] = []
        for item in accepted:
            message = item.message
            assert message is not None
            owner = owners.get(message.site_id)
            if message.agent_id == owner:
                kept.append(item)
                continue
            if owner is None:
                code, reason = NOT_ENROLLED, f"site_id: site {message.site_id!r} is not enrolled"
            else:
                code = AGENT_MISMATCH
                reason = (
                    f"agent_id: site {message.site_id!r} belongs to agent {owner!r}, not {message.agent_id!r}"
                )
            dead.append(Received(item.topic, item.payload, item.received_at, code=code, reason=reason))
        return kept

    def _check_clock(self, kept: list[Received], dead: list[Received]) -> list[Received]:
        """The messages whose batch is not stamped beyond the skew allowed; the others go to
        ``dead`` as ``future_timestamp``."""
        skew = self._max_skew
        if skew is None:
            return kept
        valid: list[Received] = []
        for item in kept:
            batch = item.message
            if isinstance(batch, PreparedBatch):
                limit = item.received_at + skew
                reason = ""
                if batch.sent_at > limit:
                    reason = (
                        f"sent_at: {batch.sent_at.isoformat()} is more than {skew.total_seconds():g}s ahead"
                    )
                elif batch.newest_us > epoch_us(limit):
                    at = utc_from_us(batch.newest_us).isoformat()
                    reason = f"observations: observed_at {at} is more than {skew.total_seconds():g}s ahead"
                if reason:
                    reason += f" of the time received ({item.received_at.isoformat()})"
                    dead.append(
                        Received(
                            item.topic, item.payload, item.received_at, code=FUTURE_TIMESTAMP, reason=reason
                        )
                    )
                    continue
            valid.append(item)
        return valid

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
        return _insert_batch_rows(conn, list(rows.values()))

    def _load_agents(self, conn: sa.Connection, agent_ids: set[str]) -> dict[str, AgentRecord]:
        if not agent_ids:
            return {}
        dialect = conn.dialect.name
        found = conn.execute(_statements(dialect).load_agents, {"ids": _values(dialect, sorted(agent_ids))})
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
        stmt = _statements(conn.dialect.name).announce_devices
        for chunk in _chunks(list(rows.values())):
            conn.execute(stmt, chunk)

    def _write_observations(
        self,
        conn: sa.Connection,
        batches: list[PreparedBatch],
        agents: dict[str, AgentRecord],
        now: datetime,
    ) -> int:
        if not batches:
            return 0
        if conn.dialect.name == "postgresql":
            return self._write_observations_pg(conn, batches, now)
        stamp = _stamp(conn)
        obs_rows: list[ObservationRow] = []
        per_device: dict[tuple[str, str], list[tuple[PreparedObservation, str, Any]]] = {}
        for batch in batches:
            batch_id, site, agent_id = batch.batch_id, batch.site_id, batch.agent_id
            for position, obs in enumerate(batch.observations):
                at = stamp(obs.observed_us)
                obs_rows.append((site, obs.device_id, batch_id, at, position))
                per_device.setdefault((site, obs.device_id), []).append((obs, agent_id, at))
        _insert_observations(conn, obs_rows)
        stored = self._devices.read(conn, list(per_device))
        history: list[dict[str, Any]] = []
        refresh: list[tuple[Any, ...]] = []  # see _REFRESH_DEVICES_SQLITE
        upsert: list[tuple[Any, ...]] = []  # in _DEVICE_COLUMNS order
        first_seen = stamp(epoch_us(now))
        tenants = _Tenants(self._tenant_of)
        wrote = self._devices.wrote
        for key, entries in per_device.items():
            if len(entries) > 1:
                entries.sort(key=_observed_us)
            known = stored.get(key)
            site, device_id = key
            seen_firmware = [(obs.observed_us, obs.firmware) for obs, _, _ in entries]
            changes, version = firmware_changes(known[0] if known is not None else None, seen_firmware)
            history += (_history_row(key, us, firmware) for us, firmware in changes)
            newest, agent_id, newest_at = entries[-1]
            epoch = newest.observed_us / 1e6
            if known is not None and not moves_forward(known[4], epoch):
                continue  # the row is newer: it stays as it is (the upsert's condition)
            tenant = tenants[site]
            vendor = newest.vendor
            wrote(key, (version, tenant, vendor, "active", epoch))
            # family … reachable: in this order in both statements (_DEVICE_REFRESHED, _DEVICE_COLUMNS)
            seen = (
                newest.family, newest.model, newest.serial, newest.hostname, newest.driver, version,
                newest.health, newest.reachable,
            )  # fmt: skip
            if known is not None and known[1] == tenant and known[2] == vendor and known[3] == "active":
                # A known device reporting again: its indexed columns stay as they are.
                refresh.append((agent_id, *seen, newest_at, epoch, site, device_id, epoch))
                continue
            agent = agents.get(agent_id)
            interval = agent.intervals_s.get(device_id) if agent else None
            upsert.append(
                (
                    site,
                    device_id,
                    tenant,
                    agent_id,
                    vendor,
                    *seen,
                    "active",
                    interval,
                    first_seen,
                    newest_at,
                    epoch,
                )
            )
        _upsert_devices(conn, refresh, upsert)
        if history:
            conn.execute(sa.insert(m.FIRMWARE_HISTORY), history)
        return len(obs_rows)

    def _write_observations_pg(self, conn: sa.Connection, batches: list[PreparedBatch], now: datetime) -> int:
        """PostgreSQL: the batches' COPY rows (encoded by the decode workers) go to the server as
        they are; device rows and firmware history are derived there, in one statement."""
        rows: list[bytes] = [pg_copy.HEADER]
        stage: list[bytes] = [pg_copy.HEADER]
        count = 0
        for batch in batches:
            copy = batch.copy
            if copy is None:  # prepared for another store (tests, tools): encode it here
                copy = pg_copy.encode(batch.site_id, batch.agent_id, batch.batch_id, batch.observations)
            rows.append(copy.observations)
            stage.append(copy.stage)
            count += len(batch.observations)
        rows.append(pg_copy.TRAILER)
        stage.append(pg_copy.TRAILER)
        sites = sorted({batch.site_id for batch in batches})
        tenants = [self._tenant_of(site) for site in sites]
        agent_ids = sorted({batch.agent_id for batch in batches})

        async def write(driver: Any) -> None:
            # A memoryview: asyncpg takes bytes for a file name.
            await driver.copy_to_table(
                "observations",
                source=memoryview(b"".join(rows)),
                columns=pg_copy.OBSERVATION_COLUMNS,
                format="binary",
            )
            # Every flush, not once per connection: a rolled-back first flush takes the table with it.
            await driver.execute(_OBS_STAGE_PG)
            await driver.copy_to_table(
                "obs_stage",
                source=memoryview(b"".join(stage)),
                columns=pg_copy.STAGE_COLUMNS,
                format="binary",
            )
            await driver.execute(_DEVICES_FROM_STAGE_PG, sites, tenants, agent_ids, now)

        _on_driver(conn, write)
        return count

    def _write_agents(self, conn: sa.Connection, agents: dict[str, AgentRecord]) -> None:
        if not agents:
            return
        rows = [{c: getattr(row, c) for c in AGENT_FIELDS} for row in agents.values()]
        conn.execute(_statements(conn.dialect.name).upsert_agents, rows)

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
