"""Enrolled sites and their agents (table ``sites``): who may speak for a site, and its broker password.

A site exists for the controller only once an admin enrolled it (API or CLI), naming the one
agent that speaks for it. Enrolling creates the agent's broker password, returned here once and
stored only as its Mosquitto hash (:mod:`controller.broker.passwd`). Unenrolling revokes the
row (``revoked_at``): from the next flush on the site's messages are dead letters
(``not_enrolled``), and the site may be enrolled again, with another agent too.

An agent's broker username is its ``agent_id``, so an agent id is enrolled for one site at a
time. These functions take the :class:`~controller.storage.Store` (SQLite and PostgreSQL alike).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from collector.wire import IDENT_PATTERN
from controller.broker.passwd import hash_password, new_password
from controller.storage import models as m

if TYPE_CHECKING:
    from controller.storage import Store

_IDENT = re.compile(IDENT_PATTERN)


class EnrollmentError(ValueError):
    """An enrollment request that cannot be granted; ``field`` names the input at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class AlreadyEnrolled(EnrollmentError):
    pass


@dataclass(frozen=True, slots=True)
class Enrollment:
    site_id: str
    agent_id: str
    registered_at: datetime
    enrolled_by: str | None
    revoked_at: datetime | None
    has_password: bool  # False: claimed before revision 0005; `enroll --rotate` gives it one

    @property
    def broker_username(self) -> str:
        return self.agent_id

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def public(self) -> dict[str, Any]:
        return {
            "site_id": self.site_id,
            "agent_id": self.agent_id,
            "broker_username": self.broker_username,
            "registered_at": self.registered_at,
            "enrolled_by": self.enrolled_by,
            "revoked_at": self.revoked_at,
            "has_password": self.has_password,
        }


_T = m.SITES
_COLUMNS = (
    _T.c.site_id,
    _T.c.agent_id,
    _T.c.registered_at,
    _T.c.enrolled_by,
    _T.c.revoked_at,
    _T.c.password_hash,
)


def _enrollment(row: Any) -> Enrollment:
    return Enrollment(
        site_id=row.site_id,
        agent_id=row.agent_id,
        registered_at=row.registered_at,
        enrolled_by=row.enrolled_by,
        revoked_at=row.revoked_at,
        has_password=row.password_hash is not None,
    )


def check_ids(site_id: str, agent_id: str) -> None:
    """Raises :class:`EnrollmentError` for ids that cannot be a topic segment or broker username."""
    if not _IDENT.match(site_id):
        raise EnrollmentError("site_id", f"must match {IDENT_PATTERN} (it is a topic segment)")
    if not _IDENT.match(agent_id) or ":" in agent_id:
        raise EnrollmentError(
            "agent_id", f"must match {IDENT_PATTERN} without ':' (it is the agent's broker username)"
        )


async def enroll(
    store: Store, site_id: str, agent_id: str, *, enrolled_by: str | None = None
) -> tuple[Enrollment, str]:
    """Enroll ``site_id`` with ``agent_id``: (the enrollment, the broker password, shown once).

    Raises :class:`AlreadyEnrolled` when the site is enrolled (unenroll it first, or rotate) or
    the agent id is enrolled for another site, :class:`EnrollmentError` for malformed ids."""
    check_ids(site_id, agent_id)
    password = new_password()
    now = datetime.now(UTC)
    values = {
        "agent_id": agent_id,
        "registered_at": now,
        "password_hash": hash_password(password),
        "enrolled_by": enrolled_by,
        "revoked_at": None,
    }
    async with store.writing() as conn:
        rows = {
            r.site_id: r
            for r in await conn.execute(
                sa.select(*_COLUMNS).where(
                    sa.or_(
                        _T.c.site_id == site_id, sa.and_(_T.c.agent_id == agent_id, _T.c.revoked_at.is_(None))
                    )
                )
            )
        }
        current = rows.pop(site_id, None)
        if current is not None and current.revoked_at is None:
            raise AlreadyEnrolled("site_id", f"site {site_id!r} is enrolled (agent {current.agent_id!r})")
        if rows:
            other = next(iter(rows))
            raise AlreadyEnrolled("agent_id", f"agent {agent_id!r} is enrolled for site {other!r}")
        if current is None:
            await conn.execute(sa.insert(_T).values(site_id=site_id, **values))
        else:
            await conn.execute(sa.update(_T).where(_T.c.site_id == site_id).values(**values))
        row = (await conn.execute(sa.select(*_COLUMNS).where(_T.c.site_id == site_id))).one()
    return _enrollment(row), password


async def rotate(store: Store, site_id: str) -> tuple[Enrollment, str] | None:
    """A new broker password for the enrolled ``site_id`` (shown once); None when not enrolled."""
    password = new_password()
    async with store.writing() as conn:
        result = await conn.execute(
            sa.update(_T)
            .where(_T.c.site_id == site_id, _T.c.revoked_at.is_(None))
            .values(password_hash=hash_password(password))
            .returning(*_COLUMNS)
        )
        row = result.first()
    return None if row is None else (_enrollment(row), password)


async def unenroll(store: Store, site_id: str) -> Enrollment | None:
    """Revoke the enrollment of ``site_id``; None when it is not enrolled (or already revoked)."""
    async with store.writing() as conn:
        result = await conn.execute(
            sa.update(_T)
            .where(_T.c.site_id == site_id, _T.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC), password_hash=None)
            .returning(*_COLUMNS)
        )
        row = result.first()
    return None if row is None else _enrollment(row)


async def list_enrollments(store: Store, *, include_revoked: bool = False) -> list[Enrollment]:
    stmt = sa.select(*_COLUMNS).order_by(_T.c.site_id)
    if not include_revoked:
        stmt = stmt.where(_T.c.revoked_at.is_(None))
    async with store.engine.connect() as conn:
        return [_enrollment(row) for row in await conn.execute(stmt)]


async def get_enrollment(store: Store, site_id: str) -> Enrollment | None:
    async with store.engine.connect() as conn:
        row = (await conn.execute(sa.select(*_COLUMNS).where(_T.c.site_id == site_id))).first()
    return None if row is None else _enrollment(row)


async def broker_credentials(store: Store) -> list[tuple[str, str, str]]:
    """(site_id, agent_id, password hash) of every enrolled site that has a broker password."""
    stmt = (
        sa.select(_T.c.site_id, _T.c.agent_id, _T.c.password_hash)
        .where(_T.c.revoked_at.is_(None), _T.c.password_hash.is_not(None))
        .order_by(_T.c.site_id)
    )
    async with store.engine.connect() as conn:
        return [(row.site_id, row.agent_id, row.password_hash) for row in await conn.execute(stmt)]
