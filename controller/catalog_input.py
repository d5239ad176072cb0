"""What the catalog's import path needs around a CSAF document, and the matching metrics.

Decoding, validating and parsing run in a thread (seconds for a large document), before the
matching lock is taken; a NUL anywhere in a document is refused here, naming where, because
PostgreSQL text cannot hold it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge, Histogram

from controller.storage.catalog_store import document_text
from firmware_catalog import DocumentError, parse_advisory
from firmware_catalog.csaf import decode_document

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from firmware_catalog import Advisory


class CatalogMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.imports = Counter(
            "fernwart_catalog_imports_total",
            "CSAF documents received by the API, by result (added, replaced, unchanged, rejected)",
            ["result"],
            registry=registry,
        )
        for result in ("added", "replaced", "unchanged", "rejected"):
            self.imports.labels(result=result)
        self.kev_imports = Counter(
            "fernwart_catalog_kev_imports_total",
            "KEV catalogs received by the API, by result (accepted, rejected)",
            ["result"],
            registry=registry,
        )
        for result in ("accepted", "rejected"):
            self.kev_imports.labels(result=result)
        self.advisories = Gauge(
            "fernwart_catalog_advisories", "Advisories in this instance's catalog", registry=registry
        )
        self.recomputed = Counter(
            "fernwart_findings_recomputed_devices_total",
            "Devices whose findings were recomputed and stored, by cause (start, device, advisory, kev)",
            ["cause"],
            registry=registry,
        )
        for cause in ("start", "device", "advisory", "kev"):
            self.recomputed.labels(cause=cause)
        self.failures = Counter(
            "fernwart_findings_store_failures_total",
            "Recomputations whose findings could not be stored (retried)",
            registry=registry,
        )
        self.seconds = Histogram(
            "fernwart_findings_recompute_seconds",
            "Duration of one recompute and its write",
            ["cause"],
            registry=registry,
        )


def parse_advisory_body(body: bytes | str, source: str) -> tuple[Advisory, str]:
    """Decode, validate and parse one CSAF document (in a thread); also its compact JSON text to store."""
    data = decode_document(body, source)
    parsed = parse_advisory(data, source)
    refuse_nul(data, parsed.id)
    return parsed, document_text(parsed.document)


def same_document(old: Advisory, new: Advisory) -> bool:
    return old.document == new.document


def refuse_nul(document: Any, name: str) -> None:
    """PostgreSQL text cannot hold NUL; a document with one is rejected here, naming where."""
    stack: list[tuple[str, Any]] = [("$", document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                raise DocumentError(name, path, "NUL character (\\u0000) in a string")
        elif isinstance(value, dict):
            for key, item in value.items():
                if "\x00" in key:
                    raise DocumentError(name, path, "NUL character (\\u0000) in a key")
                stack.append((key if path == "$" else f"{path}.{key}", item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{index}]", item) for index, item in enumerate(value))
