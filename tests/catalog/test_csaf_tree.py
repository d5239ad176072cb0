"""Product tree features beyond branches: full_product_names with CPE, relationships, groups, CVSS v4."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from firmware_catalog import Catalog, Device, DocumentError, Matcher, parse_advisory
from tests.catalog.conftest import load_csaf


def _base() -> dict[str, Any]:
    doc = load_csaf("cisco-sa-20161102-tp")
    doc["document"]["tracking"]["id"] = "test-sa-tree"
    doc["product_tree"] = {
        "branches": [
            {
                "category": "vendor",
                "name": "Cisco",
                "branches": [
                    {
                        "category": "product_name",
                        "name": "Cisco Session Initiation Protocol (SIP) Software",
                        "branches": [
                            {
                                "category": "product_version_range",
                                "name": "vers:cisco-phone/<14.2(1)",
                                "product": {"name": "SIP Software < 14.2(1)", "product_id": "SIP-OLD"},
                            },
                            {
                                "category": "product_version",
                                "name": "14.2(1)",
                                "product": {"name": "SIP Software 14.2(1)", "product_id": "SIP-FIX"},
                            },
                        ],
                    },
                    {
                        "category": "product_name",
                        "name": "Cisco IP Phone 8851",
                        "product": {"name": "Cisco IP Phone 8851", "product_id": "HW-8851"},
                    },
                    {
                        "category": "product_name",
                        "name": "Cisco IP Phone 7841",
                        "product": {"name": "Cisco IP Phone 7841", "product_id": "HW-7841"},
                    },
                ],
            }
        ],
        "full_product_names": [
            {
                "name": "Cisco RoomOS 11.9.2.4",
                "product_id": "ROOMOS-11924",
                "product_identification_helper": {"cpe": "cpe:2.3:o:cisco:roomos:11.9.2.4:*:*:*:*:*:*:*"},
            }
        ],
        "relationships": [
            {
                "category": "installed_on",
                "product_reference": "SIP-OLD",
                "relates_to_product_reference": "HW-8851",
                "full_product_name": {"name": "SIP < 14.2(1) on 8851", "product_id": "REL-OLD-8851"},
            },
            {
                "category": "installed_on",
                "product_reference": "SIP-FIX",
                "relates_to_product_reference": "HW-8851",
                "full_product_name": {"name": "SIP 14.2(1) on 8851", "product_id": "REL-FIX-8851"},
            },
        ],
        "product_groups": [{"group_id": "G-8851", "product_ids": ["REL-OLD-8851", "REL-FIX-8851"]}],
    }
    doc["vulnerabilities"] = [
        {
            "cve": "CVE-2099-0001",
            "product_status": {
                "known_affected": ["REL-OLD-8851", "ROOMOS-11924"],
                "first_fixed": ["REL-FIX-8851"],
            },
            "remediations": [
                {
                    "category": "vendor_fix",
                    "details": "Upgrade to 14.2(1)",
                    "group_ids": ["G-8851"],
                    "url": "https://example.invalid/fix",
                }
            ],
            "scores": [
                {
                    "products": ["REL-OLD-8851"],
                    "cvss_v4": {
                        "version": "4.0",
                        "baseScore": 8.7,
                        "baseSeverity": "HIGH",
                        "vectorString": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:N/VA:N/SC:N/SI:N/SA:N",
                    },
                }
            ],
            "threats": [
                {"category": "exploit_status", "details": "PoC public", "product_ids": ["REL-OLD-8851"]}
            ],
        }
    ]
    return doc


def test_relationships_cpe_groups_and_cvss_v4() -> None:
    advisory = parse_advisory(_base())
    rel = advisory.products["REL-OLD-8851"]
    assert rel.key.families == frozenset({"sip"})
    assert rel.key.models == frozenset({"8851"})
    assert rel.version_range is not None
    roomos = advisory.products["ROOMOS-11924"]
    assert (roomos.key.families, roomos.version) == (frozenset({"roomos"}), "11.9.2.4")
    (vuln,) = advisory.vulnerabilities
    assert vuln.remediations[0].product_ids == ("REL-OLD-8851", "REL-FIX-8851")
    assert vuln.scores[0].cvss_version == "4.0"
    assert vuln.threats[0].category == "exploit_status"

    catalog = Catalog()
    catalog.add(_base())
    matcher = Matcher(catalog)
    old = matcher.match_device(Device("a", "Cisco", "CP-8851", "sip88xx.12-8-1-0001-455"))
    assert [(f.status, f.first_fixed, f.cvss, f.fix_url) for f in old] == [
        ("affected", "14.2(1)", 8.7, "https://example.invalid/fix")
    ]
    new = matcher.match_device(Device("b", "Cisco", "CP-8851", "sip88xx.14-3-1-0001-12"))
    assert [f.status for f in new] == ["fixed"]  # first_fixed: later releases are fixed too
    assert (
        matcher.match_device(Device("c", "Cisco", "CP-7841", "sip78xx.12-8-1-1")) == []
    )  # not in a relationship
    room = matcher.match_device(Device("d", "Cisco", "Cisco Desk Pro", "RoomOS 11.9.2.4 aaaaaaa1"))
    assert [f.status for f in room] == ["affected"]


def test_relationship_to_an_undefined_product_is_rejected() -> None:
    doc = _base()
    doc["product_tree"]["relationships"][0]["relates_to_product_reference"] = "NOPE"
    with pytest.raises(DocumentError) as caught:
        parse_advisory(doc)
    assert caught.value.path == "product_tree.relationships[0].relates_to_product_reference"


def test_cvss_v4_score_out_of_range_is_rejected() -> None:
    doc = copy.deepcopy(_base())
    doc["vulnerabilities"][0]["scores"][0]["cvss_v4"]["baseScore"] = 11
    with pytest.raises(DocumentError) as caught:
        parse_advisory(doc)
    assert caught.value.path == "vulnerabilities[0].scores[0].cvss_v4.baseScore"
