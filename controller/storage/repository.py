"""The store: one object the rest of the controller uses for everything persistent.

Open it with ``async with Store.open(url, tenant_of=...) as store``: it creates the engine
(SQLite in WAL mode with ``synchronous=NORMAL``, or PostgreSQL through asyncpg), runs the Alembic
migrations to head, and disposes of the engine on exit. Other packages that need tables of their
own (the firmware catalog's advisories and findings) add models on ``models.Base``, a revision in
``migrations/versions``, read through :attr:`Store.engine` and write through
:meth:`Store.writing`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from controller.storage import migrate
from controller.storage import models as m
from controller.storage.guard import SqliteFileGuard, require_file, require_initialized, sqlite_path
from controller.storage.pg_writer import PgFlushWriter
from controller.storage.reads import InventoryReads
from controller.storage.records import FlushResult, Received, prepared
from controller.storage.rules import heartbeat_overdue
from controller.storage.sqlite_writer import SqliteFlushWriter
from controller.storage.writer import FlushWriter

log = structlog.get_logger(__name__)
_PRUNE_LOCK = 0x66776474  # pg advisory lock key of dead-letter pruning ('fwdt')

WRITE = {"fernwart_write": True}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling starts a transaction only at the first INSERT, so a
    # flush's reads would not belong to it; we issue BEGIN ourselves (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # 16 KiB pages (effective for a new file only): a flush dirties a leaf of the observation
    # index per device it saw, and every dirty page is one WAL frame; fewer, larger pages made
    # the commit 40 % cheaper (bench/ingest.py). Then a 64 MiB page cache instead of SQLite's
    # 2 MiB: the index outgrows 2 MiB within minutes and every insert read its leaf again.
    cursor.execute("PRAGMA page_size=16384")
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Checkpoints run beside the writer (_checkpoints); a commit checkpoints only as a backstop,
    # when the WAL passed 10,000 pages (160 MiB), e.g. while a long read holds the WAL.
    cursor.execute("PRAGMA wal_autocheckpoint=10000")
    cursor.close()


_CHECKPOINT_S = 1.0


async def _checkpoints(path: str) -> None:
    """Copy the WAL back into the database file every second, in a thread and connection of
    their own, PASSIVE (never waits for, nor blocks, the writer or readers). With SQLite's
    automatic checkpoint the committing flush did it, fsync included, and paid for it in latency
    (bench/ingest.py: p99 rose over a run as the file grew)."""
    thread = ThreadPoolExecutor(1, thread_name_prefix="fernwart-checkpoint")
    local: dict[str, sqlite3.Connection] = {}

    def checkpoint() -> None:
        if "conn" not in local:
            local["conn"] = sqlite3.connect(path, timeout=30, isolation_level=None)
        local["conn"].execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def close() -> None:
        if "conn" in local:
            local["conn"].close()

    loop = asyncio.get_running_loop()
    try:
        while True:
            await asyncio.sleep(_CHECKPOINT_S)
            try:
                await loop.run_in_executor(thread, checkpoint)
            except sqlite3.Error as err:  # busy, say: the next round tries again
                log.warning("sqlite_checkpoint_failed", error=str(err))
    finally:
        await loop.run_in_executor(thread, close)
        thread.shutdown(wait=False)


def _sqlite_begin(conn: sa.Connection) -> None:
    # Writers take the write lock up front (BEGIN IMMEDIATE): flushes of several controller
    # processes on one file then run one after the other, each reading what the last committed.
    immediate = conn.get_execution_options().get("fernwart_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _flush_engine(url: str) -> sa.Engine | None:
    """For a SQLite file: a synchronous engine on the same file for the flush writer's thread.

    Through aiosqlite every statement of a flush took about four hops between the event loop and
    aiosqlite's thread (cursor, execute, fetch, close): some 50 per flush, a third of a small
    flush's time. The writer thread runs the whole transaction in one hop; SQLite releases the GIL
    while it works, so the event loop keeps receiving meanwhile.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    engine = sa.create_engine(
        parsed.set(drivername="sqlite+pysqlite"),
        connect_args={"timeout": 30, "check_same_thread": False},  # disposed of from the loop
    )
    sa.event.listen(engine, "connect", _sqlite_pragmas)
    sa.event.listen(engine, "begin", _sqlite_begin)
    return engine.execution_options(**WRITE)


