"""The SQLAlchemy statements of every flush, built once per dialect by its writer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from controller.storage import models as m
from controller.storage.rules import AGENT_FIELDS

# ``column IN :name`` as one statement text whatever the number of values: an IN list is a new
# statement for every length, which PostgreSQL prepared and planned anew in most flushes (5 ms
# each). Each writer has its own (an array on PostgreSQL, a JSON array on SQLite).
OneOf = Callable[[sa.ColumnElement[str], str], sa.ColumnElement[bool]]


@dataclass(frozen=True, slots=True)
class Statements:
    owners: sa.Select[Any]
    announce_devices: Any
    load_agents: sa.Select[Any]
    upsert_agents: Any
    stored_at: sa.Update


def build(insert: Callable[[sa.Table], Any], one_of: OneOf) -> Statements:
    """The statements of every flush, built once per dialect (``insert``: the dialect's, with ON
    CONFLICT; ``one_of``: see :data:`OneOf`): built anew in each flush, SQLAlchemy's expression
    objects (reference cycles, ~140 per flush) left the garbage collector 150,000 objects to free
    at once every 20-30 s under load, a pause of ~150 ms."""
    agents = m.AGENTS
    upsert = insert(agents)
    upsert = upsert.on_conflict_do_update(
        index_elements=["agent_id"],
        set_={name: upsert.excluded[name] for name in AGENT_FIELDS if name != "agent_id"},
    )
    devices = m.DEVICES
    announce = insert(devices)
    announce = announce.on_conflict_do_update(
        index_elements=["site_id", "device_id"],
        set_={
            "interval_s": sa.func.coalesce(announce.excluded.interval_s, devices.c.interval_s),
            "agent_id": announce.excluded.agent_id,
        },
    )
    sites = m.SITES
    return Statements(
        # Locked, in one order (PostgreSQL; SQLite has one writer anyway): flushes for one site on
        # several controllers take turns, also before its agent has an ``agents`` row to lock.
        owners=sa.select(sites.c.site_id, sites.c.agent_id)
        .where(one_of(sites.c.site_id, "ids"), sites.c.revoked_at.is_(None))
        .order_by(sites.c.site_id)
        .with_for_update(),
        announce_devices=announce,
        load_agents=sa.select(agents)
        .where(one_of(agents.c.agent_id, "ids"))
        .order_by(agents.c.agent_id)  # one lock order for every flush: no deadlocks
        .with_for_update(),  # ignored by SQLite, where a writing transaction is alone anyway
        upsert_agents=upsert,
        stored_at=sa.update(m.BATCHES)
        .where(one_of(m.BATCHES.c.batch_id, "ids"))
        .values(stored_at=sa.bindparam("at", type_=m.BATCHES.c.stored_at.type)),
    )
