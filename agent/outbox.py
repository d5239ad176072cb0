"""Durable outbox: encoded ObservationBatch messages wait here until the controller committed them.

One SQLite file in WAL mode, owned by one dedicated thread (every call hops there with
``run_in_executor``, so the event loop never waits on the disk). A row is one encoded message:
``append`` assigns the next ``seq`` of this ``boot`` and stores the bytes; the publisher reads rows
in ``id`` order and publishes them, and a row is deleted only when the controller confirms its
``(boot, seq)`` with a :class:`~collector.wire.BatchAck` (:meth:`confirm`) — not at the broker's
PUBACK: a broker that crashes, restarts empty or fails to resume a session would otherwise lose
what it had acknowledged. Unconfirmed rows are published again (after every reconnect, and after
a timeout); a redelivery keeps its ``batch_id`` and the controller stores it once.

Durability: ``synchronous=NORMAL`` for appends and deletes. In WAL mode that survives a process
crash or ``kill -9`` (the WAL is written before the call returns); only an OS crash or power loss
may lose the last commits, i.e. the newest observations — telemetry that the next poll replaces —
or re-send an acknowledged batch, which the controller dedupes by ``batch_id``. ``FULL`` would
fsync on every commit for no gain in that trade. The boot counter is the exception: it is
committed with ``synchronous=FULL``, because reusing a boot number after a power loss would make
``(boot, seq)`` pairs collide on the controller.

Bounded by ``max_rows`` and ``max_bytes``. When an append would exceed either, the drop policy
decides: ``drop_oldest`` (default) deletes the oldest rows until the new one fits, ``drop_newest``
refuses the new one. Either way the loss is counted (``fernwart_outbox_dropped_total``) and logged,
and the dropped ``seq`` numbers show up as a gap on the controller, which is the point.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import structlog

if TYPE_CHECKING:
    from agent.metrics import AgentMetrics
    from agent.settings import OutboxSettings

log = structlog.get_logger(__name__)
T = TypeVar("T")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    (
        "CREATE TABLE IF NOT EXISTS outbox ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " boot INTEGER NOT NULL, seq INTEGER NOT NULL,"
        " created_at REAL NOT NULL, payload BLOB NOT NULL)"
    ),
    "CREATE INDEX IF NOT EXISTS outbox_boot_seq ON outbox (boot, seq)",
)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    boot: int
    seq: int
    payload: bytes


class OutboxFull(Exception):
    """``drop_newest``: the new message was refused (already counted and logged)."""


class Outbox:
    """Use :meth:`open` (an async context manager) from a running event loop. Boot numbers
    start at 1."""

    def __init__(self, settings: OutboxSettings, metrics: AgentMetrics | None = None) -> None:
        self._settings = settings
        self._metrics = metrics
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._db: sqlite3.Connection | None = None
        self.boot = 0
        self._next_seq = 0
        self._rows = 0
        self._bytes = 0
        self._max_id = 0
        self.dropped = 0
        self._changed = asyncio.Event()  # set whenever rows are appended or deleted
        self._loop = asyncio.get_running_loop()

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, settings: OutboxSettings, metrics: AgentMetrics | None = None
    ) -> AsyncIterator[Outbox]:
        """Open (creating if needed) the outbox and increment the persisted boot counter."""
        outbox = cls(settings, metrics)
        try:
            await outbox._call(outbox._open_sync)
            outbox._update_gauges()
            yield outbox
        finally:
            await outbox._call(outbox._close_sync)
            outbox._executor.shutdown(wait=True)

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def _open_sync(self) -> None:
        path = self._settings.path
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db = db
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA busy_timeout=5000")
        for statement in _SCHEMA:
            db.execute(statement)
        db.execute("PRAGMA synchronous=FULL")
        with db:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "INSERT INTO meta(key, value) VALUES ('boot', 1)"
                " ON CONFLICT(key) DO UPDATE SET value = value + 1"
            )
            (self.boot,) = db.execute("SELECT value FROM meta WHERE key = 'boot'").fetchone()
        db.execute("PRAGMA synchronous=NORMAL")
        count, size, max_id = db.execute(
            "SELECT count(*), coalesce(sum(length(payload)), 0), coalesce(max(id), 0) FROM outbox"
        ).fetchone()
        self._rows, self._bytes, self._max_id = count, size, max_id

    def _close_sync(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
            self._db = None

    # -- state -------------------------------------------------------------------------------

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @property
    def max_id(self) -> int:
        """Highest row id ever appended (0 when none)."""
        return self._max_id

    @property
    def seqs_assigned(self) -> int:
        """How many ``seq`` numbers this boot has handed out (the next one is this value)."""
        return self._next_seq

    def next_seq(self) -> int:
        """Reserve the next ``seq`` of this boot. Call right before :meth:`append`."""
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def _update_gauges(self) -> None:
        if self._metrics is not None:
            self._metrics.outbox_rows.set(self._rows)
            self._metrics.outbox_bytes.set(self._bytes)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_changed(self) -> None:
        """Return after the next append or delete."""
        await self._changed.wait()

    async def wait_for_rows_after(self, row_id: int) -> None:
        while self._max_id <= row_id:
            await self.wait_changed()

    async def wait_empty(self) -> None:
        while self._rows:
            await self.wait_changed()

    # -- operations --------------------------------------------------------------------------

    def _db_or_raise(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("outbox is closed")
        return self._db

    # The *_sync methods run on the outbox thread and are the only writers of the counters, so
    # the counters match the database even when the awaiting coroutine is cancelled mid-call
    # (e.g. a publish task cancelled by a lost connection right after its DELETE ran).

    def _changed_threadsafe(self) -> None:
        self._update_gauges()
        self._loop.call_soon_threadsafe(self._notify)

    def _append_sync(self, seq: int, payload: bytes) -> int:
        """Returns the new row id, or 0 if the message was refused (counted here)."""
        db = self._db_or_raise()
        size = len(payload)
        if size > self._settings.max_bytes:
            self._count_drop(1, "too_large")
            return 0
        dropped_rows = dropped_bytes = 0
        with db:
            db.execute("BEGIN IMMEDIATE")
            if self._rows + 1 > self._settings.max_rows or self._bytes + size > self._settings.max_bytes:
                if self._settings.drop_policy == "drop_newest":
                    self._count_drop(1, "drop_newest")
                    return 0
                need_rows = self._rows + 1 - self._settings.max_rows
                need_bytes = self._bytes + size - self._settings.max_bytes
                cutoff = 0
                oldest = db.execute("SELECT id, length(payload) FROM outbox ORDER BY id")
                for row_id, length in oldest:
                    if dropped_rows >= need_rows and dropped_bytes >= need_bytes:
                        break
                    dropped_rows += 1
                    dropped_bytes += length
                    cutoff = row_id
                oldest.close()
                db.execute("DELETE FROM outbox WHERE id <= ?", (cutoff,))
            cursor = db.execute(
                "INSERT INTO outbox(boot, seq, created_at, payload) VALUES (?, ?, ?, ?)",
                (self.boot, seq, time.time(), payload),
            )
            row_id = cursor.lastrowid or 0
        self._rows += 1 - dropped_rows
        self._bytes += size - dropped_bytes
        self._max_id = row_id
        if dropped_rows:
            self._count_drop(dropped_rows, "drop_oldest")
        self._changed_threadsafe()
        return row_id

    async def append(self, seq: int, payload: bytes) -> int:
        """Store one encoded message with its ``seq``; returns its row id.

        Raises :class:`OutboxFull` when ``drop_newest`` refused it (or it alone exceeds
        ``max_bytes``); the drop is counted and logged either way.
        """
        row_id = await self._call(self._append_sync, seq, bytes(payload))
        if not row_id:
            raise OutboxFull(f"outbox full: message seq {seq} dropped")
        return row_id

    def _count_drop(self, count: int, policy: str) -> None:
        self.dropped += count
        if self._metrics is not None:
            self._metrics.outbox_dropped.inc(count)
        log.warning(
            "outbox_dropped",
            messages=count,
            policy=policy,
            dropped_total=self.dropped,
            rows=self._rows,
            max_rows=self._settings.max_rows,
            max_bytes=self._settings.max_bytes,
        )

    def _read_sync(self, after_id: int, limit: int) -> list[OutboxRow]:
        db = self._db_or_raise()
        return [
            OutboxRow(*row)
            for row in db.execute(
                "SELECT id, boot, seq, payload FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            )
        ]

    async def read(self, after_id: int = 0, limit: int = 100) -> list[OutboxRow]:
        """The oldest rows with ``id > after_id``, in order."""
        return await self._call(self._read_sync, after_id, limit)

    def _delete_sync(self, row_id: int) -> None:
        db = self._db_or_raise()
        with db:
            found = db.execute(
                "DELETE FROM outbox WHERE id = ? RETURNING length(payload)", (row_id,)
            ).fetchone()
        if found is not None:
            self._rows -= 1
            self._bytes -= int(found[0])
            self._changed_threadsafe()

    async def delete(self, row_id: int) -> None:
        """Forget an acknowledged row. Deleting a row that was already dropped is a no-op."""
        await self._call(self._delete_sync, row_id)

    def _confirm_sync(self, ranges: list[tuple[int, int, int]]) -> list[int]:
        db = self._db_or_raise()
        deleted: list[int] = []
        size = 0
        with db:
            for boot, first, last in ranges:
                for row_id, length in db.execute(
                    "DELETE FROM outbox WHERE boot = ? AND seq BETWEEN ? AND ? RETURNING id, length(payload)",
                    (boot, first, last),
                ).fetchall():
                    deleted.append(int(row_id))
                    size += int(length)
        if deleted:
            self._rows -= len(deleted)
            self._bytes -= size
            self._changed_threadsafe()
        return deleted

    async def confirm(self, ranges: list[tuple[int, int, int]]) -> list[int]:
        """Delete the rows the controller confirmed (``[boot, first_seq, last_seq]`` each);
        returns their row ids. Rows already gone (confirmed twice, dropped) are skipped."""
        return await self._call(self._confirm_sync, ranges)

    def _read_ids_sync(self, ids: list[int]) -> list[OutboxRow]:
        db = self._db_or_raise()
        marks = ",".join("?" * len(ids))
        return [
            OutboxRow(*row)
            for row in db.execute(
                f"SELECT id, boot, seq, payload FROM outbox WHERE id IN ({marks}) ORDER BY id", ids
            )
        ]

    async def read_ids(self, ids: list[int]) -> list[OutboxRow]:
        """The rows among ``ids`` that are still here, in order (at most 500 ids at once)."""
        if not ids:
            return []
        return await self._call(self._read_ids_sync, ids[:500])

    def _oldest_sync(self) -> float | None:
        row = self._db_or_raise().execute("SELECT min(created_at) FROM outbox").fetchone()
        return None if row is None or row[0] is None else float(row[0])

    async def oldest_created_at(self) -> float | None:
        """``time.time()`` at which the oldest row still waiting was appended; None when empty."""
        return await self._call(self._oldest_sync)
