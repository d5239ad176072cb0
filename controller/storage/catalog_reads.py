"""The API's reads of the catalog tables: findings, advisories with their device counts, a
device's findings and recommendation. Plain reads on the store's read engine; each answer is one
statement or one connection, so a page and its total describe one snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from controller.storage import models as m
from controller.storage.paging import equal_to, fetch_page

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine


@dataclass(frozen=True, slots=True)
class FindingFilter:
    tenant: str | None = None
    site: str | None = None
    device: str | None = None
    severity: str | None = None
    kev: bool | None = None
    status: str | None = None
    advisory: str | None = None
    limit: int = 100
    offset: int = 0


def _rows(result: Any) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in result]  # noqa: SLF001 (SQLAlchemy API)


class CatalogReads:
    _engine: AsyncEngine

    async def list_findings(self, flt: FindingFilter) -> tuple[list[dict[str, Any]], int]:
        table = m.FINDINGS
        conditions = equal_to(
            (
                (table.c.tenant, flt.tenant),
                (table.c.site_id, flt.site),
                (table.c.device_id, flt.device),
                (table.c.severity, flt.severity),
                (table.c.kev, flt.kev),
                (table.c.status, flt.status),
                (table.c.advisory_id, flt.advisory),
            )
        )
        order = finding_order(table)
        return await fetch_page(self._engine, table, conditions, order, limit=flt.limit, offset=flt.offset)

    async def list_advisories(
        self, limit: int, offset: int, *, tenant: str | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """Advisories with their device counts; with ``tenant``, counting that tenant's devices only."""
        advisories = m.ADVISORIES
        counts = _device_counts(tenant)
        columns = [c for c in advisories.c if c.name != "document"]
        async with self._engine.connect() as conn:
            total = (await conn.execute(sa.select(sa.func.count()).select_from(advisories))).scalar_one()
            found = await conn.execute(
                sa.select(
                    *columns,
                    sa.func.coalesce(counts.c.affected, 0).label("affected_devices"),
                    sa.func.coalesce(counts.c.devices, 0).label("devices"),
                )
                .select_from(advisories.outerjoin(counts, counts.c.advisory_id == advisories.c.id))
                .order_by(advisories.c.current_release_date.desc(), advisories.c.id)
                .limit(limit)
                .offset(offset)
            )
            return _rows(found), int(total)

    async def get_advisory(self, advisory_id: str, *, tenant: str | None = None) -> dict[str, Any] | None:
        """The advisory row (with the document text) and every finding about it, most urgent first;
        with ``tenant``, that tenant's findings only."""
        advisories = m.ADVISORIES
        findings = m.FINDINGS
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(advisories).where(advisories.c.id == advisory_id))).first()
            if row is None:
                return None
            advisory = dict(row._mapping)  # noqa: SLF001 (SQLAlchemy API)
            found = await conn.execute(
                sa.select(findings)
                .where(
                    findings.c.advisory_id == advisory_id,
                    *([findings.c.tenant == tenant] if tenant is not None else []),
                )
                .order_by(*finding_order(findings))
            )
            advisory["findings"] = _rows(found)
            return advisory

    async def device_findings(
        self, site_id: str, device_id: str
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        findings = m.FINDINGS
        recs = m.RECOMMENDATIONS
        async with self._engine.connect() as conn:
            found = await conn.execute(
                sa.select(findings)
                .where(findings.c.site_id == site_id, findings.c.device_id == device_id)
                .order_by(*finding_order(findings))
            )
            rows = _rows(found)
            rec = (
                await conn.execute(
                    sa.select(recs).where(recs.c.site_id == site_id, recs.c.device_id == device_id)
                )
            ).first()
            return rows, dict(rec._mapping) if rec is not None else None  # noqa: SLF001


_STATUS_ORDER = {"affected": 0, "unknown": 1, "fixed": 2, "not_affected": 3}


def finding_order(table: sa.Table) -> list[Any]:
    """What needs action first: affected before unknown before fixed before not_affected; within
    a status KEV first, then the highest CVSS (unscored last). (KEV first regardless of status put
    a KEV advisory's not_affected findings above every affected one.)"""
    status_rank = sa.case(_STATUS_ORDER, value=table.c.status, else_=4)
    return [
        status_rank,
        table.c.kev.desc(),
        sa.func.coalesce(table.c.cvss, -1.0).desc(),
        table.c.tenant,
        table.c.site_id,
        table.c.device_id,
        table.c.advisory_id,
    ]


def _device_counts(tenant: str | None = None) -> Any:
    findings = m.FINDINGS
    affected = sa.func.sum(sa.case((findings.c.status == "affected", 1), else_=0))
    stmt = sa.select(
        findings.c.advisory_id,
        affected.label("affected"),
        sa.func.count().label("devices"),
    )
    if tenant is not None:
        stmt = stmt.where(findings.c.tenant == tenant)
    return stmt.group_by(findings.c.advisory_id).subquery()
