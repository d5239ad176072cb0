"""Advisory catalog: CSAF 2.0 and CISA KEV in, vendor version schemes, findings per device.

A pure library: it imports nothing of ours and does no work at import. I/O happens only in
explicit calls (``Catalog.import_path``, ``provider.fetch_provider``).
"""

from firmware_catalog.catalog import Catalog, ImportReport
from firmware_catalog.csaf import parse_advisory
from firmware_catalog.errors import CatalogError, DocumentError, FetchError, RangeError, VersionParseError
from firmware_catalog.kev import KevCatalog, KevEntry, parse_kev
from firmware_catalog.matcher import Matcher, match_problem
from firmware_catalog.model import (
    Advisory,
    Device,
    DeviceStatus,
    Finding,
    ProductEntry,
    Recommendation,
    Status,
    Verdict,
    device_status,
)
from firmware_catalog.products import DeviceIdentity, ProductKey, identify_device, normalize_product
from firmware_catalog.releases import Release, ReleaseCatalog
from firmware_catalog.targets import TargetChoice, TargetSelector
from firmware_catalog.vers import VersRange, parse_vers
from firmware_catalog.versions import SCHEMES, Version, parse_version

__all__ = [
    "SCHEMES",
    "Advisory",
    "Catalog",
    "CatalogError",
    "Device",
    "DeviceIdentity",
    "DeviceStatus",
    "DocumentError",
    "FetchError",
    "Finding",
    "ImportReport",
    "KevCatalog",
    "KevEntry",
    "Matcher",
    "ProductEntry",
    "ProductKey",
    "RangeError",
    "Recommendation",
    "Release",
    "ReleaseCatalog",
    "Status",
    "TargetChoice",
    "TargetSelector",
    "Verdict",
    "VersRange",
    "Version",
    "VersionParseError",
    "device_status",
    "identify_device",
    "match_problem",
    "normalize_product",
    "parse_advisory",
    "parse_kev",
    "parse_vers",
    "parse_version",
]
