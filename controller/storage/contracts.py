"""Customers and their contracts in the database: the policy and windows files' schema, stored.

:func:`import_contracts` takes the same documents as the offline planner (the TOML files, or the
same structure as JSON) and validates them with the same parser
(:func:`controller.scheduler.parse_policy`, :func:`~controller.scheduler.parse_windows`) before
anything is written: every problem at once (:class:`~controller.scheduler.DataError`), nothing
half-imported. :func:`load_contracts` rebuilds the documents from the rows and parses them again,
so the controller plans with exactly what the offline planner would.

An import replaces, per customer named in it, the customer's settings, sites, contacts and (when
a windows document is given) windows; approvals in the file are added (the customer's own
approvals, given through the API, stay). Each change is an audit entry (``policy``/``approval``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.scheduler import Approval, DataError, MaintenanceWindow, parse_policy, parse_windows
from controller.scheduler.schema import Customers, PolicyFile, WindowEntry, WindowsFile
from controller.storage import audit
from controller.storage import contract_models as cm
from controller.storage.models import DEVICES
from firmware_catalog import VersionParseError, parse_version
from firmware_catalog.products import FAMILY_SCHEME

if TYPE_CHECKING:
    from controller.storage import Store


@dataclass(frozen=True, slots=True)
class Contracts:
    """Every stored customer's policy and windows, parsed."""

    customers: Customers
    windows: list[MaintenanceWindow]
    webhooks: dict[str, str] = field(default_factory=dict)  # customer → webhook URL
    sites: dict[str, str] = field(default_factory=dict)  # site → customer


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime | date) else str(value)


async def import_contracts(  # noqa: C901 - one block per table, in one transaction
    store: Store, policy_doc: Mapping[str, Any], windows_doc: Mapping[str, Any] | None, *, actor: str
) -> dict[str, int]:
    """Validate and store; returns counts. Raises :class:`DataError` (nothing written then)."""
    customers = parse_policy(policy_doc)
    errors: list[str] = []
    windows: list[MaintenanceWindow] = []
    if windows_doc is not None:
        try:
            windows = parse_windows(windows_doc, customers)
        except DataError as err:
            errors += [f"windows: {line}" for line in err.errors]
    policy = PolicyFile.model_validate(policy_doc)
    entries = WindowsFile.model_validate(windows_doc or {}).windows
    errors += column_problems(policy, entries)
    if errors:
        raise DataError(errors)
    now = datetime.now(UTC)
    counts = {"customers": 0, "windows": len(windows), "approvals": 0, "contacts": 0}
    async with store.writing() as conn:
        for cid, entry in policy.customers.items():
            counts["customers"] += 1
            values = {
                "name": entry.name,
                "timezone": entry.timezone,
                "holidays": entry.holidays,
                "working_hours": entry.working_hours,
                "security_min_cvss": entry.security_min_cvss,
                "notice_lead": entry.notice_lead,
                "package_host": entry.package_host,
                "updated_at": now,
                "updated_by": actor,
            }
            found = await conn.execute(
                sa.update(cm.CUSTOMERS).where(cm.CUSTOMERS.c.customer_id == cid).values(**values)
            )
            if found.rowcount == 0:
                await conn.execute(
                    sa.insert(cm.CUSTOMERS).values(customer_id=cid, webhook_url=None, **values)
                )
            replaced = (cm.CUSTOMER_SITES, cm.CONTACTS) + ((cm.WINDOWS,) if windows_doc is not None else ())
            for table in replaced:
                await conn.execute(sa.delete(table).where(table.c.customer_id == cid))
            for site in dict.fromkeys(entry.sites):
                await conn.execute(sa.insert(cm.CUSTOMER_SITES).values(customer_id=cid, site_id=site))
            for contact in entry.contacts:
                counts["contacts"] += 1
                await conn.execute(
                    sa.insert(cm.CONTACTS).values(
                        customer_id=cid, name=contact.name, email=contact.email, role=contact.role
                    )
                )
            for approval in customers[cid].approvals:
                counts["approvals"] += await _add_approval(conn, cid, approval, actor=actor)
            await audit.append(
                conn,
                "policy",
                actor=actor,
                customer_id=cid,
                subject=f"customer {cid}",
                detail={
                    "change": "imported",
                    **values,
                    "updated_at": now.isoformat(),
                    "sites": list(entry.sites),
                    "contacts": len(entry.contacts),
                },
            )
        for window, item in zip(windows, entries, strict=True):
            await conn.execute(
                sa.insert(cm.WINDOWS).values(
                    customer_id=item.customer,
                    name=item.name,
                    sites=item.sites,
                    start=item.start.replace(tzinfo=None).isoformat(),
                    rrule=item.rrule,
                    duration=item.duration,
                    timezone=item.timezone,
                    exclude_holidays=item.exclude_holidays,
                    blackout=[d.isoformat() for d in item.blackout],
                )
            )
            await audit.append(
                conn,
                "policy",
                actor=actor,
                customer_id=item.customer,
                subject=f"window {window.name}",
                detail={
                    "change": "imported",
                    "start": _iso(item.start),
                    "rrule": item.rrule,
                    "duration": item.duration,
                    "sites": item.sites,
                },
            )
    return counts


