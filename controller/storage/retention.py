"""Pruning what is older than its retention, in bounded chunks.

Each chunk is one short write transaction (through :meth:`Store.writing`, so on SQLite it takes
its turn with the flushes and never holds the write lock for long): select up to ``chunk`` ids
older than the cutoff by the table's time index, delete them, commit, repeat until a chunk comes
back short.

* ``observations`` by ``observed_at``.
* ``batches`` follow the observations: an observation's body lives in its batch's payload, so a
  batch goes only once none of its observations can be left. Observations are refused when they
  lie beyond ``max_future_skew_s`` of their batch's arrival, so a batch stored more than one day
  (> any skew) before the observations' cutoff holds none that is kept.
* ``firmware_history`` by ``first_seen``, longer (it answers "what ran when" for an advisory);
  the newest row of each device is kept however old, since it is the firmware it runs now.
* ``component_history`` likewise, with the firmware history's retention: the newest row of each
  device's component is kept however old.
* ``dead_letters`` by ``received_at``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from controller.storage import models as m

if TYPE_CHECKING:
    from controller.storage.repository import Store

BATCH_MARGIN = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class RetentionDays:
    observations: float
    firmware_history: float
    dead_letters: float


async def _prune(
    store: Store, table: sa.Table, key: sa.Column[object], old: sa.ColumnElement[bool], chunk: int
) -> int:
    total = 0
    while True:
        ids = sa.select(key).where(old).limit(chunk).scalar_subquery()
        async with store.writing() as conn:
            result = await conn.execute(sa.delete(table).where(key.in_(ids)))
        total += int(result.rowcount)
        if result.rowcount < chunk:
            return total


async def prune(store: Store, days: RetentionDays, now: datetime, chunk: int = 5000) -> dict[str, int]:
    """Delete what is older than its retention; returns rows deleted per table."""
    obs, batches, history, dead = m.OBSERVATIONS, m.BATCHES, m.FIRMWARE_HISTORY, m.DEAD_LETTERS
    obs_cutoff = now - timedelta(days=days.observations)
    newer = sa.alias(history)
    superseded = sa.exists().where(
        newer.c.site_id == history.c.site_id,
        newer.c.device_id == history.c.device_id,
        newer.c.first_seen > history.c.first_seen,
    )
    history_cutoff = now - timedelta(days=days.firmware_history)
    components = m.COMPONENT_HISTORY
    newer_component = sa.alias(components)
    component_superseded = sa.exists().where(
        newer_component.c.site_id == components.c.site_id,
        newer_component.c.device_id == components.c.device_id,
        newer_component.c.component == components.c.component,
        newer_component.c.first_seen > components.c.first_seen,
    )
    old_components = sa.and_(components.c.first_seen < history_cutoff, component_superseded)
    return {
        "observations": await _prune(store, obs, obs.c.id, obs.c.observed_at < obs_cutoff, chunk),
        "batches": await _prune(
            store, batches, batches.c.batch_id, batches.c.stored_at < obs_cutoff - BATCH_MARGIN, chunk
        ),
        "firmware_history": await _prune(
            store, history, history.c.id, sa.and_(history.c.first_seen < history_cutoff, superseded), chunk
        ),
        "component_history": await _prune(store, components, components.c.id, old_components, chunk),
        "dead_letters": await _prune(
            store, dead, dead.c.id, dead.c.received_at < now - timedelta(days=days.dead_letters), chunk
        ),
    }
