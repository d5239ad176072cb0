"""What the outbox does when its file cannot be used: tell a corrupt file from a full disk, and
move a corrupt file aside.

Two different faults, two different answers (issue 12, item 5):

* **Corrupt** (SQLite ``SQLITE_CORRUPT`` "database disk image is malformed", ``SQLITE_NOTADB``
  "file is not a database", or a failed ``PRAGMA quick_check``): the file will not get better by
  itself, and exiting would make systemd restart the agent into the same failure, polling
  nothing. The file (and its ``-wal``/``-shm``) is renamed to ``outbox.db.corrupt-<UTC time>``,
  kept for whoever wants to recover rows from it, and a new outbox is started.
* **Unavailable** (a full disk — ``SQLITE_FULL``, ``ENOSPC`` — or any other I/O failure): the
  file may well be fine once space returns, so it is left alone. The outbox runs degraded: polls
  go on, what cannot be stored is counted, and opening is retried.
"""

from __future__ import annotations

import errno
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

_CORRUPT_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


class OutboxCorrupt(Exception):
    """The outbox file is damaged beyond what SQLite can use."""


def is_corrupt(err: BaseException) -> bool:
    if isinstance(err, OutboxCorrupt):
        return True
    if isinstance(err, sqlite3.DatabaseError) and not isinstance(err, sqlite3.OperationalError):
        code = getattr(err, "sqlite_errorcode", None)
        # Primary result code in the low byte (extended codes add detail above it).
        return code is None or (code & 0xFF) in _CORRUPT_CODES
    return False


def is_disk_full(err: BaseException) -> bool:
    if isinstance(err, sqlite3.Error):
        code = getattr(err, "sqlite_errorcode", None)
        return code is not None and (code & 0xFF) == sqlite3.SQLITE_FULL
    return isinstance(err, OSError) and err.errno in {errno.ENOSPC, errno.EDQUOT}


def describe(err: BaseException) -> str:
    """One line for the log: the SQLite or OS error name and its text."""
    name = getattr(err, "sqlite_errorname", None) or (
        errno.errorcode.get(err.errno, "") if isinstance(err, OSError) and err.errno else ""
    )
    text = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    return f"{name}: {text}" if name else text


def quarantine(path: Path, now: datetime | None = None) -> Path:
    """Rename ``path`` and its ``-wal``/``-shm`` to ``<path>.corrupt-<UTC time>`` (WAL and SHM
    keep their suffix, so SQLite can still open the quarantined copy with its log). Returns the
    new path of the database file. Raises :class:`OSError` if the main file cannot be moved."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    path.rename(target)
    for suffix in ("-wal", "-shm", "-journal"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(target.with_name(target.name + suffix))
    return target
