"""API tokens and console sessions in the store (tables ``api_tokens`` and ``web_sessions``).

Tokens and session ids are stored as SHA-256 only (see :mod:`controller.auth`). These functions
take the :class:`~controller.storage.Store` so they work on SQLite and PostgreSQL alike and
share its writer turns.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from controller.auth import Principal, Role, check_token_request, new_token, token_hash
from controller.storage import models as m

if TYPE_CHECKING:
    from controller.storage import Store

# last_used_at is written at most this often per token: a write per request would make every
# read a write transaction (on SQLite, one at a time).
TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    name: str
    role: Role
    tenant: str | None
    created_at: datetime
    created_by: str | None
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    def usable(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def principal(self) -> Principal:
        return Principal(self.id, self.name, self.role, self.tenant)

    def record(self) -> dict[str, Any]:
        """:meth:`public` with times as ISO 8601: what the API and the CLI print."""
        return {key: v.isoformat() if isinstance(v, datetime) else v for key, v in self.public().items()}

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role.value,
            "tenant": self.tenant,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "expires_at": self.expires_at,
            "last_used_at": self.last_used_at,
            "revoked_at": self.revoked_at,
        }


_COLUMNS = (
    m.API_TOKENS.c.id,
    m.API_TOKENS.c.name,
    m.API_TOKENS.c.role,
    m.API_TOKENS.c.tenant,
    m.API_TOKENS.c.created_at,
    m.API_TOKENS.c.created_by,
    m.API_TOKENS.c.expires_at,
    m.API_TOKENS.c.last_used_at,
    m.API_TOKENS.c.revoked_at,
)


def _info(row: Any) -> TokenInfo:
    return TokenInfo(
        id=int(row.id),
        name=row.name,
        role=Role(row.role),
        tenant=row.tenant,
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


async def create_token(
    store: Store,
    *,
    name: str,
    role: Role,
    tenant: str | None = None,
    expires_at: datetime | None = None,
    created_by: str | None = None,
) -> tuple[TokenInfo, str]:
    """A new token; the token itself is returned here once and stored nowhere."""
    check_token_request(role, tenant)
    token = new_token()
    now = datetime.now(UTC)
    values = {
        "name": name,
        "role": role.value,
        "tenant": tenant,
        "token_hash": token_hash(token),
        "created_at": now,
        "created_by": created_by,
        "expires_at": expires_at,
    }
    async with store.writing() as conn:
        result = await conn.execute(sa.insert(m.API_TOKENS).values(**values).returning(*_COLUMNS))
        info = _info(result.one())
    return info, token


async def list_tokens(store: Store) -> list[TokenInfo]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(sa.select(*_COLUMNS).order_by(m.API_TOKENS.c.id))
        return [_info(row) for row in rows]


async def get_token(store: Store, token_id: int) -> TokenInfo | None:
    async with store.engine.connect() as conn:
        row = (await conn.execute(sa.select(*_COLUMNS).where(m.API_TOKENS.c.id == token_id))).first()
    return None if row is None else _info(row)


async def revoke_token(store: Store, token_id: int) -> TokenInfo | None:
    """Revoke a token and end its console sessions; None when there is no such token."""
    table = m.API_TOKENS
    now = datetime.now(UTC)
    async with store.writing() as conn:
        await conn.execute(
            sa.update(table)
            .where(table.c.id == token_id, table.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        await conn.execute(sa.delete(m.WEB_SESSIONS).where(m.WEB_SESSIONS.c.token_id == token_id))
        row = (await conn.execute(sa.select(*_COLUMNS).where(table.c.id == token_id))).first()
    return None if row is None else _info(row)


async def authenticate(store: Store, token: str, now: datetime | None = None) -> TokenInfo | None:
    """The usable token behind ``token`` (not revoked, not expired), its use recorded; else None."""
    now = now or datetime.now(UTC)
    table = m.API_TOKENS
    async with store.engine.connect() as conn:
        stmt = sa.select(*_COLUMNS).where(table.c.token_hash == token_hash(token))
        row = (await conn.execute(stmt)).first()
    if row is None:
        return None
    info = _info(row)
    if not info.usable(now):
        return None
    if info.last_used_at is None or now - info.last_used_at >= TOUCH_EVERY:
        async with store.writing() as conn:
            await conn.execute(sa.update(table).where(table.c.id == info.id).values(last_used_at=now))
    return info


async def open_session(store: Store, token_id: int, ttl: timedelta) -> tuple[str, str]:
    """A console session for ``token_id``: (session id, CSRF token), both returned once."""
    session_id = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    async with store.writing() as conn:
        sessions = m.WEB_SESSIONS
        await conn.execute(sa.delete(sessions).where(sessions.c.expires_at <= now))
        await conn.execute(
            sa.insert(sessions).values(
                id_hash=token_hash(session_id),
                token_id=token_id,
                csrf_hash=token_hash(csrf),
                created_at=now,
                expires_at=now + ttl,
            )
        )
    return session_id, csrf


async def session_token(store: Store, session_id: str, now: datetime | None = None) -> TokenInfo | None:
    """The usable token a live session was opened with; else None."""
    now = now or datetime.now(UTC)
    sessions = m.WEB_SESSIONS
    async with store.engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(sessions.c.token_id, sessions.c.expires_at).where(
                    sessions.c.id_hash == token_hash(session_id)
                )
            )
        ).first()
    if row is None or row.expires_at <= now:
        return None
    info = await get_token(store, int(row.token_id))
    return info if info is not None and info.usable(now) else None


async def close_session(store: Store, session_id: str) -> None:
    async with store.writing() as conn:
        sessions = m.WEB_SESSIONS
        await conn.execute(sa.delete(sessions).where(sessions.c.id_hash == token_hash(session_id)))
