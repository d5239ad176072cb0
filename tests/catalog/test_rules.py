"""The rules of advisories.md on documents the matcher has not seen (general rules, not tables)."""

from __future__ import annotations

from typing import Any

import pytest

from firmware_catalog import Catalog, Device, Matcher
from tests.catalog.conftest import load_csaf


def _doc(branches: list[dict[str, Any]], status: dict[str, list[str]]) -> dict[str, Any]:
    doc = load_csaf("cisco-sa-20161102-tp")
    doc["document"]["tracking"]["id"] = "rules-sa"
    doc["product_tree"] = {"branches": [{"category": "vendor", "name": "Cisco", "branches": branches}]}
    doc["vulnerabilities"] = [{"cve": "CVE-2099-1111", "product_status": status}]
    return doc


def _leaf(category: str, name: str, pid: str) -> dict[str, Any]:
    return {"category": category, "name": name, "product": {"name": f"x {name}", "product_id": pid}}


CE = "Cisco TelePresence Collaboration Endpoint Software"


def _match(doc: dict[str, Any], vendor: str, product: str, version: str) -> tuple[str, str | None]:
    catalog = Catalog()
    catalog.add(doc)
    (finding,) = Matcher(catalog).match_device(Device("d", vendor, product, version))
    return finding.status, finding.first_fixed


@pytest.mark.parametrize(
    ("version", "status"),
    [
        ("ce9.7.2.abcdef12", "affected"),
        ("ce9.7.3", "unknown"),
        ("ce9.8.0", "unknown"),
        ("ce garbage", "unknown"),
    ],
)
def test_a_range_bound_is_not_a_fixed_release(version: str, status: str) -> None:
    doc = _doc(
        [
            {
                "category": "product_name",
                "name": CE,
                "branches": [_leaf("product_version_range", "vers:generic/<9.7.3", "A")],
            }
        ],
        {"known_affected": ["A"]},
    )
    assert _match(doc, "Cisco", "Cisco TelePresence SX80", version) == (status, None)


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("ce9.7.2", ("affected", "9.7.3")),
        ("ce9.7.3", ("fixed", "9.7.3")),
        ("ce9.15.1", ("fixed", "9.7.3")),  # one first fixed release: every later release is fixed
    ],
)
def test_range_plus_its_bound_as_fixed_means_first_fixed(version: str, expected: tuple[str, str]) -> None:
    doc = _doc(
        [
            {
                "category": "product_name",
                "name": CE,
                "branches": [
                    _leaf("product_version_range", "vers:generic/<9.7.3", "A"),
                    _leaf("product_version", "9.7.3", "F"),
                ],
            }
        ],
        {"known_affected": ["A"], "fixed": ["F"]},
    )
    assert _match(doc, "Cisco", "Cisco Webex Room 55", version) == expected


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("ce9.1.1", ("affected", "CE9.2.0")),
        ("ce9.2.0", ("fixed", "CE9.2.0")),
        ("ce9.3.0", ("unknown", "CE9.2.0")),
    ],
)
def test_a_fixed_version_next_to_a_list_fixes_only_itself(version: str, expected: tuple[str, str]) -> None:
    doc = _doc(
        [
            {
                "category": "product_name",
                "name": CE,
                "branches": [
                    _leaf("product_version", "CE9.1.1", "A1"),
                    _leaf("product_version", "CE9.2.0", "F"),
                ],
            }
        ],
        {"known_affected": ["A1"], "fixed": ["F"]},
    )
    assert _match(doc, "Cisco", "Cisco TelePresence SX80", version) == expected


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("ce9.12.1", ("affected", "9.12.3")),
        ("ce9.12.5", ("fixed", "9.12.3")),
        ("ce9.13.0", ("affected", "9.13.2")),
        ("ce9.14.0", ("unknown", None)),  # no fixed release in this train
    ],
)
def test_first_fixed_per_release_train(version: str, expected: tuple[str, str | None]) -> None:
    doc = _doc(
        [
            {
                "category": "product_name",
                "name": CE,
                "branches": [
                    _leaf("product_version_range", "vers:generic/>=9.12.0|<9.12.3", "A1"),
                    _leaf("product_version_range", "vers:generic/>=9.13.0|<9.13.2", "A2"),
                    _leaf("product_version", "9.12.3", "F1"),
                    _leaf("product_version", "9.13.2", "F2"),
                ],
            }
        ],
        {"known_affected": ["A1", "A2"], "first_fixed": ["F1", "F2"]},
    )
    assert _match(doc, "Cisco", "Cisco TelePresence SX80", version) == expected


def test_under_investigation_is_unknown_with_reason() -> None:
    doc = _doc(
        [
            {
                "category": "product_name",
                "name": "Cisco IP Phone 8851",
                "product": {"name": "Cisco IP Phone 8851", "product_id": "P"},
            }
        ],
        {"under_investigation": ["P"]},
    )
    catalog = Catalog()
    catalog.add(doc)
    (finding,) = Matcher(catalog).match_device(Device("d", "Cisco", "CP-8851", "sip88xx.14-2-1-1"))
    assert finding.status == "unknown"
    assert finding.reason is not None
    assert "under investigation" in finding.reason
