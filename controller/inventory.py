"""Inventory upkeep: devices that stopped reporting become stale, silent agents offline, and
rows older than their retention are pruned (controller.storage.retention)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog

from controller.storage.retention import RetentionDays, prune

if TYPE_CHECKING:
    from controller.metrics import Metrics
    from controller.settings import ControllerSettings
    from controller.storage import Store

log = structlog.get_logger(__name__)


async def mark_stale_once(settings: ControllerSettings, store: Store, metrics: Metrics) -> int:
    """One pass: devices whose newest observation is older than ``stale_after_intervals`` intervals."""
    count = await store.mark_stale(
        now_epoch=time.time(),
        after_intervals=settings.stale_after_intervals,
        default_interval_s=settings.default_interval_s,
    )
    if count:
        metrics.devices_stale.inc(count)
        log.info("devices_marked_stale", count=count)
    for agent in await store.mark_silent_agents(datetime.now(UTC), settings.agent_missed_heartbeats):
        metrics.agents_offline.inc()
        log.warning(
            "agent_offline",
            agent=agent["agent_id"],
            site=agent["site_id"],
            reason="heartbeat_overdue",
            last_heartbeat=agent["heartbeat_at"].isoformat(),
        )
    return count


async def run_stale_marker(
    settings: ControllerSettings, store: Store, metrics: Metrics, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            await mark_stale_once(settings, store, metrics)
        except Exception as err:  # the database may be briefly away; try again next tick
            log.warning("stale_check_failed", error=str(err))
        try:
            async with asyncio.timeout(settings.stale_check_s):
                await stop.wait()
        except TimeoutError:
            pass


async def prune_once(settings: ControllerSettings, store: Store, metrics: Metrics) -> dict[str, int]:
    """One retention pass; counted per table and logged as one line."""
    r = settings.retention
    days = RetentionDays(r.observations_days, r.firmware_history_days, r.dead_letters_days)
    started = time.monotonic()
    pruned = await prune(store, days, datetime.now(UTC), chunk=r.chunk_rows)
    for table, count in pruned.items():
        metrics.retention_pruned.labels(table=table).inc(count)
    log.info("retention_pruned", duration_s=round(time.monotonic() - started, 3), **pruned)
    return pruned


async def run_retention(
    settings: ControllerSettings, store: Store, metrics: Metrics, stop: asyncio.Event
) -> None:
    """Prune at start, then every ``retention.interval_s``, until ``stop``."""
    while not stop.is_set():
        try:
            await prune_once(settings, store, metrics)
        except Exception as err:  # the database may be briefly away; try again next pass
            log.warning("retention_failed", error=str(err))
        try:
            async with asyncio.timeout(settings.retention.interval_s):
                await stop.wait()
        except TimeoutError:
            pass
