"""One page of a filtered table, with the total: the shape every list endpoint returns."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine


def equal_to(pairs: Iterable[tuple[sa.ColumnElement[Any], object]]) -> list[sa.ColumnElement[bool]]:
    """``column == value`` for every pair whose value is given (None means: no filter)."""
    return [column == value for column, value in pairs if value is not None]


async def fetch_page(
    engine: AsyncEngine,
    table: sa.Table,
    conditions: list[sa.ColumnElement[bool]],
    order_by: Iterable[sa.ColumnElement[Any]],
    *,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """Rows ``offset .. offset + limit`` matching ``conditions``, and how many match in all."""
    async with engine.connect() as conn:
        total = (
            await conn.execute(sa.select(sa.func.count()).select_from(table).where(*conditions))
        ).scalar_one()
        rows = await conn.execute(
            sa.select(table).where(*conditions).order_by(*order_by).limit(limit).offset(offset)
        )
        return [dict(row._mapping) for row in rows], int(total)  # noqa: SLF001 (SQLAlchemy API)
