"""Retention: the dead-letter table keeps its newest ``[ingest] dead_letter_max_rows`` rows."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from controller.metrics import Metrics
    from controller.storage import Store

log = structlog.get_logger(__name__)

PRUNE_INTERVAL_S = 10.0  # the table may exceed its quota by what arrives in this long


async def prune_dead_letters_once(store: Store, metrics: Metrics, max_rows: int) -> int:
    """Delete the oldest dead letters beyond ``max_rows``; count them and log once if any."""
    pruned = await store.prune_dead_letters(max_rows)
    if pruned:
        metrics.dead_letters_pruned.inc(pruned)
        log.info("dead_letters_pruned", count=pruned, kept=max_rows)
    return pruned


async def run_dead_letter_pruner(
    store: Store, metrics: Metrics, max_rows: int, stop: asyncio.Event, interval_s: float = PRUNE_INTERVAL_S
) -> None:
    while not stop.is_set():
        try:
            await prune_dead_letters_once(store, metrics, max_rows)
        except Exception as err:  # the database may be briefly away; try again next tick
            log.warning("dead_letter_prune_failed", error=str(err)[:500])
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval_s):
                await stop.wait()
