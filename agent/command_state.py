"""The agent's memory of commands: ids it accepted (until they expire) and their results.

One SQLite file (``commands.db`` beside the outbox), WAL, ``synchronous=FULL``: a command id is
on disk before its driver is called, so neither a redelivery nor a replay after a restart or a
power cut runs it again. Results wait here until the broker took them. Calls are short and
serialised by a lock; the executor runs them in a worker thread.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from typing import TYPE_CHECKING

from collector.actions import ActionResult

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path

    from collector.wire.commands import CommandEnvelope


class SeenCommands:
    """Command ids this agent accepted, with their results; one SQLite file, thread-safe."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a claim must survive a power cut
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS seen (command_id TEXT PRIMARY KEY, expires_at REAL NOT NULL,"
            " device_id TEXT NOT NULL, job_id TEXT NOT NULL, result TEXT,"
            " reported INTEGER NOT NULL DEFAULT 0)"
        )

    def claim(self, envelope: CommandEnvelope) -> bool:
        """Record the id; False if it was recorded before (a replay)."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO seen (command_id, expires_at, device_id, job_id) VALUES (?, ?, ?, ?)",
                (
                    str(envelope.command_id),
                    envelope.expires_at.timestamp(),
                    envelope.device_id,
                    envelope.job_id,
                ),
            )
            return cursor.rowcount == 1

    def result(self, command_id: uuid.UUID) -> ActionResult | None:
        with self._lock:
            row = self._db.execute(
                "SELECT result FROM seen WHERE command_id = ?", (str(command_id),)
            ).fetchone()
        return ActionResult.model_validate_json(row[0]) if row and row[0] else None

    def store_result(self, command_id: uuid.UUID, result: ActionResult) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE seen SET result = ? WHERE command_id = ?", (result.model_dump_json(), str(command_id))
            )

    def mark_reported(self, command_id: uuid.UUID) -> None:
        with self._lock:
            self._db.execute("UPDATE seen SET reported = 1 WHERE command_id = ?", (str(command_id),))

    def unreported(self) -> list[tuple[uuid.UUID, str, ActionResult]]:
        """(command id, job id, result) of every result not yet handed to the broker."""
        with self._lock:
            rows = self._db.execute(
                "SELECT command_id, job_id, result FROM seen WHERE result IS NOT NULL AND reported = 0"
            ).fetchall()
        return [(uuid.UUID(c), job, ActionResult.model_validate_json(r)) for c, job, r in rows]

    def prune(self, now: datetime) -> int:
        """Forget expired commands whose result went out (a replay of one is refused as expired)."""
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM seen WHERE expires_at < ? AND (reported = 1 OR result IS NULL)",
                (now.timestamp() - 60,),
            )
            return cursor.rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()