# The columns' lengths (contract_models): what the schema accepts but a column could not hold.
_CUSTOMER_LIMITS = {"name": 256, "working_hours": 256, "notice_lead": 64, "holidays": 16, "timezone": 64}
_CONTACT_LIMITS = {"name": 256, "email": 320, "role": 128}
_APPROVAL_LIMITS = {"family": 64, "version": 256, "approved_by": 256}
_WINDOW_LIMITS = {"name": 256, "rrule": 1024, "duration": 64, "timezone": 64}


def _too_long(where: str, entry: Any, limits: Mapping[str, int]) -> list[str]:
    problems = []
    for key, limit in limits.items():
        value = getattr(entry, key)
        if isinstance(value, str) and len(value) > limit:
            problems.append(f"{where}.{key}: longer than {limit} characters")
        elif isinstance(value, str) and "\x00" in value:
            problems.append(f"{where}.{key}: contains a NUL character")
    return problems


def column_problems(policy: PolicyFile, windows: Sequence[WindowEntry]) -> list[str]:
    """Values the schema accepts that no column can store (too long, NUL), one line each."""
    problems = []
    for cid, entry in policy.customers.items():
        where = f"customers.{cid}"
        if len(cid) > 128 or "\x00" in cid:
            problems.append(f"{where}: a customer id is at most 128 characters, without NUL")
        problems += _too_long(where, entry, _CUSTOMER_LIMITS)
        problems += [
            f"{where}.sites[{i}]: at most 128 characters, without NUL"
            for i, site in enumerate(entry.sites)
            if len(site) > 128 or "\x00" in site
        ]
        for i, contact in enumerate(entry.contacts):
            problems += _too_long(f"{where}.contacts[{i}]", contact, _CONTACT_LIMITS)
        for i, approval in enumerate(entry.approvals):
            problems += _too_long(f"{where}.approvals[{i}]", approval, _APPROVAL_LIMITS)
    for i, window in enumerate(windows):
        problems += _too_long(f"windows: windows[{i}]", window, _WINDOW_LIMITS)
    return problems


async def _add_approval(conn: AsyncConnection, customer_id: str, approval: Approval, *, actor: str) -> int:
    """Insert unless the same approval exists; 1 when inserted."""
    family, version, approved_by = approval.family, approval.version, approval.approved_by
    approved_at, expires = approval.approved_at, approval.expires
    table = cm.APPROVALS
    same = await conn.execute(
        sa.select(table.c.id).where(
            table.c.customer_id == customer_id,
            table.c.family == family,
            table.c.version == version,
            table.c.approved_by == approved_by,
            table.c.approved_at == approved_at,
        )
    )
    if same.first() is not None:
        return 0
    await conn.execute(
        sa.insert(table).values(
            customer_id=customer_id,
            family=family,
            version=version,
            approved_by=approved_by,
            approved_at=approved_at,
            expires=expires.isoformat() if expires else None,
        )
    )
    await audit.append(
        conn,
        "approval",
        actor=actor,
        customer_id=customer_id,
        subject=f"{family} {version}",
        detail={
            "approved_by": approved_by,
            "approved_at": approved_at.isoformat(),
            "expires": expires.isoformat() if expires else None,
        },
    )
    return 1


def check_approval(family: str, version: str) -> list[str]:
    """Problems with an approval request, one line each naming the field."""
    scheme = FAMILY_SCHEME.get(family)
    if scheme is None:
        return [f"family: unknown family {family!r}; known: {', '.join(sorted(FAMILY_SCHEME))}"]
    try:
        parse_version(scheme, version)
    except VersionParseError as err:
        return [f"version: {err.reason}"]
    return []


async def add_approval(
    store: Store, customer_id: str, family: str, version: str, *, approved_by: str, expires: date | None
) -> dict[str, Any]:
    """The customer approves (family, version) now. Raises :class:`DataError` (field named) or
    ``LookupError`` for an unknown customer."""
    problems = check_approval(family, version)
    if problems:
        raise DataError(problems)
    now = datetime.now(UTC)
    async with store.writing() as conn:
        exists = await conn.execute(
            sa.select(cm.CUSTOMERS.c.customer_id).where(cm.CUSTOMERS.c.customer_id == customer_id)
        )
        if exists.first() is None:
            raise LookupError(customer_id)
        await _add_approval(
            conn, customer_id, Approval(family, version, approved_by, now, expires), actor=approved_by
        )
    return {
        "family": family,
        "version": version,
        "approved_by": approved_by,
        "approved_at": now,
        "expires": expires,
    }


async def list_approvals(store: Store, customer_id: str) -> list[dict[str, Any]]:
    table = cm.APPROVALS
    stmt = sa.select(table).where(table.c.customer_id == customer_id).order_by(table.c.id)
    async with store.engine.connect() as conn:
        return [dict(row._mapping) for row in await conn.execute(stmt)]  # noqa: SLF001 - SQLAlchemy API