def create_engine(url: str, *, pool_size: int = 5) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    return create_async_engine(url, pool_size=pool_size, pool_pre_ping=True)


class Store(InventoryReads):
    def __init__(
        self,
        engine: AsyncEngine,
        writer: FlushWriter,
        flush_engine: sa.Engine | None = None,
        guard: SqliteFileGuard | None = None,
    ) -> None:
        self.engine = engine
        self._guard = guard
        # Same pool; BEGIN IMMEDIATE on SQLite. Only through writing(), so that writers take turns.
        self._write_engine = engine.execution_options(**WRITE)
        self._writer = writer
        # SQLite files: flushes run in one thread of their own on a synchronous engine (see
        # _flush_engine); PostgreSQL: as synchronous code in SQLAlchemy's greenlet (run_sync).
        self._flush_engine = flush_engine
        self._flush_thread = (
            ThreadPoolExecutor(1, thread_name_prefix="fernwart-flush") if flush_engine is not None else None
        )
        self._flush_listeners: list[Callable[[list[Received]], None]] = []
        # SQLite has one writer at a time. Writers of this process (flushes, findings, the stale
        # marker, catalog imports) take turns here instead of in SQLite's busy handler, which
        # polls with sleeps growing to 100 ms: a flush queued behind a findings write woke up as
        # much as 100 ms after the lock was free (bench/ingest.py: p99 spikes at start, when
        # findings for every new device are written). PostgreSQL writers run side by side.
        self._turns: contextlib.AbstractAsyncContextManager[Any] = (
            asyncio.Lock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()
        )

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite), in turn with this process's other
        writers on SQLite; committed on exit."""
        async with self._turns, self._write_engine.begin() as conn:
            yield conn
            self.check_file()

    def check_file(self) -> None:
        """Raise :class:`~controller.storage.guard.DatabaseLost` when the SQLite file is gone or
        replaced (a no-op for PostgreSQL). Called before every commit."""
        if self._guard is not None:
            self._guard.check()

    def file_lost(self) -> str | None:
        """``"<path>: deleted"`` (or replaced) when the SQLite file is not the one opened; else None."""
        if self._guard is None:
            return None
        reason = self._guard.lost()
        return None if reason is None else f"{self._guard.path}: {reason}"

    def add_flush_listener(self, listener: Callable[[list[Received]], None]) -> None:
        """Call ``listener(items)`` after each committed flush (on the event loop; keep it cheap)."""
        self._flush_listeners.append(listener)

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        url: str,
        *,
        tenant_of: Callable[[str], str] = lambda _site: "default",
        dead_letter_max_bytes: int = 64 * 1024,
        max_future_skew_s: float | None = 300.0,
        pool_size: int = 5,
        create: bool = True,
    ) -> AsyncIterator[Store]:
        """Open the store and migrate it to head.

        ``create=False`` (the daemon and every command working on a configured database): a
        SQLite file that does not exist, or a database without a fernwart schema, raises
        :class:`~controller.storage.guard.DatabaseNotInitialized` instead of being created; only
        ``fernwart controller init`` (and tests) create. See :mod:`controller.storage.guard`.
        """
        if not create:
            require_file(url)
        engine = create_engine(url, pool_size=pool_size)
        flush_engine = _flush_engine(url)
        store = None
        checkpoints = None
        try:
            if not create:
                await require_initialized(engine)
            await migrate.upgrade(engine)
            path = sqlite_path(url)
            writer_class = PgFlushWriter if engine.dialect.name == "postgresql" else SqliteFlushWriter
            writer = writer_class(
                tenant_of=tenant_of,
                dead_letter_max_bytes=dead_letter_max_bytes,
                max_future_skew_s=max_future_skew_s,
            )
            store = cls(engine, writer, flush_engine, SqliteFileGuard(path) if path is not None else None)
            if flush_engine is not None and flush_engine.url.database:
                checkpoints = asyncio.create_task(_checkpoints(flush_engine.url.database), name="checkpoints")
            yield store
        finally:
            if checkpoints is not None:
                checkpoints.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await checkpoints
            if store is not None and store._flush_thread is not None:
                store._flush_thread.shutdown(wait=True)  # a flush in progress commits first
            if flush_engine is not None:
                flush_engine.dispose()
            await engine.dispose()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # --- ingest -----------------------------------------------------------------------------

    async def write_flush(self, items: list[Received]) -> FlushResult:
        """Store ``items`` in one transaction; on return everything is committed."""
        items = prepared(items, copy=self.dialect == "postgresql")
        if self._flush_thread is not None:
            loop = asyncio.get_running_loop()
            async with self._turns:
                result = await loop.run_in_executor(self._flush_thread, self._write_in_thread, items)
        else:
            async with self.writing() as conn:
                result = await conn.run_sync(self._writer.write, items)
        self._writer.committed()
        for listener in self._flush_listeners:
            listener(items)
        return result

    def _write_in_thread(self, items: list[Received]) -> FlushResult:
        assert self._flush_engine is not None
        with self._flush_engine.begin() as conn:
            result = self._writer.write(conn, items)
            self.check_file()  # not committed (nor acknowledged) into a deleted file
            return result

    async def mark_stale(self, *, now_epoch: float, after_intervals: float, default_interval_s: float) -> int:
        """Mark active devices stale whose newest observation is older than the allowed intervals."""
        devices = m.DEVICES
        deadline = devices.c.last_seen_epoch + after_intervals * sa.func.coalesce(
            devices.c.interval_s, default_interval_s
        )
        # Rows a flush is writing right now are skipped (SKIP LOCKED; SQLite has one writer
        # anyway): that flush brings them up to date, and waiting for it while holding the rows
        # marked so far made the next flushes wait in turn. While agents deliver a backlog older
        # than the stale limit (after an outage), the marker and the writer meet on every row:
        # flushes stalled ~1 s every stale check (bench/ingest.py, observations built minutes
        # before they were sent).
        stale = (
            sa.select(devices.c.id)
            .where(devices.c.status == "active", deadline < now_epoch)
            .with_for_update(skip_locked=True)
        )
        stmt = sa.update(devices).where(devices.c.id.in_(stale.scalar_subquery())).values(status="stale")
        async with self.writing() as conn:
            result = await conn.execute(stmt)
        return int(result.rowcount)

    # --- queries ------------------------------------------------------------------------------

    async def mark_silent_agents(self, now: datetime, missed: float = 2.0) -> list[dict[str, Any]]:
        """Mark online agents offline (``heartbeat_overdue``) whose newest heartbeat is more than
        ``missed`` of their heartbeat intervals old; returns them. An agent that sends no
        heartbeats (an older build) is left to its last will."""
        agents = m.AGENTS
        async with self.writing() as conn:
            columns = (agents.c.agent_id, agents.c.site_id, agents.c.heartbeat_at, agents.c.heartbeat_s)
            rows = await conn.execute(
                sa.select(*columns).where(
                    agents.c.state == "online",
                    agents.c.heartbeat_at.is_not(None),
                    agents.c.heartbeat_s.is_not(None),
                )
            )
            silent = [
                {"agent_id": row.agent_id, "site_id": row.site_id, "heartbeat_at": row.heartbeat_at}
                for row in rows
                if heartbeat_overdue(row.heartbeat_at, row.heartbeat_s, now, missed)
            ]
            if silent:
                await conn.execute(
                    sa.update(agents)
                    .where(agents.c.agent_id.in_([a["agent_id"] for a in silent]), agents.c.state == "online")
                    .values(state="offline", state_reason="heartbeat_overdue", status_at=now)
                )
        return silent

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def prune_dead_letters(self, max_rows: int) -> int:
        """Delete the oldest dead letters beyond the newest ``max_rows``; return how many.

        Safe with several controllers on one database: on PostgreSQL one prunes at a time (the
        others skip: a transaction-level advisory lock), on SQLite writes take turns anyway.
        """
        dead = m.DEAD_LETTERS
        async with self.engine.connect() as conn:  # cheap bound first: ids only grow
            low, high = (await conn.execute(sa.select(sa.func.min(dead.c.id), sa.func.max(dead.c.id)))).one()
        if low is None or high - low + 1 <= max_rows:
            return 0
        newest_gone = (
            sa.select(dead.c.id).order_by(dead.c.id.desc()).offset(max_rows).limit(1).scalar_subquery()
        )
        async with self.writing() as conn:
            if conn.dialect.name == "postgresql":
                locked = await conn.execute(
                    sa.text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _PRUNE_LOCK}
                )
                if not locked.scalar_one():
                    return 0
            result = await conn.execute(sa.delete(dead).where(dead.c.id <= newest_gone))
            return int(result.rowcount or 0)
