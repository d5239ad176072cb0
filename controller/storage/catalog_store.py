"""Queries of the advisory catalog tables (advisories, KEV entries, findings, recommendations).

Writes run on the store's write engine (``BEGIN IMMEDIATE`` on SQLite), reads on the plain one.
A device's findings and recommendation are always replaced together, in one transaction, so a
reader sees either the old or the new set, never a mix.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from controller.storage import models as m
from controller.storage.catalog_reads import CatalogReads
from firmware_catalog import KevCatalog, KevEntry

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from controller.storage.repository import Store
    from firmware_catalog import Advisory

_CHUNK = 500  # (site, device) pairs per IN list
Severity = Literal["critical", "high", "medium", "low", "none", "unscored"]


def severity(cvss: float | None) -> Severity:
    """CVSS v3/v4 qualitative rating of a base score; ``unscored`` when the advisory gives none."""
    if cvss is None:
        return "unscored"
    if cvss >= 9.0:
        return "critical"
    if cvss >= 7.0:
        return "high"
    if cvss >= 4.0:
        return "medium"
    return "low" if cvss > 0 else "none"


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """The columns of a device the matcher needs."""

    pk: int
    site_id: str
    device_id: str
    tenant: str
    vendor: str
    model: str
    firmware_version: str | None
    # The family the driver reported (firmware_catalog.vocabulary); matching uses it first.
    family: str | None = None
    # The device's other software components, (name, version, scheme) by name: the matcher
    # matches those whose scheme the catalog knows (a Teams Rooms app) on their own.
    components: tuple[tuple[str, str, str | None], ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.site_id, self.device_id)


@dataclass(frozen=True, slots=True)
class DeviceResult:
    """A device's findings (rows ready to insert) and its recommendation row."""

    device: DeviceRecord
    findings: list[dict[str, Any]]
    recommendation: dict[str, Any]


def _rows(result: Any) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in result]  # noqa: SLF001 (SQLAlchemy API)


def _chunks(keys: Sequence[tuple[str, str]]) -> Iterable[list[tuple[str, str]]]:
    for start in range(0, len(keys), _CHUNK):
        yield list(keys[start : start + _CHUNK])


def _key_in(dialect: str, table: sa.Table, keys: list[tuple[str, str]]) -> sa.ColumnElement[bool]:
    """``table``'s (site_id, device_id) is one of ``keys``. PostgreSQL gets the keys as two arrays
    joined through unnest: it turned a row-value IN list into an OR of every pair tested against
    each row (115 ms for 500 keys among 4,000 devices, bench/ingest.py). SQLite looks a row-value
    IN list up in the unique index."""
    columns = sa.tuple_(table.c.site_id, table.c.device_id)
    if dialect != "postgresql":
        return columns.in_(keys)
    text_array = postgresql.ARRAY(sa.String())
    pairs = (
        sa.func.unnest(
            sa.bindparam(None, [site for site, _ in keys], type_=text_array, unique=True),
            sa.bindparam(None, [device for _, device in keys], type_=text_array, unique=True),
        )
        .table_valued("site_id", "device_id")
        .render_derived()
    )
    return columns.in_(sa.select(pairs.c.site_id, pairs.c.device_id))


_DEVICE_COLUMNS = (
    m.DEVICES.c.id,
    m.DEVICES.c.site_id,
    m.DEVICES.c.device_id,
    m.DEVICES.c.tenant,
    m.DEVICES.c.vendor,
    m.DEVICES.c.model,
    m.DEVICES.c.firmware_version,
    m.DEVICES.c.family,
)


def _record(row: Any) -> DeviceRecord:
    return DeviceRecord(
        row.id,
        row.site_id,
        row.device_id,
        row.tenant,
        row.vendor,
        row.model,
        row.firmware_version,
        row.family,
    )


_COMPONENT_COLUMNS = (
    m.DEVICE_COMPONENTS.c.site_id,
    m.DEVICE_COMPONENTS.c.device_id,
    m.DEVICE_COMPONENTS.c.component,
    m.DEVICE_COMPONENTS.c.version,
    m.DEVICE_COMPONENTS.c.scheme,
)