async def set_scope(
    store: Store, site_id: str, device_id: str, *, in_scope: bool, actor: str, customer_id: str | None
) -> bool:
    """Put a device into or out of the contract scope (an audit entry of kind ``policy``).

    A device no agent has reported yet may be scoped ahead of time; the answer says whether the
    device is known, so a mistyped id is not silently taken for a device taken out of scope."""
    now = datetime.now(UTC)
    table = cm.DEVICE_SCOPE
    devices = DEVICES
    async with store.writing() as conn:
        known = (
            await conn.execute(
                sa.select(devices.c.id).where(devices.c.site_id == site_id, devices.c.device_id == device_id)
            )
        ).first() is not None
        await conn.execute(sa.delete(table).where(table.c.site_id == site_id, table.c.device_id == device_id))
        await conn.execute(
            sa.insert(table).values(
                site_id=site_id, device_id=device_id, in_scope=in_scope, changed_by=actor, changed_at=now
            )
        )
        await audit.append(
            conn,
            "policy",
            actor=actor,
            customer_id=customer_id,
            subject=f"device {site_id}/{device_id}",
            detail={"change": "scope", "in_scope": in_scope},
        )
    return known


async def out_of_scope(store: Store) -> set[tuple[str, str]]:
    """(site, device) of every device taken out of the contract scope (the others are in)."""
    table = cm.DEVICE_SCOPE
    async with store.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(table.c.site_id, table.c.device_id).where(table.c.in_scope.is_(False))
        )
        return {(r.site_id, r.device_id) for r in rows}


async def policy_document(
    store: Store, customer_id: str | None = None
) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """(policy document, windows document, webhooks) as stored, in the files' schema."""
    where_c = [] if customer_id is None else [cm.CUSTOMERS.c.customer_id == customer_id]
    async with store.engine.connect() as conn:
        customers = list(
            await conn.execute(sa.select(cm.CUSTOMERS).where(*where_c).order_by(cm.CUSTOMERS.c.customer_id))
        )
        ids = [c.customer_id for c in customers]

        def of(table: sa.Table) -> sa.Select[Any]:
            return sa.select(table).where(table.c.customer_id.in_(ids)).order_by(*table.primary_key.columns)

        sites = list(await conn.execute(of(cm.CUSTOMER_SITES)))
        contacts = list(await conn.execute(of(cm.CONTACTS)))
        approvals = list(await conn.execute(of(cm.APPROVALS)))
        windows = list(await conn.execute(of(cm.WINDOWS)))
    policy: dict[str, Any] = {"customers": {}}
    webhooks: dict[str, str] = {}
    for c in customers:
        cid = c.customer_id
        policy["customers"][cid] = {
            "name": c.name,
            "timezone": c.timezone,
            "holidays": c.holidays,
            "working_hours": c.working_hours,
            "security_min_cvss": c.security_min_cvss,
            "notice_lead": c.notice_lead,
            "package_host": c.package_host,
            "sites": [s.site_id for s in sites if s.customer_id == cid],
            "contacts": [_contact(k) for k in contacts if k.customer_id == cid],
            "approvals": [_approval(a) for a in approvals if a.customer_id == cid],
        }
        if c.webhook_url:
            webhooks[cid] = c.webhook_url
    window_doc = {"windows": [_window(w) for w in windows]}
    return policy, window_doc, webhooks


def _contact(row: Any) -> dict[str, Any]:
    return {"name": row.name, "email": row.email, "role": row.role}


def _approval(row: Any) -> dict[str, Any]:
    found = {
        "family": row.family,
        "version": row.version,
        "approved_by": row.approved_by,
        "approved_at": row.approved_at.isoformat(),
    }
    return found | ({"expires": row.expires} if row.expires else {})


def _window(row: Any) -> dict[str, Any]:
    found = {
        "customer": row.customer_id,
        "name": row.name,
        "start": row.start,
        "rrule": row.rrule,
        "duration": row.duration,
        "exclude_holidays": row.exclude_holidays,
        "blackout": list(row.blackout),
    }
    if row.sites is not None:
        found["sites"] = row.sites
    if row.timezone:
        found["timezone"] = row.timezone
    return found


async def load_contracts(store: Store, customer_id: str | None = None) -> Contracts:
    """Every stored contract (or one customer's), parsed as the offline planner parses the files."""
    policy, windows, webhooks = await policy_document(store, customer_id)
    customers = parse_policy(policy)
    parsed = parse_windows(windows, customers)
    sites = {site: cid for cid, entry in policy["customers"].items() for site in entry["sites"]}
    return Contracts(customers, parsed, webhooks, sites)


async def set_webhook(store: Store, customer_id: str, url: str | None, *, actor: str) -> bool:
    """Where the customer's signed notices are posted; False for an unknown customer."""
    async with store.writing() as conn:
        result = await conn.execute(
            sa.update(cm.CUSTOMERS).where(cm.CUSTOMERS.c.customer_id == customer_id).values(webhook_url=url)
        )
        if result.rowcount == 0:
            return False
        await audit.append(
            conn,
            "policy",
            actor=actor,
            customer_id=customer_id,
            subject=f"customer {customer_id}",
            detail={"change": "webhook", "webhook_url": url},
        )
    return True
