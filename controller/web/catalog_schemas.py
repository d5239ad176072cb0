"""REST shapes of the advisory catalog: queries in (strict), advisories and findings out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from controller.storage.catalog_store import Severity, severity
from controller.web.schemas import MAX_OFFSET
from firmware_catalog import device_status

FindingStatus = Literal["affected", "fixed", "not_affected", "unknown"]
# A device as a whole (firmware_catalog.DeviceStatus): not_covered when no advisory concerns it.
DeviceFindingStatus = Literal["affected", "unknown", "fixed", "not_affected", "not_covered"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class AdvisoryQuery(_In):
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)


class FindingQuery(_In):
    tenant: str | None = Field(None, min_length=1, max_length=128)
    site: str | None = Field(None, min_length=1, max_length=128)
    device: str | None = Field(None, min_length=1, max_length=128)  # device_id within its site
    advisory: str | None = Field(None, min_length=1, max_length=512)
    severity: Severity | None = None
    kev: bool | None = None
    status: FindingStatus | None = None
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)


class AdvisorySummary(_Out):
    """``Advisory.summary()`` plus the counts of this controller's findings."""

    id: str
    title: str
    publisher: str
    tracking_version: str
    initial_release_date: str
    current_release_date: str
    url: str | None
    cves: list[str]
    cvss: float | None
    severity: Severity
    products: int
    source: str
    kev: bool
    imported_at: datetime
    affected_devices: int  # devices with status affected
    devices: int  # devices it concerns, any status


class FindingOut(_Out):
    site_id: str
    device_id: str
    device_pk: int
    tenant: str
    advisory_id: str
    # What was matched: "firmware", or a software component (teams_app, …) and its version.
    component: str = "firmware"
    version: str | None = None
    cves: list[str]
    status: FindingStatus
    first_fixed: str | None
    kev: bool
    kev_due_date: str | None
    kev_ransomware: bool
    cvss: float | None
    severity: Severity
    reason: str | None
    products: list[str]
    fix_url: str | None
    updated_at: datetime


class ProductOut(_Out):
    product_id: str
    name: str
    vendor: str
    product: str
    version: str | None
    version_range: str | None


class AdvisoryDetail(AdvisorySummary):
    kev_cves: list[str]
    product_tree: list[ProductOut]  # the advisory's products (``products`` is their number)
    findings: list[FindingOut]


class _Page(_Out):
    total: int
    limit: int
    offset: int
    next_offset: int | None

    @classmethod
    def of(cls, items: Sequence[_Out], total: int, limit: int, offset: int) -> Self:
        following = offset + len(items)
        return cls(
            items=list(items),
            total=total,
            limit=limit,
            offset=offset,
            next_offset=following if following < total else None,
        )


class AdvisoryPage(_Page):
    items: list[AdvisorySummary]


class FindingPage(_Page):
    items: list[FindingOut]


class RecommendationOut(_Out):
    current: str
    target: str | None
    reason: str | None
    advisories: list[str]
    match_problem: str | None
    updated_at: datetime


class DeviceFindings(_Out):
    id: int
    tenant: str
    site_id: str
    device_id: str
    vendor: str
    model: str
    firmware_version: str | None
    # unknown until the device was matched, or when it cannot be matched (see recommendation.match_problem);
    # not_covered when no advisory of the catalog concerns the device's product
    status: DeviceFindingStatus
    counts: dict[str, int]  # findings by status
    kev: int  # findings with status affected whose CVEs are in KEV
    highest_severity: Severity | None  # of the affected findings
    recommendation: RecommendationOut | None
    findings: list[FindingOut]

    @classmethod
    def of(cls, device: dict[str, Any], rows: list[dict[str, Any]], rec: dict[str, Any] | None) -> Self:
        counts = dict.fromkeys(("affected", "unknown", "fixed", "not_affected"), 0)
        for row in rows:
            counts[row["status"]] += 1
        affected = [row for row in rows if row["status"] == "affected"]
        status: DeviceFindingStatus = device_status(row["status"] for row in rows)
        if rec is None or rec["match_problem"] is not None:
            status = "unknown"
        scores = [row["cvss"] for row in affected if row["cvss"] is not None]
        return cls(
            id=device["id"],
            tenant=device["tenant"],
            site_id=device["site_id"],
            device_id=device["device_id"],
            vendor=device["vendor"],
            model=device["model"],
            firmware_version=device["firmware_version"],
            status=status,
            counts=counts,
            kev=sum(1 for row in affected if row["kev"]),
            highest_severity=severity(max(scores)) if scores else ("unscored" if affected else None),
            recommendation=RecommendationOut.model_validate(rec) if rec is not None else None,
            findings=[FindingOut.model_validate(row) for row in rows],
        )


def summarize(row: dict[str, Any]) -> AdvisorySummary:
    return AdvisorySummary.model_validate(
        {**row, "cvss": row["max_cvss"], "severity": severity(row["max_cvss"])}
    )