async def _with_components(
    conn: AsyncConnection, records: list[DeviceRecord], *, everything: bool = False
) -> list[DeviceRecord]:
    """``records`` with their components other than the firmware (one select per chunk of
    devices; ``everything``: one select of the whole table, for the whole fleet)."""
    table = m.DEVICE_COMPONENTS
    found: dict[tuple[str, str], list[tuple[str, str, str | None]]] = {}
    not_firmware = table.c.component != "firmware"
    if everything:
        selects = [sa.select(*_COMPONENT_COLUMNS).where(not_firmware)]
    else:
        keys = [r.key for r in records]
        dialect = conn.dialect.name
        selects = [
            sa.select(*_COMPONENT_COLUMNS).where(not_firmware, _key_in(dialect, table, chunk))
            for chunk in _chunks(keys)
        ]
    for select in selects:
        for row in await conn.execute(select.order_by(table.c.component)):
            component = (row.component, row.version, row.scheme)
            found.setdefault((row.site_id, row.device_id), []).append(component)
    if not found:
        return records
    return [dataclasses.replace(r, components=tuple(found[r.key])) if r.key in found else r for r in records]


# Findings writers of several controller instances take turns (PostgreSQL): each replaces a
# device's rows by DELETE + INSERT, and two of those interleaved would collide on the unique key.
# A transaction-scoped advisory lock does it without touching rows ingest locks. SQLite writers
# are serialised by BEGIN IMMEDIATE already.
_FINDINGS_LOCK = 0x66_77_63_61  # "fwca"


def _clean(text: str) -> str:
    return text.replace("\x00", "\ufffd")


class AdvisoryQuotaExceeded(Exception):
    """A new advisory beyond ``[catalog] max_advisories``; replacing a stored one is still allowed."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the catalog holds its maximum of {limit} advisories ([catalog] max_advisories); "
            "delete some or raise the limit"
        )
        self.limit = limit


def document_text(document: Any) -> str:
    """The advisory document as stored: compact JSON (15 MB took 0.15 s: callers may run it in a thread)."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


async def _take_turn(conn: AsyncConnection) -> None:
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _FINDINGS_LOCK})


