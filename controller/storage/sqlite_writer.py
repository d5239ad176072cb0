"""The SQLite writer: batches, observations, device rows and firmware history, written straight
to the driver (SQLAlchemy's per-row processing cost more than the statements), the device and
firmware rules applied in Python (:mod:`controller.storage.rules`) against the stored device
states, which it keeps between flushes (see :class:`_DeviceStates`)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from controller.shapes import PreparedBatch, PreparedObservation, epoch_us, utc_from_us
from controller.storage import models as m
from controller.storage import statements
from controller.storage.rules import AgentRecord, ComponentState, firmware_changes, moves_forward
from controller.storage.sqlite_components import ComponentRows, stored_components
from controller.storage.writer import (
    BATCH_COLUMNS,
    DEVICE_COLUMNS,
    DEVICE_LIST,
    DEVICE_UPDATED,
    UNKNOWN,
    FlushWriter,
    device_update,
)

_EPOCH_NAIVE = datetime(1970, 1, 1)  # noqa: DTZ001 (SQLite stores naive UTC)


def _one_of(column: sa.ColumnElement[str], name: str) -> sa.ColumnElement[bool]:
    """``column IN :name`` with the values as one JSON array (see :data:`statements.OneOf`)."""
    listed: sa.Select[tuple[str]] = sa.select(sa.column("value")).select_from(
        sa.func.json_each(sa.bindparam(name, type_=sa.String()))
    )
    return column.in_(listed.scalar_subquery())


# site, device, batch id, observed_at as the column stores it (see _sqlite_stamp), position in the batch
ObservationRow = tuple[str, str, str, Any, int]


def _insert_observations(conn: sa.Connection, rows: list[ObservationRow]) -> None:
    """SQLite's hot insert, straight to the driver (SQLAlchemy's per-row processing cost a fifth of
    the flush). PostgreSQL streams COPY rows instead (pg_writer)."""
    columns = "site_id, device_id, batch_id, observed_at, position"
    conn.exec_driver_sql(f"INSERT INTO observations ({columns}) VALUES (?, ?, ?, ?, ?)", rows)


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


# A device row moves forward only: the update applies when the observation is not older.
_ONDEVICE_CONFLICT = (
    "ON CONFLICT (site_id, device_id) DO UPDATE SET "
    + ", ".join(
        f"{name} = {device_update(name, f'excluded.{name}', f'devices.{name}')}" for name in DEVICE_UPDATED
    )
    + " WHERE devices.last_seen_epoch IS NULL OR devices.last_seen_epoch <= excluded.last_seen_epoch"
)
_DEVICE_VALUES = ", ".join("?" * len(DEVICE_COLUMNS))
_UPSERT_DEVICES_SQLITE = f"INSERT INTO devices ({DEVICE_LIST}) VALUES ({_DEVICE_VALUES}) {_ONDEVICE_CONFLICT}"


# Known devices reporting again: every updated column but the indexed tenant, vendor and status
# (an UPDATE naming them rewrites their index entries even when the value stays the same). The
# parameters: these columns, then site_id, device_id and last_seen_epoch for the condition.
_DEVICE_REFRESHED = (
    "agent_id", "family", "model", "serial", "hostname", "driver", "firmware_version", "health",
    "reachable", "last_seen", "last_seen_epoch",
)  # fmt: skip
assert set(_DEVICE_REFRESHED) == set(DEVICE_UPDATED) - {"tenant", "vendor", "status"}
_REFRESH_DEVICES_SQLITE = (
    "UPDATE devices SET "
    + ", ".join(f"{name} = {device_update(name, '?', name)}" for name in _DEVICE_REFRESHED)
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
        # The devices' components (device_components), kept and dropped with their states.
        self._components: dict[tuple[str, str], ComponentState] = {}
        self._pending_components: dict[tuple[str, str], ComponentState] = {}

    def begin(self) -> None:
        self._pending = {}
        self._pending_components = {}

    def forget(self) -> None:
        self._states.clear()
        self._components.clear()

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
            self._components.clear()
            self._version = version
        states = self._states
        found = {key: states[key] for key in keys if key in states}
        if len(found) < len(keys):
            read = _stored_devices(conn, [key for key in keys if key not in states])
            self._pending.update(read)
            found.update(read)
        return found

    def read_components(
        self, conn: sa.Connection, keys: list[tuple[str, str]]
    ) -> dict[tuple[str, str], ComponentState]:
        """The stored components of ``keys``; call after :meth:`read` in the same flush (which
        dropped what another writer may have changed)."""
        states = self._components
        found = {key: states[key] for key in keys if key in states}
        if len(found) < len(keys):
            read = stored_components(conn, [key for key in keys if key not in states])
            self._pending_components.update(read)
            found.update(read)
        return found

    def wrote(self, key: tuple[str, str], state: _StoredDevice) -> None:
        self._pending[key] = state

    def wrote_components(self, key: tuple[str, str], state: ComponentState) -> None:
        self._pending_components[key] = state

    def committed(self) -> None:
        self._states.update(self._pending)
        self._pending = {}
        self._components.update(self._pending_components)
        self._pending_components = {}


class SqliteFlushWriter(FlushWriter):
    statements = statements.build(sqlite.insert, _one_of)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._devices = _DeviceStates()

    def ids(self, values: list[str]) -> str:
        return json.dumps(values)

    def _begin(self) -> None:
        self._devices.begin()

    def _devices_changed(self) -> None:
        self._devices.forget()

    def committed(self) -> None:
        self._devices.committed()

    def _insert_batch_rows(self, conn: sa.Connection, rows: list[tuple[Any, ...]]) -> set[str]:
        """Insert-or-ignore the batch rows, returning the ids this statement inserted, as one
        multi-VALUES statement straight to the driver (which caches it by its text): SQLAlchemy
        compiled it anew for every flush (a millisecond per ten rows). Timestamps as in
        :func:`_insert_observations`."""
        inserted: set[str] = set()
        for start in range(0, len(rows), 100):
            chunk = rows[start : start + 100]
            values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
            sql = (
                f"INSERT INTO batches ({BATCH_COLUMNS}) VALUES {values} "
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

    def _write_observations(
        self,
        conn: sa.Connection,
        batches: list[PreparedBatch],
        agents: dict[str, AgentRecord],
        now: datetime,
    ) -> int:
        stamp = _sqlite_stamp
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
        with_software = [key for key, entries in per_device.items() if any(e[0].software for e in entries)]
        components = self._devices.read_components(conn, with_software) if with_software else {}
        component_rows = ComponentRows()
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
            forward = known is None or moves_forward(known[4], epoch)
            if key in components:
                seen_software = [(obs.observed_us, obs.software) for obs, _, _ in entries if obs.software]
                state = component_rows.device(key, seen_software, components[key], forward=forward)
                if state is not None:
                    self._devices.wrote_components(key, state)
            if not forward:
                continue  # the row is newer: it stays as it is (the upsert's condition)
            tenant = tenants[site]
            # An unknown vendor keeps the stored one (see writer.UNKNOWN): so does the upsert.
            vendor = known[2] if known is not None and newest.vendor == UNKNOWN else newest.vendor
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
        component_rows.write(conn)
        return len(obs_rows)
