"""Garbage-collector settings for the controller's processes (the daemon and its decode workers).

Kept apart from ``controller.__main__`` so a decode worker can apply them without importing the
daemon (SQLAlchemy, aiohttp, ...).
"""

from __future__ import annotations

import gc


def tune_gc() -> None:
    """Fewer garbage collections: a flush creates ~10 short-lived objects per observation, and
    with the default thresholds the collector ran so often that it took half of the controller's
    CPU (bench/ingest.py: 10,000 → 20,000 observations per CPU-second on SQLite)."""
    gc.freeze()  # what start-up created lives as long as the process
    gc.set_threshold(200_000, 50, 1000)
