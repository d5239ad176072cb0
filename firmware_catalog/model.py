"""Plain data: advisories as the catalog keeps them, devices, findings. All serialise with ``to_dict``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from firmware_catalog.products import ProductKey
from firmware_catalog.vers import VersRange

Status = Literal["affected", "fixed", "not_affected", "unknown"]
# A device as a whole: its most urgent finding's status, or ``not_covered`` when no advisory of
# the catalog concerns its product at all (then nothing is known, least of all "not affected").
DeviceStatus = Literal["affected", "unknown", "fixed", "not_affected", "not_covered"]
DEVICE_STATUS_ORDER: tuple[DeviceStatus, ...] = ("affected", "unknown", "fixed", "not_affected")

AFFECTED_STATUSES = frozenset({"known_affected", "first_affected", "last_affected"})
FIXED_STATUSES = frozenset({"fixed", "first_fixed"})
PRODUCT_STATUSES = (
    "first_affected",
    "first_fixed",
    "fixed",
    "known_affected",
    "known_not_affected",
    "last_affected",
    "recommended",
    "under_investigation",
)


@dataclass(frozen=True, slots=True)
class ProductEntry:
    """One product id of a document's product tree, normalized."""

    product_id: str
    name: str  # full product name as written
    product: str  # product name without version, as written
    vendor: str  # as written
    key: ProductKey
    version: str | None = None  # product_version
    version_range: VersRange | None = None  # product_version_range in vers: notation
    range_text: str | None = None  # a product_version_range that is not vers: (cannot be evaluated)
    cpe: str | None = None
    purl: str | None = None


@dataclass(frozen=True, slots=True)
class Score:
    cvss_version: str  # "2.0", "3.0", "3.1", "4.0"
    base_score: float
    vector: str
    severity: str | None
    product_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Remediation:
    category: str  # vendor_fix, workaround, mitigation, none_available, no_fix_planned
    details: str
    url: str | None
    product_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Threat:
    category: str  # exploit_status, impact, target_set
    details: str
    product_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Vulnerability:
    cve: str | None
    title: str | None
    product_status: Mapping[str, tuple[str, ...]]  # CSAF status category → product ids
    remediations: tuple[Remediation, ...] = ()
    scores: tuple[Score, ...] = ()
    threats: tuple[Threat, ...] = ()


@dataclass(frozen=True, slots=True)
class Advisory:
    id: str  # document.tracking.id
    title: str
    publisher: str
    tracking_version: str
    initial_release_date: str
    current_release_date: str
    url: str | None  # the "self" reference
    products: Mapping[str, ProductEntry]
    vulnerabilities: tuple[Vulnerability, ...]
    source: str = ""
    document: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def cves(self) -> tuple[str, ...]:
        return tuple(v.cve for v in self.vulnerabilities if v.cve)

    @property
    def max_cvss(self) -> float | None:
        scores = [s.base_score for v in self.vulnerabilities for s in v.scores]
        return max(scores) if scores else None

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (without the product tree and the raw document)."""
        return {
            "id": self.id,
            "title": self.title,
            "publisher": self.publisher,
            "tracking_version": self.tracking_version,
            "initial_release_date": self.initial_release_date,
            "current_release_date": self.current_release_date,
            "url": self.url,
            "cves": list(self.cves),
            "cvss": self.max_cvss,
            "products": len(self.products),
            "source": self.source,
        }


def device_status(statuses: Iterable[str]) -> DeviceStatus:
    """The status of a device with findings of ``statuses``: affected > unknown > fixed >
    not_affected; ``not_covered`` without findings."""
    present = set(statuses)
    return next((status for status in DEVICE_STATUS_ORDER if status in present), "not_covered")


@dataclass(frozen=True, slots=True)
class Device:
    """A device as it reports itself (the offline inventory format)."""

    device_id: str
    vendor: str
    product: str
    software_version: str
    # What the driver reported (firmware_catalog.vocabulary): used before the product-name rules.
    family: str | None = None
    scheme: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Device:
        return cls(
            device_id=str(data["device_id"]),
            vendor=str(data.get("vendor") or ""),
            product=str(data.get("product") or ""),
            software_version=str(data.get("software_version") or ""),
            family=str(data["family"]) if data.get("family") else None,
            scheme=str(data["scheme"]) if data.get("scheme") else None,
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one advisory says about one (product, firmware) combination; shared by identical devices."""

    advisory_id: str
    cves: tuple[str, ...]
    status: Status
    first_fixed: str | None
    kev: bool
    cvss: float | None
    reason: str | None = None
    products: tuple[str, ...] = ()  # advisory product names that concern the device
    kev_due_date: str | None = None
    kev_ransomware: bool = False
    fix_url: str | None = None  # the vendor_fix remediation URL for the device's product


@dataclass(frozen=True, slots=True)
class Finding:
    device_id: str
    advisory_id: str
    cves: tuple[str, ...]
    status: Status
    first_fixed: str | None
    kev: bool
    cvss: float | None
    reason: str | None = None
    products: tuple[str, ...] = ()
    kev_due_date: str | None = None
    kev_ransomware: bool = False
    fix_url: str | None = None

    @classmethod
    def of(cls, device_id: str, verdict: Verdict) -> Finding:
        return cls(device_id, *(getattr(verdict, name) for name in Verdict.__slots__))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cves"] = list(self.cves)
        data["products"] = list(self.products)
        return data


@dataclass(frozen=True, slots=True)
class Recommendation:
    """The lowest version that fixes every advisory the device is affected by, or why there is none."""

    device_id: str
    current: str
    target: str | None
    reason: str | None
    advisories: tuple[str, ...]  # the affected advisories the target fixes

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["advisories"] = list(self.advisories)
        return data
