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

Faults never stop the agent (a daemon that exits here restarts into the same fault and polls
nothing). A corrupt file found at open is quarantined (renamed, kept, logged with both paths) and
a new outbox starts; its boot counter restarts at 1, which the controller copes with because the
birth of a new boot resets its seq tracking, and ``batch_id`` stays unique. A full disk (or any
other I/O error) at append refuses that message: it is counted
(``fernwart_outbox_store_failed_total``, and in the heartbeat's ``dropped``), logged once when
storing starts failing and once when it works again, and the next append simply tries again. If
the outbox cannot be opened at all, it runs *unavailable*: every append is counted as not stored,
and opening is retried at most every ``outbox.retry_open_s`` on the next append.
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

from agent.outbox_faults import OutboxCorrupt, describe, is_corrupt, is_disk_full, quarantine

if TYPE_CHECKING:
    from pathlib import Path

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


class NotStored(Exception):
    """The message was not stored (already counted and logged); its ``seq`` becomes a gap."""


class OutboxFull(NotStored):
    """``drop_newest``: the new message was refused (already counted and logged)."""


class StoreFailed(NotStored):
    """The disk is full, the file failed, or the outbox is unavailable (counted and logged)."""


_STORE_FAILED = -1  # _append_sync's answer when the write itself failed


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
        self.store_failed = 0  # messages not stored because the write failed (disk full, I/O)
        self.quarantined: Path | None = None  # where a corrupt file went at open, if it did
        self.unavailable: str | None = None  # why the outbox could not be opened, while it cannot
        self._failing: str | None = None  # why appends fail, while they do (log once per transition)
        self._failed_since_ok = 0
        self._closed = False
        self._next_open_try = 0.0
        self._changed = asyncio.Event()  # set whenever rows are appended or deleted
        self._loop = asyncio.get_running_loop()

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, settings: OutboxSettings, metrics: AgentMetrics | None = None
    ) -> AsyncIterator[Outbox]:
        """Open (creating if needed) the outbox and increment the persisted boot counter.

        Never raises for the file's sake: a corrupt file is quarantined and replaced, and an
        outbox that cannot be opened (full disk, I/O error) yields *unavailable* (see module doc).
        """
        outbox = cls(settings, metrics)
        try:
            await outbox._call(outbox._try_open_sync)
            outbox._update_gauges()
            yield outbox
        finally:
            outbox._closed = True
            await outbox._call(outbox._close_sync)
            outbox._executor.shutdown(wait=True)

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def _try_open_sync(self) -> bool:
        """Open, quarantining a corrupt file once; on any other failure stay unavailable."""
        path = self._settings.path
        self._next_open_try = time.monotonic() + self._settings.retry_open_s
        try:
            try:
                self._open_sync()
            except (sqlite3.DatabaseError, OutboxCorrupt) as err:
                if not is_corrupt(err):
                    raise
                self._close_sync()
                self.quarantined = quarantine(path)
                if self._metrics is not None:
                    self._metrics.outbox_quarantined.inc()
                log.warning(
                    "outbox_quarantined",
                    path=str(path),
                    quarantined_to=str(self.quarantined),
                    error=describe(err),
                    detail="the corrupt file is kept there; a new outbox starts with boot 1",
                )
                self._open_sync()
        except (sqlite3.Error, OutboxCorrupt, OSError) as err:
            self._close_sync()
            reason = describe(err)
            if self.unavailable is None:
                log.error(  # noqa: TRY400 - the error is in the line; a traceback adds nothing
                    "outbox_unavailable",
                    path=str(path),
                    error=reason,
                    disk_full=is_disk_full(err),
                    retry_open_s=self._settings.retry_open_s,
                    detail="polling goes on; what cannot be stored is counted",
                )
            self.unavailable = reason
            self._set_available(available=False)
            return False
        if self.unavailable is not None:
            log.info("outbox_available", path=str(path), boot=self.boot, not_stored=self.store_failed)
            self.unavailable = None
        self._set_available(available=True)
        return True

    def _set_available(self, *, available: bool) -> None:
        if self._metrics is not None:
            self._metrics.outbox_available.set(1 if available else 0)

    def _open_sync(self) -> None:
        path = self._settings.path
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db = db
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA busy_timeout=5000")
        # Reads every page once (seconds for the largest allowed outbox): a file damaged by a
        # crashed disk is found here, at start, rather than by a later append or read.
        problems = [row[0] for row in db.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            raise OutboxCorrupt(f"quick_check: {'; '.join(map(str, problems))}")
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
        self._next_seq = 0

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

    def _db_or_none(self) -> sqlite3.Connection | None:
        """The connection; None while the outbox is unavailable."""
        if self._closed:
            raise RuntimeError("outbox is closed")
        return self._db

    def _store_failed(self, reason: str) -> int:
        self.store_failed += 1
        self._failed_since_ok += 1
        if self._metrics is not None:
            self._metrics.outbox_store_failed.inc()
        if self._failing is None:
            log.warning(
                "outbox_store_failed",
                path=str(self._settings.path),
                error=reason,
                detail="polling goes on; messages not stored are counted until storing works again",
            )
        self._failing = reason
        return _STORE_FAILED

    def _store_ok(self) -> None:
        if self._failing is not None:
            log.info(
                "outbox_store_recovered", path=str(self._settings.path), not_stored=self._failed_since_ok
            )
            self._failing = None
            self._failed_since_ok = 0

    # The *_sync methods run on the outbox thread and are the only writers of the counters, so
    # the counters match the database even when the awaiting coroutine is cancelled mid-call
    # (e.g. a publish task cancelled by a lost connection right after its DELETE ran).

    def _changed_threadsafe(self) -> None:
        self._update_gauges()
        self._loop.call_soon_threadsafe(self._notify)

    def _append_sync(self, seq: int, payload: bytes) -> int:
        """Returns the new row id, 0 if the drop policy refused the message, or
        ``_STORE_FAILED`` if it could not be written (all counted here)."""
        db = self._db_or_none()
        if db is None:
            return self._store_failed(f"outbox unavailable: {self.unavailable}")
        try:
            row_id = self._insert_sync(db, seq, payload)
        except sqlite3.Error as err:  # SQLITE_FULL above all; the transaction was rolled back
            return self._store_failed(describe(err))
        if row_id:
            self._store_ok()
        return row_id

    async def retry_open(self) -> None:
        """While unavailable, try to open the outbox again (at most every ``retry_open_s``).
        Call before reserving a ``seq``: the boot number may change here."""
        due = self._db is None and not self._closed and time.monotonic() >= self._next_open_try
        if due and await self._call(self._try_open_sync):
            self._update_gauges()
            self._notify()

    def _insert_sync(self, db: sqlite3.Connection, seq: int, payload: bytes) -> int:
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
        ``max_bytes``), :class:`StoreFailed` when it could not be written (full disk, I/O error,
        outbox unavailable); the loss is counted and logged either way.
        """
        row_id = await self._call(self._append_sync, seq, bytes(payload))
        if row_id == _STORE_FAILED:
            raise StoreFailed(f"outbox: message seq {seq} not stored: {self._failing}")
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
        db = self._db_or_none()
        if db is None:
            return []
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
        db = self._db_or_none()
        if db is None:
            return
        try:
            with db:
                found = db.execute(
                    "DELETE FROM outbox WHERE id = ? RETURNING length(payload)", (row_id,)
                ).fetchone()
        except sqlite3.Error as err:  # a full disk fails deletes too (the WAL grows); retried later
            log.debug("outbox_delete_failed", error=describe(err))
            return
        if found is not None:
            self._rows -= 1
            self._bytes -= int(found[0])
            self._changed_threadsafe()

    async def delete(self, row_id: int) -> None:
        """Forget an acknowledged row. Deleting a row that was already dropped is a no-op."""
        await self._call(self._delete_sync, row_id)

    def _confirm_sync(self, ranges: list[tuple[int, int, int]]) -> list[int]:
        db = self._db_or_none()
        deleted: list[int] = []
        if db is None:
            return deleted
        size = 0
        try:
            with db:
                for boot, first, last in ranges:
                    for row_id, length in db.execute(
                        "DELETE FROM outbox WHERE boot = ? AND seq BETWEEN ? AND ?"
                        " RETURNING id, length(payload)",
                        (boot, first, last),
                    ).fetchall():
                        deleted.append(int(row_id))
                        size += int(length)
        except sqlite3.Error as err:
            # A full disk fails deletes too (the WAL must grow). The rows stay, are re-sent, and
            # the controller confirms them again; nothing is lost, so debug only.
            log.debug("outbox_confirm_failed", error=describe(err))
            return []
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
        db = self._db_or_none()
        if db is None:
            return []
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
        db = self._db_or_none()
        if db is None:
            return None
        row = db.execute("SELECT min(created_at) FROM outbox").fetchone()
        return None if row is None or row[0] is None else float(row[0])

    async def oldest_created_at(self) -> float | None:
        """``time.time()`` at which the oldest row still waiting was appended; None when empty."""
        return await self._call(self._oldest_sync)
