"""The store's reads for the inventory and the REST API: devices, observations, agents, gaps,
dead letters. A mixin of :class:`~controller.storage.repository.Store`, which owns the engine."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from controller.storage import models as m
from controller.storage.paging import equal_to, fetch_page


@dataclass(frozen=True, slots=True)
class DeviceFilter:
    tenant: str | None = None
    site: str | None = None
    vendor: str | None = None
    status: str | None = None
    limit: int = 100
    offset: int = 0


class InventoryReads:
    engine: AsyncEngine

    async def list_devices(self, flt: DeviceFilter) -> tuple[list[dict[str, Any]], int]:
        devices = m.DEVICES
        conditions = equal_to(
            (
                (devices.c.tenant, flt.tenant),
                (devices.c.site_id, flt.site),
                (devices.c.vendor, flt.vendor),
                (devices.c.status, flt.status),
            )
        )
        order = (devices.c.tenant, devices.c.site_id, devices.c.device_id)
        return await fetch_page(self.engine, devices, conditions, order, limit=flt.limit, offset=flt.offset)

    async def get_device(self, device_pk: int) -> dict[str, Any] | None:
        """The device with its firmware history (oldest first), its software components
        (by name) and their history (oldest first), or None."""
        devices = m.DEVICES
        history = m.FIRMWARE_HISTORY
        components = m.DEVICE_COMPONENTS
        changes = m.COMPONENT_HISTORY
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(devices).where(devices.c.id == device_pk))).first()
            if row is None:
                return None
            device = dict(row._mapping)  # noqa: SLF001 (SQLAlchemy API)
            found = await conn.execute(
                sa.select(history.c.version, history.c.first_seen)
                .where(history.c.site_id == device["site_id"], history.c.device_id == device["device_id"])
                .order_by(history.c.first_seen, history.c.id)
            )
            device["firmware_history"] = [dict(h._mapping) for h in found]  # noqa: SLF001
            key = (device["site_id"], device["device_id"])
            found = await conn.execute(
                sa.select(components.c.component, components.c.version, components.c.scheme)
                .where(components.c.site_id == key[0], components.c.device_id == key[1])
                .order_by(components.c.component)
            )
            device["components"] = [dict(c._mapping) for c in found]  # noqa: SLF001
            found = await conn.execute(
                sa.select(changes.c.component, changes.c.version, changes.c.scheme, changes.c.first_seen)
                .where(changes.c.site_id == key[0], changes.c.device_id == key[1])
                .order_by(changes.c.first_seen, changes.c.id)
            )
            device["component_history"] = [dict(c._mapping) for c in found]  # noqa: SLF001
            return device

    async def observations(
        self, site_id: str, device_id: str, *, since: datetime | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """The device's stored observations, newest first (at most ``limit``, observed at or
        after ``since``): ``{"id", "observed_at", "batch_id", "observation"}``, the observation as
        the agent sent it (a dict), taken from its batch's payload (see models.Batch).

        Observations are indexed by time, not by device (revision 0003): this reads the time
        index newest first and is cheap for a device that reported recently, not for deep
        history of one device among many."""
        obs, batches = m.OBSERVATIONS, m.BATCHES
        stmt = (
            sa.select(
                obs.c.id, obs.c.observed_at, obs.c.batch_id, obs.c.position, obs.c.body, batches.c.payload
            )
            .join(batches, batches.c.batch_id == obs.c.batch_id, isouter=True)
            .where(obs.c.site_id == site_id, obs.c.device_id == device_id)
            .order_by(obs.c.observed_at.desc(), obs.c.id.desc())
            .limit(limit)
        )
        if since is not None:
            stmt = stmt.where(obs.c.observed_at >= since)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        parsed: dict[str, list[Any]] = {}
        found = []
        for row in rows:
            if row.body is not None:  # stored before revision 0004
                observation = json.loads(row.body)
            else:
                if row.batch_id not in parsed:
                    parsed[row.batch_id] = json.loads(row.payload)["observations"]
                observation = parsed[row.batch_id][row.position]
            at, batch = row.observed_at, row.batch_id
            found.append({"id": row.id, "observed_at": at, "batch_id": batch, "observation": observation})
        return found

    async def list_agents(self, missing_limit: int = 50) -> list[dict[str, Any]]:
        """Every agent, each with ``missing``: the seq ranges ``[boot, from, to]`` recorded as
        missing and not received since (newest first, at most ``missing_limit``)."""
        agents, gaps = m.AGENTS, m.GAPS
        async with self.engine.connect() as conn:
            rows = await conn.execute(sa.select(agents).order_by(agents.c.site_id, agents.c.agent_id))
            found = [dict(row._mapping) for row in rows]  # noqa: SLF001
            missing: dict[str, list[tuple[int, int, int]]] = {}
            columns = (gaps.c.agent_id, gaps.c.boot, gaps.c.from_seq, gaps.c.to_seq)
            for gap in await conn.execute(sa.select(*columns).order_by(gaps.c.id.desc())):
                ranges = missing.setdefault(gap.agent_id, [])
                if len(ranges) < missing_limit:
                    ranges.append((int(gap.boot), int(gap.from_seq), int(gap.to_seq)))
        for agent in found:
            agent["missing"] = missing.get(agent["agent_id"], [])
        return found

    async def list_gaps(self, agent_id: str | None = None) -> list[dict[str, Any]]:
        gaps = m.GAPS
        stmt = sa.select(gaps).order_by(gaps.c.id)
        if agent_id is not None:
            stmt = stmt.where(gaps.c.agent_id == agent_id)
        async with self.engine.connect() as conn:
            return [dict(row._mapping) for row in await conn.execute(stmt)]  # noqa: SLF001

    async def dead_letter_counts(self) -> dict[str, int]:
        dead = m.DEAD_LETTERS
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(dead.c.reason_code, sa.func.count()).group_by(dead.c.reason_code)
            )
            return {code: int(count) for code, count in rows}

    async def count(self, table: sa.Table | Any, *where: sa.ColumnElement[bool]) -> int:
        async with self.engine.connect() as conn:
            stmt = sa.select(sa.func.count()).select_from(table)
            if where:
                stmt = stmt.where(*where)
            return int((await conn.execute(stmt)).scalar_one())

    async def batch_ids(self) -> Sequence[str]:
        batches = m.BATCHES
        async with self.engine.connect() as conn:
            return list((await conn.execute(sa.select(batches.c.batch_id))).scalars())
