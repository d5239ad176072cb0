"""The database the controller opened must be the one it was configured with, and must exist.

Two faults this module answers (issue 12, item 5):

* A SQLite file deleted (or replaced) while the controller runs. SQLite keeps writing to the open,
  now nameless inode: every commit "succeeds" into a file nobody will ever open again. The
  :class:`SqliteFileGuard` compares the path's ``(st_dev, st_ino)`` with the ones recorded at
  open, before each write commits and in ``/healthz``; once they differ the commit is refused
  with :class:`DatabaseLost` (a transient error: ingest retries and acknowledges nothing, so the
  broker and the agents keep the data) and ``/healthz`` answers 503 naming the file.
* A configured database that does not exist or holds no schema at start. Creating one silently
  would replace a fleet's history with an empty database (it happened: 10,008 devices became 4).
  :func:`require_initialized` refuses with :class:`DatabaseNotInitialized`; only
  ``fernwart controller init`` creates and migrates a new one.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

log = structlog.get_logger(__name__)

INIT_HINT = "create it with `fernwart controller init --config FILE`"


class DatabaseNotInitialized(Exception):
    """The configured database does not exist or holds no fernwart schema (no ``alembic_version``)."""


class DatabaseLost(Exception):
    """The SQLite file this store writes to is no longer at its configured path."""


def sqlite_path(url: str | URL) -> Path | None:
    """The file of a SQLite URL; None for PostgreSQL and ``:memory:``."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def describe_database(url: str | URL) -> str:
    """Names the database without its password: the SQLite file, or PostgreSQL host and name."""
    path = sqlite_path(url)
    if path is not None:
        return f"SQLite file {path}"
    parsed = make_url(url)
    return f"{parsed.get_backend_name()} database {parsed.database!r} on {parsed.host or 'localhost'}"


def require_file(url: str) -> None:
    """Before the engine exists (connecting would create the file): a configured SQLite file must
    be there. Raises :class:`DatabaseNotInitialized`."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        msg = f"database.url: {path}: no such database file; {INIT_HINT}"
        raise DatabaseNotInitialized(msg)


async def require_initialized(engine: AsyncEngine) -> None:
    """The database holds a fernwart schema (an ``alembic_version`` table); raises
    :class:`DatabaseNotInitialized` otherwise (an empty SQLite file, a new PostgreSQL database)."""
    async with engine.connect() as conn:
        found = await conn.run_sync(lambda sync: sa.inspect(sync).has_table("alembic_version"))
    if not found:
        msg = f"database.url: {describe_database(engine.url)} holds no fernwart schema; {INIT_HINT}"
        raise DatabaseNotInitialized(msg)


def _identity(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_dev, stat.st_ino


class SqliteFileGuard:
    """Notices when the SQLite file at ``path`` is no longer the one opened (deleted, replaced)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._identity = _identity(path)
        self._lost: str | None = None

    def lost(self) -> str | None:
        """Why the file is not the one opened (``deleted``, ``replaced``), or None. Cheap: one stat."""
        try:
            reason = None if _identity(self.path) == self._identity else "replaced by another file"
        except FileNotFoundError:
            reason = "deleted"
        except OSError as err:
            reason = f"cannot stat: {err.strerror}"
        if reason != self._lost:  # logged once per transition
            if reason is not None:
                log.error(
                    "database_file_lost",
                    path=str(self.path),
                    reason=reason,
                    detail="nothing is stored or acknowledged until the controller runs on its file again",
                )
            else:
                log.info("database_file_back", path=str(self.path))
            self._lost = reason
        return reason

    def check(self) -> None:
        """Raise :class:`DatabaseLost` if the file is gone or replaced (call before a commit)."""
        reason = self.lost()
        if reason is not None:
            msg = f"database file {self.path}: {reason}"
            raise DatabaseLost(msg)
