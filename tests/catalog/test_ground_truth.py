"""Every row of shared/reference/advisories.md, reproduced by ``fernwart catalog match``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fernwart_cli.main import main
from firmware_catalog import device_status
from tests.catalog.conftest import CATALOG_DATA, CSAF_DIR, KEV_FILE, REPO

# advisories.md, "Not asserted": cisco-sa-20161102-tp with RoomOS and CE 9.x devices.
NOT_ASSERTED = {(f"fw-d0{i}", "cisco-sa-20161102-tp") for i in range(1, 10)}


def _run(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    argv = ["catalog", "match", "--advisories", str(CSAF_DIR), "--kev", str(KEV_FILE)]
    argv += ["--inventory", str(CATALOG_DATA / "inventory.json"), "--json"]
    assert main(argv) == 0
    rows: list[dict[str, object]] = json.loads(capsys.readouterr().out)
    return rows


def test_match_reproduces_every_expected_row() -> None:
    argv = [sys.executable, "-m", "fernwart_cli.main", "catalog", "match", "--advisories", str(CSAF_DIR)]
    argv += ["--kev", str(KEV_FILE), "--inventory", str(CATALOG_DATA / "inventory.json"), "--json"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO, check=False)
    assert proc.returncode == 0, proc.stderr
    rows: list[dict[str, object]] = json.loads(proc.stdout)
    expected = json.loads((CATALOG_DATA / "expected.json").read_text())
    got = {(r["device_id"], r["advisory_id"]): r for r in rows}
    assert len(got) == len(rows), "one entry per device and advisory"
    mismatches = []
    for want in expected:
        key = (want["device_id"], want["advisory_id"])
        row = got.get(key)
        if row is None:
            # Absent: the advisory does not concern the product (advisories.md rule 3: not_affected).
            if want["status"] != "not_affected" or want["first_fixed"] is not None:
                mismatches.append(f"{key}: missing, expected {want['status']}")
            continue
        for field in ("status", "first_fixed", "kev"):
            if row[field] != want[field]:
                mismatches.append(
                    f"{key}.{field}: got {row[field]!r}, expected {want[field]!r} ({row['reason']})"
                )
    expected_keys = {(w["device_id"], w["advisory_id"]) for w in expected}
    extra = sorted(set(got) - expected_keys - NOT_ASSERTED)
    assert not mismatches, "\n".join(mismatches)
    assert not extra, f"findings for pairs advisories.md says are not in the product tree: {extra}"


def test_output_rows_have_the_documented_fields(capsys: pytest.CaptureFixture[str]) -> None:
    rows = _run(capsys)
    for row in rows:
        assert {"device_id", "advisory_id", "cves", "status", "first_fixed", "kev", "cvss"} <= set(row)
        assert row["status"] in {"affected", "fixed", "not_affected", "unknown"}
        if row["status"] == "unknown":
            assert row["reason"], row
    kev_rows = [r for r in rows if r["kev"]]
    assert {r["advisory_id"] for r in kev_rows} == {"cisco-sa-voip-phones-rce-dos-rB6EeRXs"}
    assert all(r["cves"] == ["CVE-2020-3161"] for r in kev_rows)
    voip = next(
        r for r in rows if r["device_id"] == "fw-d15" and r["advisory_id"] == kev_rows[0]["advisory_id"]
    )
    assert voip["cvss"] == 9.8


def test_the_installed_command_runs_as_a_process(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.json"
    inventory.write_text(
        json.dumps(
            [
                {
                    "device_id": "x",
                    "vendor": "Cisco",
                    "product": "CP-8851",
                    "software_version": "sip88xx.11-5-1-18",
                }
            ]
        )
    )
    argv = [
        sys.executable,
        "-m",
        "fernwart_cli.main",
        "catalog",
        "match",
        "--advisories",
        str(CSAF_DIR),
        "--inventory",
        str(inventory),
        "--json",
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO, check=False)
    assert proc.returncode == 0, proc.stderr
    statuses = {r["advisory_id"]: r["status"] for r in json.loads(proc.stdout)}
    assert statuses == {
        "cisco-sa-voip-phones-rce-dos-rB6EeRXs": "affected",
        "cisco-sa-20190320-ip-phone-csrf": "affected",
        "cisco-sa-ipphone-rce-dos-U2PsSkz3": "affected",
    }


def test_a_rejected_document_is_reported_and_the_rest_matched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for source in CSAF_DIR.glob("*.json"):
        (tmp_path / source.name).write_bytes(source.read_bytes())
    (tmp_path / "broken.json").write_text('{"document": ')
    argv = [
        "catalog",
        "match",
        "--advisories",
        str(tmp_path),
        "--inventory",
        str(CATALOG_DATA / "inventory.json"),
        "--json",
    ]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "broken.json: $: not JSON" in captured.err
    assert len(json.loads(captured.out)) >= 66


def test_a_bad_inventory_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps([{"vendor": "Cisco"}]))
    assert main(["catalog", "match", "--advisories", str(CSAF_DIR), "--inventory", str(inventory)]) == 2
    assert "[0].device_id: expected a non-empty string" in capsys.readouterr().err


def test_device_status_follows_the_ground_truth(capsys: pytest.CaptureFixture[str]) -> None:
    """A device's status is its most urgent expected finding's. The Yealink, Poly and Microsoft
    controls are in no advisory's product tree: expected.json lists their pairs as not_affected
    (and they have no finding rows, as above); as devices they are not_covered, since nothing in
    the catalog speaks about them at all."""
    argv = ["catalog", "match", "--advisories", str(CSAF_DIR), "--kev", str(KEV_FILE), "--recommend"]
    argv += ["--inventory", str(CATALOG_DATA / "inventory.json"), "--json"]
    assert main(argv) == 0
    output = json.loads(capsys.readouterr().out)
    status = {r["device_id"]: r["status"] for r in output["recommendations"]}
    reason = {r["device_id"]: r["reason"] for r in output["recommendations"]}
    expected: dict[str, set[str]] = {}
    for want in json.loads((CATALOG_DATA / "expected.json").read_text()):
        expected.setdefault(want["device_id"], set()).add(want["status"])
    with_findings = {row["device_id"] for row in output["findings"]}
    uncovered = set(status) - with_findings
    assert uncovered == {"fw-d25", "fw-d26", "fw-d27"}
    for device_id in sorted(uncovered):
        assert expected[device_id] == {"not_affected"}
        assert status[device_id] == "not_covered"
        assert reason[device_id] == "no advisory in the catalog concerns this product"
    not_asserted: dict[str, set[str]] = {}  # what the matcher says where advisories.md does not
    for row in output["findings"]:
        if (row["device_id"], row["advisory_id"]) in NOT_ASSERTED:
            not_asserted.setdefault(row["device_id"], set()).add(row["status"])
    for device_id in sorted(with_findings):
        statuses = expected[device_id] | not_asserted.get(device_id, set())
        assert status[device_id] == device_status(statuses), device_id
    # All unknown: the reason says which advisories leave it unknown and why, not "affected by no advisory".
    assert status["fw-d04"] == "unknown"
    assert reason["fw-d04"].startswith("no advisory says it is affected; unknown for 2 advisories: ")
    assert (
        "cisco-sa-tce-roomos-dos-9V9jrC2q: Cisco RoomOS Software: the document states nothing"
        in reason["fw-d04"]
    )


def test_findings_carry_the_advisorys_cvss_and_affected_come_first(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = _run(capsys)
    scored = {"cisco-sa-voip-phones-rce-dos-rB6EeRXs": 9.8, "cisco-sa-20190320-ip-phone-csrf": 8.1}
    for row in rows:
        if row["advisory_id"] in scored:
            # not_affected too: a CSAF score lists only the affected products, but it is the advisory's.
            assert row["cvss"] == scored[str(row["advisory_id"])], row
    fw_d20 = [r for r in rows if r["device_id"] == "fw-d20"]
    assert [r["status"] for r in fw_d20] == ["affected", "not_affected", "not_affected"]
    assert fw_d20[1]["kev"]  # the KEV advisory's not_affected finding no longer comes first
