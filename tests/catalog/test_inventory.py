"""``catalog match --inventory``: the documented format, the REST API's own records, and a warning
when nothing in the file can be matched (instead of "unknown" for everything and exit 0)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fernwart_cli.main import main
from tests.catalog.conftest import CSAF_DIR

VOIP = "cisco-sa-voip-phones-rce-dos-rB6EeRXs"

# Two records as GET /api/v1/devices (and so `fernwart devices list --json`) emits them.
API_RECORDS: list[dict[str, Any]] = [
    {
        "id": 8,
        "tenant": "acme",
        "site_id": "site-1",
        "device_id": "sep-enterprise-8851",
        "agent_id": "agent-1",
        "vendor": "cisco",
        "family": "enterprise",
        "model": "CP-8851",
        "serial": "SN-1",
        "hostname": None,
        "driver": "snmp",
        "firmware_version": "sip88xx.11-5-1-18",
        "health": "ok",
        "reachable": True,
        "status": "active",
        "interval_s": 60.0,
        "first_seen": "2026-01-01T00:00:00Z",
        "last_seen": "2026-01-01T00:01:00Z",
    },
    {
        "id": 9,
        "tenant": "acme",
        "site_id": "site-1",
        "device_id": "yealink-mp56",
        "agent_id": "agent-1",
        "vendor": "yealink",
        "family": "teams",
        "model": "MP56",
        "serial": None,
        "hostname": None,
        "driver": "snmp",
        "firmware_version": "122.15.0.107",
        "health": "ok",
        "reachable": True,
        "status": "active",
        "interval_s": 60.0,
        "first_seen": "2026-01-01T00:00:00Z",
        "last_seen": "2026-01-01T00:01:00Z",
    },
]


def _match(tmp_path: Path, inventory: Any, *extra: str) -> int:
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(inventory))
    return main(
        ["catalog", "match", "--advisories", str(CSAF_DIR), "--inventory", str(path), "--json", *extra]
    )


@pytest.mark.parametrize("shape", ["array", "page"])
def test_the_rest_apis_device_records_are_an_inventory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], shape: str
) -> None:
    inventory = API_RECORDS if shape == "array" else {"items": API_RECORDS, "total": 2, "next_offset": None}
    assert _match(tmp_path, inventory, "--recommend") == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err
    output = json.loads(captured.out)
    found = {(f["device_id"], f["advisory_id"]): f for f in output["findings"]}
    voip = found["site-1/sep-enterprise-8851", VOIP]
    assert (voip["status"], voip["first_fixed"]) == ("affected", "11.7(1)")
    status = {r["device_id"]: r["status"] for r in output["recommendations"]}
    assert status == {"site-1/sep-enterprise-8851": "affected", "site-1/yealink-mp56": "not_covered"}


def test_an_inventory_nothing_of_which_maps_warns_and_exits_65(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = [{"device_id": "a", "name": "Room 1", "os": "RoomOS 11"}, {"device_id": "b", "name": "Phone"}]
    assert _match(tmp_path, records) == 65
    err = capsys.readouterr().err
    assert "none of the 2 devices" in err
    assert "no firmware version reported" in err


def test_help_documents_the_inventory_format(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["catalog", "match", "--help"])
    text = capsys.readouterr().out
    for field in (
        "device_id",
        "vendor",
        "product",
        "software_version",
        "model",
        "firmware_version",
        "site_id",
    ):
        assert field in text


def test_a_wrongly_typed_api_field_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _match(tmp_path, [{**API_RECORDS[0], "firmware_version": 5}]) == 2
    assert "[0].firmware_version: expected a string" in capsys.readouterr().err
