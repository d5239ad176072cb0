"""The library API the controller uses: incremental catalog, per-device re-match, recommendations."""

from __future__ import annotations

import copy
from typing import Any

from firmware_catalog import Catalog, Device, Matcher, parse_kev
from tests.catalog.conftest import KEV_FILE

VOIP = "cisco-sa-voip-phones-rce-dos-rB6EeRXs"
CSRF = "cisco-sa-20190320-ip-phone-csrf"
PHONE = Device("p1", "Cisco", "CP-8845", "sip88xx.12-5-1-11")


def _catalog(docs: dict[str, dict[str, Any]], *stems: str) -> Catalog:
    catalog = Catalog()
    for stem in stems or tuple(docs):
        catalog.add(docs[stem], f"{stem}.json")
    return catalog


def _status(matcher: Matcher, device_id: str) -> dict[str, str]:
    return {f.advisory_id: f.status for f in matcher.findings(device_id)}


def test_device_version_change_rematches_only_that_device(real_documents: dict[str, dict[str, Any]]) -> None:
    matcher = Matcher(_catalog(real_documents, VOIP, CSRF))
    other = Device("p2", "Cisco", "CP-8851", "sip88xx.11-5-1-18")
    matcher.set_devices([PHONE, other])
    assert _status(matcher, "p1") == {VOIP: "fixed", CSRF: "affected"}
    findings = matcher.set_device(Device("p1", "Cisco", "CP-8845", "sip88xx.12-5-1SR1-4"))
    assert {f.advisory_id: f.status for f in findings} == {VOIP: "fixed", CSRF: "fixed"}
    assert _status(matcher, "p2") == {VOIP: "affected", CSRF: "affected"}
    matcher.remove_device("p2")
    assert matcher.findings("p2") == []


def test_catalog_changes_reach_stored_devices(real_documents: dict[str, dict[str, Any]]) -> None:
    catalog = _catalog(real_documents, VOIP)
    matcher = Matcher(catalog)
    matcher.set_devices([PHONE])
    assert set(_status(matcher, "p1")) == {VOIP}
    _advisory, change = catalog.add(real_documents[CSRF])
    assert change == "added"
    assert _status(matcher, "p1")[CSRF] == "affected"
    assert catalog.add(real_documents[CSRF])[1] == "unchanged"
    revised = copy.deepcopy(real_documents[CSRF])
    revised["vulnerabilities"][0]["product_status"]["known_affected"].remove("CSAFPID-0004")  # 8845 range
    revised["document"]["tracking"]["version"] = "1.2.0"
    assert catalog.add(revised)[1] == "replaced"
    assert _status(matcher, "p1")[CSRF] == "unknown"  # 12.5(1) is below the fix but no longer stated affected
    assert catalog.remove(CSRF)
    assert set(_status(matcher, "p1")) == {VOIP}
    assert [d for d, _ in matcher.devices_affected_by(VOIP)] == ["p1"]


def test_kev_flags_and_prioritises(real_documents: dict[str, dict[str, Any]]) -> None:
    catalog = _catalog(real_documents)
    matcher = Matcher(catalog)
    matcher.set_devices([Device("p3", "Cisco", "CP-8851", "sip88xx.11-5-1-18")])
    assert not any(f.kev for f in matcher.findings("p3"))
    catalog.set_kev(parse_kev(KEV_FILE.read_bytes()))
    findings = matcher.findings("p3")
    assert findings[0].advisory_id == VOIP  # KEV first
    assert findings[0].kev
    assert findings[0].kev_due_date == "2022-05-03"
    assert findings[0].cvss == 9.8


def test_recommended_target_fixes_every_applicable_advisory(
    real_documents: dict[str, dict[str, Any]],
) -> None:
    matcher = Matcher(_catalog(real_documents, VOIP, CSRF))
    rec = matcher.recommend(Device("p4", "Cisco", "CP-8851", "sip88xx.11-5-1-18"))
    assert rec.target == "12.5(1)SR1"  # 11.7(1) fixes VOIP only; 12.5(1)SR1 fixes both
    assert set(rec.advisories) == {VOIP, CSRF}
    assert matcher.recommend(Device("p5", "Cisco", "CP-8851", "sip88xx.12-5-1SR1-1")).target is None
    unknown = matcher.recommend(Device("p6", "Cisco", "CP-8851", "sip88xx.current"))
    assert unknown.target is None


def test_unmappable_device_is_unknown_for_the_vendor(real_documents: dict[str, dict[str, Any]]) -> None:
    matcher = Matcher(_catalog(real_documents, VOIP))
    findings = matcher.match_device(Device("x", "Cisco", "Mystery Box", "1.0"))
    assert [f.status for f in findings] == ["unknown"]
    assert findings[0].reason is not None
    assert "cannot be mapped" in findings[0].reason
    assert matcher.match_device(Device("y", "Acme", "Thing", "1.0")) == []


def test_findings_serialise(real_documents: dict[str, dict[str, Any]]) -> None:
    matcher = Matcher(_catalog(real_documents, VOIP))
    (finding,) = matcher.match_device(PHONE)
    data = finding.to_dict()
    assert data["device_id"] == "p1"
    assert data["cves"] == ["CVE-2020-3161"]
    assert data["first_fixed"] == "11.7(1)"


def test_many_firmware_changes_do_not_grow_without_bound(real_documents: dict[str, dict[str, Any]]) -> None:
    matcher = Matcher(_catalog(real_documents, VOIP))
    matcher.set_devices([PHONE])
    for build in range(45_000):
        matcher.set_device(Device("p1", "Cisco", "CP-8845", f"sip88xx.12-5-1-{build}"))
    assert len(matcher._profiles) <= 40_001
    assert _status(matcher, "p1") == {VOIP: "fixed"}