class CatalogStore(CatalogReads):
    """The catalog tables: loading at start and writing here, the API's reads in :class:`CatalogReads`."""

    def __init__(self, store: Store) -> None:
        self._engine = store.engine
        self._store = store

    # --- loading at start -----------------------------------------------------------------------

    async def advisory_documents(self) -> list[tuple[str, str, str]]:
        """(id, source, document JSON text) of every stored advisory."""
        table = m.ADVISORIES
        async with self._engine.connect() as conn:
            found = await conn.execute(
                sa.select(table.c.id, table.c.source, table.c.document).order_by(table.c.id)
            )
            return [(row.id, row.source, row.document) for row in found]

    async def kev(self) -> KevCatalog:
        table = m.KEV_ENTRIES
        async with self._engine.connect() as conn:
            found = list(await conn.execute(sa.select(table)))
        entries = {
            row.cve: KevEntry(
                cve=row.cve,
                date_added=row.date_added,
                due_date=row.due_date,
                ransomware=row.ransomware,
                vendor=row.vendor,
                product=row.product,
                name=row.name,
            )
            for row in found
        }
        version = found[0].catalog_version if found else ""
        return KevCatalog(version, entries)

    async def devices(self) -> list[DeviceRecord]:
        async with self._engine.connect() as conn:
            found = await conn.execute(sa.select(*_DEVICE_COLUMNS).order_by(m.DEVICES.c.id))
            return await _with_components(conn, [_record(row) for row in found], everything=True)

    async def devices_by_keys(self, keys: Iterable[tuple[str, str]]) -> list[DeviceRecord]:
        devices = m.DEVICES
        out: list[DeviceRecord] = []
        async with self._engine.connect() as conn:
            for chunk in _chunks(sorted(set(keys))):
                found = await conn.execute(
                    sa.select(*_DEVICE_COLUMNS).where(_key_in(conn.dialect.name, devices, chunk))
                )
                out.extend(await _with_components(conn, [_record(row) for row in found]))
        return out

    async def devices_by_pks(self, pks: Iterable[int]) -> list[DeviceRecord]:
        wanted = sorted(set(pks))
        out: list[DeviceRecord] = []
        async with self._engine.connect() as conn:
            for start in range(0, len(wanted), _CHUNK):
                found = await conn.execute(
                    sa.select(*_DEVICE_COLUMNS).where(m.DEVICES.c.id.in_(wanted[start : start + _CHUNK]))
                )
                out.extend(await _with_components(conn, [_record(row) for row in found]))
        return out

    async def has_advisory(self, advisory_id: str) -> bool:
        table = m.ADVISORIES
        async with self._engine.connect() as conn:
            found = await conn.execute(sa.select(table.c.id).where(table.c.id == advisory_id))
            return found.first() is not None

    async def device_pks_with_findings_of(self, advisory_id: str) -> set[int]:
        table = m.FINDINGS
        async with self._engine.connect() as conn:
            found = await conn.execute(
                sa.select(table.c.device_pk).where(table.c.advisory_id == advisory_id).distinct()
            )
            return {int(pk) for pk in found.scalars()}

    # --- writing --------------------------------------------------------------------------------

    async def save_advisory(
        self,
        advisory: Advisory,
        *,
        kev: bool,
        now: datetime,
        results: list[DeviceResult],
        text: str | None = None,
        max_advisories: int | None = None,
    ) -> None:
        """Upsert the advisory and replace the results of the devices it concerns, in one transaction.

        ``text``: the document as :func:`document_text` writes it, if the caller has it.
        Raises :class:`AdvisoryQuotaExceeded` (nothing written) if the advisory is new and
        ``max_advisories`` are stored already; counted in the transaction, after the catalog lock,
        so instances sharing the database cannot overshoot together.
        """
        row = {
            "id": advisory.id,
            "title": advisory.title,
            "publisher": advisory.publisher,
            "tracking_version": advisory.tracking_version,
            "initial_release_date": advisory.initial_release_date,
            "current_release_date": advisory.current_release_date,
            "url": advisory.url,
            "max_cvss": advisory.max_cvss,
            "cves": list(advisory.cves),
            "products": len(advisory.products),
            "kev": kev,
            "source": advisory.source,
            "document": text if text is not None else document_text(advisory.document),
            "imported_at": now,
        }
        async with self._store.writing() as conn:
            await _take_turn(conn)
            replaced = await conn.execute(sa.delete(m.ADVISORIES).where(m.ADVISORIES.c.id == advisory.id))
            if max_advisories is not None and not replaced.rowcount:
                count = sa.select(sa.func.count()).select_from(m.ADVISORIES)
                if (await conn.execute(count)).scalar_one() >= max_advisories:
                    raise AdvisoryQuotaExceeded(max_advisories)
            await conn.execute(sa.insert(m.ADVISORIES), [row])
            await _replace_results(conn, results)

    async def delete_advisory(self, advisory_id: str, results: list[DeviceResult]) -> None:
        async with self._store.writing() as conn:
            await _take_turn(conn)
            await conn.execute(sa.delete(m.ADVISORIES).where(m.ADVISORIES.c.id == advisory_id))
            await conn.execute(sa.delete(m.FINDINGS).where(m.FINDINGS.c.advisory_id == advisory_id))
            await _replace_results(conn, results)

    async def save_kev(self, kev: KevCatalog, kev_advisories: set[str], now: datetime) -> None:
        """Replace the KEV entries and the advisories' KEV flags (findings follow separately)."""
        rows = [
            {
                "cve": e.cve,
                "date_added": e.date_added,
                "due_date": e.due_date,
                "ransomware": e.ransomware,
                "vendor": _clean(e.vendor),  # free text of the feed; PostgreSQL text holds no NUL
                "product": _clean(e.product),
                "name": _clean(e.name),
                "catalog_version": kev.version[:64],
                "imported_at": now,
            }
            for e in kev.entries.values()
        ]
        async with self._store.writing() as conn:
            await _take_turn(conn)
            await conn.execute(sa.delete(m.KEV_ENTRIES))
            for start in range(0, len(rows), 1000):
                await conn.execute(sa.insert(m.KEV_ENTRIES), rows[start : start + 1000])
            advisories = m.ADVISORIES
            await conn.execute(sa.update(advisories).values(kev=advisories.c.id.in_(sorted(kev_advisories))))

    async def replace_results(self, results: list[DeviceResult]) -> None:
        async with self._store.writing() as conn:
            await _take_turn(conn)
            await _replace_results(conn, results)


async def _replace_results(conn: AsyncConnection, results: list[DeviceResult]) -> None:
    keys = [r.device.key for r in results]
    findings = m.FINDINGS
    recs = m.RECOMMENDATIONS
    dialect = conn.dialect.name
    for chunk in _chunks(keys):
        await conn.execute(sa.delete(findings).where(_key_in(dialect, findings, chunk)))
        await conn.execute(sa.delete(recs).where(_key_in(dialect, recs, chunk)))
    rows = [row for r in results for row in r.findings]
    for start in range(0, len(rows), 1000):
        await conn.execute(sa.insert(findings), rows[start : start + 1000])
    rec_rows = [r.recommendation for r in results]
    for start in range(0, len(rec_rows), 1000):
        await conn.execute(sa.insert(recs), rec_rows[start : start + 1000])
