"""CISA Known Exploited Vulnerabilities catalog (JSON feed, schema v1)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from firmware_catalog.csaf import check_limits, decode_document
from firmware_catalog.errors import DocumentError

_CVE = re.compile(r"^CVE-\d{4}-\d{4,}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True, slots=True)
class KevEntry:
    cve: str
    date_added: str
    due_date: str | None
    ransomware: bool  # knownRansomwareCampaignUse == "Known"
    vendor: str = ""
    product: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True)
class KevCatalog:
    version: str = ""
    entries: dict[str, KevEntry] = field(default_factory=dict)
    errors: tuple[DocumentError, ...] = ()  # entries that were skipped, one error each

    def get(self, cve: str | None) -> KevEntry | None:
        return self.entries.get(cve) if cve else None

    def __contains__(self, cve: object) -> bool:
        return cve in self.entries

    def __len__(self) -> int:
        return len(self.entries)


def parse_kev(data: Any, source: str = "known_exploited_vulnerabilities.json") -> KevCatalog:
    """Parse the KEV feed (bytes, str or already-decoded JSON).

    A wrong top level raises :class:`DocumentError`; a bad entry is skipped and listed in
    ``errors`` (path ``vulnerabilities[i].field``), the rest is kept.
    """
    document = decode_document(data, source) if isinstance(data, (bytes, str)) else data
    if not isinstance(document, dict):
        raise DocumentError(source, "$", "expected an object")
    check_limits(document, source)
    vulns = document.get("vulnerabilities")
    if not isinstance(vulns, list):
        raise DocumentError(source, "vulnerabilities", "expected an array")
    entries: dict[str, KevEntry] = {}
    errors: list[DocumentError] = []
    for index, item in enumerate(vulns):
        path = f"vulnerabilities[{index}]"
        if not isinstance(item, dict):
            errors.append(DocumentError(source, path, "expected an object"))
            continue
        cve = item.get("cveID")
        if not isinstance(cve, str) or not _CVE.match(cve):
            errors.append(DocumentError(source, f"{path}.cveID", f"expected a CVE id, got {str(cve)[:40]!r}"))
            continue
        added = item.get("dateAdded")
        if not isinstance(added, str) or not _DATE.match(added):
            errors.append(DocumentError(source, f"{path}.dateAdded", "expected a date YYYY-MM-DD"))
            continue
        due = item.get("dueDate")
        ransomware = item.get("knownRansomwareCampaignUse")
        entries[cve] = KevEntry(
            cve=cve,
            date_added=added,
            due_date=due if isinstance(due, str) and _DATE.match(due) else None,
            ransomware=ransomware == "Known",
            vendor=str(item.get("vendorProject", ""))[:200],
            product=str(item.get("product", ""))[:200],
            name=str(item.get("vulnerabilityName", ""))[:500],
        )
    version = document.get("catalogVersion")
    return KevCatalog(version if isinstance(version, str) else "", entries, tuple(errors))
