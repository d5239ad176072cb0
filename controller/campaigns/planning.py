"""Plan a stored campaign: the controller's devices, contracts and catalog through the offline planner.

The planner is :class:`controller.scheduler.Planner`, unchanged: what ``fernwart campaign plan``
computes from files, this computes from the database. Devices come from the inventory of the
campaign's customer (its tenant), narrowed by the campaign's selection (sites, models, devices,
findings: an advisory id or CVE that affects the device); the contract scope from ``device_scope``;
targets from the campaign (per family) or else the catalog's rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from controller.match_keys import as_device, planned_software
from controller.scheduler import InventoryDevice, Planner
from controller.storage.catalog_store import DeviceRecord
from controller.storage.contracts import Contracts
from firmware_catalog import Catalog, Device, Matcher, ReleaseCatalog, TargetSelector


@dataclass(frozen=True, slots=True)
class PlannedDevice:
    """One device's line of the plan, with where it is (the planner knows the device by its pk)."""

    record: DeviceRecord
    job: dict[str, Any]  # PlannedJob.to_dict() plus site_id, device_id, from_version, datetimes as such


def select(
    records: Sequence[DeviceRecord], selection: Mapping[str, Sequence[str]], matcher: Matcher
) -> list[DeviceRecord]:
    """The devices the selection names (every given list narrows; an empty list selects all)."""
    sites = set(selection.get("sites", ()))
    models = {m.lower() for m in selection.get("models", ())}
    devices = set(selection.get("devices", ()))
    findings = set(selection.get("findings", ()))
    chosen = []
    for record in records:
        if sites and record.site_id not in sites:
            continue
        if models and record.model.lower() not in models:
            continue
        if devices and f"{record.site_id}/{record.device_id}" not in devices:
            continue
        if findings and not any(
            f.status == "affected" and (f.advisory_id in findings or findings.intersection(f.cves))
            for f in matcher.findings(str(record.pk))
        ):
            continue
        chosen.append(record)
    return chosen


def plan_devices(
    campaign: Mapping[str, Any],
    contracts: Contracts,
    records: Sequence[DeviceRecord],
    *,
    out_of_scope: set[tuple[str, str]],
    catalog: Catalog,
    now: datetime,
) -> list[PlannedDevice]:
    """The plan of ``campaign`` (a stored row) at ``now``. Pure."""
    customer = campaign["customer_id"]
    matcher = Matcher(catalog)
    mine = sorted((r for r in records if r.tenant == customer), key=lambda r: (r.site_id, r.device_id))
    matcher.set_devices(_device(r) for r in mine)
    chosen = select(mine, campaign.get("selection") or {}, matcher)
    inventory = [
        _inventory(r, customer, in_scope=(r.site_id, r.device_id) not in out_of_scope) for r in chosen
    ]
    selector = TargetSelector(matcher, ReleaseCatalog.seed(), campaign.get("targets") or {})
    planner = Planner(
        contracts.windows,
        contracts.customers,
        selector,
        now=now,
        canary=int(campaign["canary"]),
        package_host=contracts.customers.package_host,
    )
    planned = []
    for record, job in zip(chosen, planner.plan(inventory), strict=True):
        row = job.to_dict() | {
            "site_id": record.site_id,
            "device_id": record.device_id,
            "device_pk": record.pk,
            "from_version": _software(record)[2] or None,
            "start": job.start,
            "end": job.end,
            "notice_at": job.notice_at,
        }
        planned.append(PlannedDevice(record, row))
    return planned


def _software(record: DeviceRecord) -> tuple[str, str, str, str | None]:
    return planned_software(
        record.firmware_version, record.vendor, record.model, record.family, record.components
    )


def _inventory(record: DeviceRecord, customer: str, *, in_scope: bool) -> InventoryDevice:
    vendor, product, version, family = _software(record)
    return InventoryDevice(
        str(record.pk), vendor, product, version, customer, record.site_id, in_scope=in_scope, family=family
    )


def _device(record: DeviceRecord) -> Device:
    return as_device(record)  # with the reported family, as the findings' matcher has it
