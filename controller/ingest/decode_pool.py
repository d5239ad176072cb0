"""Decode flushes in worker processes, so the event loop only receives, writes and acknowledges.

Validation and shaping (:mod:`controller.ingest.prepare`) cost about two thirds of the controller's CPU
per observation; with one worker process that work runs on another core beside the event loop
(and beside SQLite's thread, which releases the GIL while it steps), which is what lets one
controller store more than one core's worth of observations.

Robustness: :meth:`DecodePool.prepare` never raises. If a worker dies (OOM killer, a crash) the
pool is replaced and the flush is decoded inline, so nothing is lost and the next flush uses the
new pool. Workers ignore SIGINT and SIGTERM (the controller closes the pool when it stops) and end by
themselves when the controller process is gone (even after SIGKILL), instead of lingering as
orphans.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import structlog

from controller.gc_tuning import tune_gc
from controller.ingest.prepare import Outcome, prepare_many

log = structlog.get_logger(__name__)

# Below this many messages a chunk is not split across workers (the hand-over costs more).
_MIN_CHUNK = 16


def default_workers() -> int:
    """One worker per spare core, at most four: the event loop keeps one core. Cores are the ones
    this process may run on (a cpuset or systemd's CPUAffinity), not all the host has."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(4, cores - 1))


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(0)


def _init_worker(parent: int) -> None:
    # The controller decides when workers end (it closes the pool on its way out): Ctrl-C in a
    # terminal or systemd's SIGTERM to the whole control group must not kill them mid-flush.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    tune_gc()  # as the controller itself, for the same reason
    threading.Thread(target=_watch_parent, args=(parent,), name="watch-parent", daemon=True).start()


def _warm_up() -> int:
    return os.getpid()


class DecodePool:
    """``workers`` processes running :func:`controller.ingest.prepare.prepare_many`; 0 decodes inline."""

    def __init__(
        self,
        workers: int,
        *,
        prefix: str,
        max_payload: int,
        copy: bool = False,
        on_restart: Callable[[], object] | None = None,
    ) -> None:
        self.workers = workers
        self._prefix = prefix
        self._max_payload = max_payload
        self._copy = copy  # see controller.shapes.prepare_batch
        self._executor: ProcessPoolExecutor | None = None
        self._on_restart = on_restart
        self.restarts = 0

    def _new_executor(self) -> ProcessPoolExecutor:
        # spawn, not fork: the controller has threads (aiosqlite, the executor's own) by now.
        return ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(os.getpid(),),
        )

    async def start(self) -> None:
        """Start the workers and wait until each has imported what it needs (about 0.5 s)."""
        if self.workers <= 0:
            return
        self._executor = self._new_executor()
        loop = asyncio.get_running_loop()
        pids = await asyncio.gather(
            *(loop.run_in_executor(self._executor, _warm_up) for _ in range(self.workers))
        )
        log.info("decode_workers_started", workers=self.workers, pids=sorted(set(pids)))

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    async def prepare(self, jobs: list[tuple[str, bytes]]) -> list[Outcome]:
        """Outcomes for ``jobs`` (topic, payload), in order."""
        executor = self._executor
        if executor is None or not jobs:
            return prepare_many(jobs, self._prefix, self._max_payload, self._copy)
        loop = asyncio.get_running_loop()
        parts = max(1, min(self.workers, len(jobs) // _MIN_CHUNK))
        size = -(-len(jobs) // parts)
        try:
            chunks = await asyncio.gather(
                *(
                    loop.run_in_executor(
                        executor,
                        prepare_many,
                        jobs[start : start + size],
                        self._prefix,
                        self._max_payload,
                        self._copy,
                    )
                    for start in range(0, len(jobs), size)
                )
            )
        except BrokenProcessPool as err:
            self.restarts += 1
            if self._on_restart is not None:
                self._on_restart()
            log.exception("decode_worker_died", error=str(err), messages=len(jobs), action="decoding inline")
            if self._executor is executor:  # the first flush to notice replaces the pool
                executor.shutdown(wait=False, cancel_futures=True)
                self._executor = self._new_executor()
            return prepare_many(jobs, self._prefix, self._max_payload, self._copy)
        return [outcome for chunk in chunks for outcome in chunk]
