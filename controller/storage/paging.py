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
    """Rows ``offset .. offset + limit`` matching ``conditions``, and how many match in all.

    The total comes from the same statement as the rows (``count(*) OVER ()``), so both describe
    one snapshot: two statements would each see their own on PostgreSQL (READ COMMITTED) and on
    SQLite in autocommit, and a page read while matching rewrites findings could say "3 in all"
    beside 4 rows. Only a page past the end asks again, for the total alone."""
    total_col = sa.func.count().over().label("fw_page_total")
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(table, total_col).where(*conditions).order_by(*order_by).limit(limit).offset(offset)
            )
        ).all()
        if rows:
            total = int(rows[0]._mapping["fw_page_total"])  # noqa: SLF001 (SQLAlchemy API)
        else:
            query = sa.select(sa.func.count()).select_from(table).where(*conditions)
            total = int((await conn.execute(query)).scalar_one())
        items = [{k: v for k, v in row._mapping.items() if k != "fw_page_total"} for row in rows]  # noqa: SLF001
        return items, total
