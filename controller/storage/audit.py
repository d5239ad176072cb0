"""The audit log: every decision of contract-aware updates, append-only, exportable.

Decisions are written in the same transaction as the change they explain (:func:`append` takes
the open connection), so no change exists without its record and no record without its change.
Nothing in the controller updates or deletes an audit row. Kinds: ``policy`` (contract or scope
changed), ``approval``, ``plan``, ``notice``, ``command``, ``outcome``, ``campaign`` (approved,
paused, resumed, cancelled, halted).

Export: JSON lines (one object a line, keys in a fixed order) or CSV (``detail`` as a JSON
string in its column), oldest first.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.storage.contract_models import AUDIT

if TYPE_CHECKING:
    from controller.storage import Store

AuditKind = Literal["policy", "approval", "plan", "notice", "command", "outcome", "campaign"]
KINDS: tuple[str, ...] = ("policy", "approval", "plan", "notice", "command", "outcome", "campaign")
COLUMNS = ("id", "at", "kind", "actor", "customer_id", "subject", "detail")
MAX_EXPORT = 1_000_000


async def append(
    conn: AsyncConnection,
    kind: AuditKind,
    *,
    actor: str,
    subject: str,
    customer_id: str | None = None,
    detail: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Record one decision inside the caller's write transaction."""
    await conn.execute(
        sa.insert(AUDIT).values(
            at=at or datetime.now(UTC),
            kind=kind,
            actor=actor[:128],
            customer_id=customer_id,
            subject=subject[:512],
            detail=dict(detail or {}),
        )
    )


async def entries(
    store: Store,
    *,
    customer_id: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    limit: int = MAX_EXPORT,
) -> list[dict[str, Any]]:
    """Audit rows, oldest first, optionally of one customer, one kind, from ``since`` on."""
    stmt = sa.select(*(AUDIT.c[name] for name in COLUMNS)).order_by(AUDIT.c.id).limit(limit)
    if customer_id is not None:
        stmt = stmt.where(AUDIT.c.customer_id == customer_id)
    if kind is not None:
        stmt = stmt.where(AUDIT.c.kind == kind)
    if since is not None:
        stmt = stmt.where(AUDIT.c.at >= since)
    async with store.engine.connect() as conn:
        return [dict(row._mapping) for row in await conn.execute(stmt)]  # noqa: SLF001 - SQLAlchemy API


def _plain(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": entry["id"],
        "at": entry["at"].astimezone(UTC).isoformat(),
        "kind": entry["kind"],
        "actor": entry["actor"],
        "customer_id": entry["customer_id"],
        "subject": entry["subject"],
        "detail": entry["detail"],
    }


def to_jsonl(rows: Iterable[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(_plain(row), sort_keys=False, default=str) + "\n" for row in rows)


def to_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        plain = _plain(row)
        plain["detail"] = json.dumps(plain["detail"], sort_keys=True, default=str)
        writer.writerow(["" if plain[c] is None else plain[c] for c in COLUMNS])
    return out.getvalue()
