"""The SQLite writer's software components: the stored components of a flush's devices (one
statement), and the component rows and history a flush writes (rows only where something
changed). The rules are :func:`controller.storage.rules.component_changes`; the PostgreSQL writer
applies them in SQL (pg_writer)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from controller.shapes import Components, utc_from_us
from controller.storage import models as m
from controller.storage.rules import ComponentState, component_changes

_COMPONENTS_BY_KEYS_SQLITE = (
    "SELECT c.site_id, c.device_id, c.component, c.version, c.scheme "
    "FROM json_each(?) AS k JOIN device_components AS c ON c.site_id = json_extract(k.value, '$[0]') "
    "AND c.device_id = json_extract(k.value, '$[1]')"
)
_UPSERT_COMPONENTS_SQLITE = (
    "INSERT INTO device_components (site_id, device_id, component, version, scheme) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (site_id, device_id, component) DO UPDATE SET version = excluded.version, "
    "scheme = excluded.scheme"
)


def stored_components(
    conn: sa.Connection, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], ComponentState]:
    """The stored components of the devices ``keys`` (every key present, ``{}`` when none), with
    one statement whatever the number of keys (a JSON array), from the driver's own cursor."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        found = cursor.execute(_COMPONENTS_BY_KEYS_SQLITE, (json.dumps(keys),)).fetchall()
    finally:
        cursor.close()
    states: dict[tuple[str, str], ComponentState] = {key: {} for key in keys}
    for site, device, component, version, scheme in found:
        states[site, device][component] = (version, scheme)
    return states


class ComponentRows:
    """What one flush writes of its devices' components."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []  # device_components upserts
        self.history: list[dict[str, Any]] = []

    def device(
        self,
        key: tuple[str, str],
        seen: Iterable[tuple[int, Components]],
        known: ComponentState,
        *,
        forward: bool,
    ) -> ComponentState | None:
        """One device's history (whether or not its row moves forward, as for the firmware) and,
        when it moves forward, the components that changed. Returns the device's components
        after the flush when they changed (to remember), else None."""
        changes, state = component_changes(known, seen)
        site, device_id = key
        self.history += (
            {
                "site_id": site,
                "device_id": device_id,
                "component": name,
                "version": version,
                "scheme": scheme,
                "first_seen": utc_from_us(us),
            }
            for us, name, version, scheme in changes
        )
        if not forward or state == known:
            return None
        self.rows += (
            (site, device_id, name, version, scheme)
            for name, (version, scheme) in state.items()
            if known.get(name) != (version, scheme)
        )
        return state

    def write(self, conn: sa.Connection) -> None:
        if self.rows:
            conn.exec_driver_sql(_UPSERT_COMPONENTS_SQLITE, self.rows)
        if self.history:
            conn.execute(sa.insert(m.COMPONENT_HISTORY), self.history)
