"""`fernwart campaign plan`: the README example files, JSON output, exit codes 0, 2 and 65."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fernwart_cli.main import main
from tests.catalog.conftest import CATALOG_DATA, CSAF_DIR, KEV_FILE

EXAMPLES = Path(__file__).resolve().parents[3] / "controller" / "examples"
KEYS = [
    "device_id",
    "action",
    "update_class",
    "target",
    "start",
    "end",
    "wave",
    "execution",
    "reason_code",
    "reason",
]


def _inventory(tmp_path: Path) -> Path:
    devices = json.loads((CATALOG_DATA / "inventory.json").read_text(encoding="utf-8"))
    sites = ["vie-hq", "vie-lab", "nyc-office"]
    for index, device in enumerate(devices):
        device["customer"] = "acme"
        device["site"] = sites[index % 3]
    devices[0]["in_scope"] = False
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(devices), encoding="utf-8")
    return path


def _args(inventory: Path, windows: Path, policy: Path, *extra: str) -> list[str]:
    return [
        "campaign", "plan", "--inventory", str(inventory), "--windows", str(windows), "--policy", str(policy),
        "--advisories", str(CSAF_DIR), "--kev", str(KEV_FILE), "--now", "2026-05-04T09:00:00+02:00", "--json",
        *extra,
    ]  # fmt: skip


def test_plan_with_the_readme_examples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = _inventory(tmp_path)
    code = main(_args(inventory, EXAMPLES / "windows.toml", EXAMPLES / "policy.toml", "--canary", "0"))
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [row["device_id"] for row in out] == [d["device_id"] for d in json.loads(inventory.read_text())]
    assert all(list(row)[: len(KEYS)] == KEYS for row in out)
    assert out[0]["reason_code"] == "out_of_scope"
    updates = [row for row in out if row["action"] == "update"]
    assert updates
    for row in updates:
        assert row["start"].endswith(("+02:00", "-04:00"))
        assert row["wave"] == 1
        assert row["execution"] in {"automatic", "manual"}
    for row in out:
        if row["action"] == "hold":
            assert row["start"] is None
            assert row["execution"] is None


def test_operator_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        _args(
            _inventory(tmp_path),
            EXAMPLES / "windows.toml",
            EXAMPLES / "policy.toml",
            "--target",
            "roomos=26.2.2.2",
        )
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    roomos = [row for row in out if row["target"] == "26.2.2.2"]
    assert roomos
    assert all(row["target_rule"] == "operator" for row in roomos)
    # The example policy approves roomos 26.2.2.2, so feature updates to it are scheduled too.
    assert any(row["update_class"] == "feature" and row["action"] == "update" for row in roomos)


@pytest.mark.parametrize(
    "extra",
    [["--now", "2026-05-04T09:00"], ["--target", "roomos"], ["--target", "nope=1.0"], ["--canary", "-1"]],
)
def test_usage_errors_exit_2(tmp_path: Path, extra: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_args(_inventory(tmp_path), EXAMPLES / "windows.toml", EXAMPLES / "policy.toml", *extra)) == 2
    assert "fernwart campaign: --" in capsys.readouterr().err


def test_data_errors_all_at_once_exit_65(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[customers.acme]\ntimezone = "Europe/Wien"\nholidays = "XX"\nworking_hours = "Mon-Fri 17:00-08:00"\n'
        'notice_lead = "1 day"\ncolour = "blue"\n',
        encoding="utf-8",
    )
    windows = tmp_path / "windows.toml"
    windows.write_text(
        '[[windows]]\ncustomer = "acme"\nstart = 2026-01-01T22:00:00\nrrule = "X"\n', encoding="utf-8"
    )
    inventory = tmp_path / "inventory.json"
    inventory.write_text(
        json.dumps([{"device_id": "d1", "customer": "acme"}, {"device_id": 3}]), encoding="utf-8"
    )
    assert main(_args(inventory, windows, policy)) == 65
    err = capsys.readouterr().err
    assert f"{policy}: customers.acme.colour: unknown key" in err
    assert f"{inventory}: [0].site: expected a non-empty string" in err
    assert f"{inventory}: [1].device_id: expected a non-empty string" in err
    good_policy = tmp_path / "good.toml"
    good_policy.write_text("[customers.acme]\n", encoding="utf-8")
    assert main(_args(inventory, windows, good_policy)) == 65
    err = capsys.readouterr().err
    assert f"{windows}: windows[0].duration: field required" in err
    windows.write_text(
        '[[windows]]\ncustomer = "acme"\nstart = 2026-01-01T22:00:00\nrrule = "X"\nduration = "2h"\n'
        '[[windows]]\ncustomer = "umbrella"\nstart = 2026-01-01T22:00:00\nrrule = "FREQ=DAILY"\n'
        'duration = "PT1H"\n',
        encoding="utf-8",
    )
    assert main(_args(inventory, windows, good_policy)) == 65
    err = capsys.readouterr().err
    assert f"{windows}: windows[0].duration: expected an ISO 8601 duration" in err
    assert f"{windows}: windows[1].customer: 'umbrella' has no [customers.umbrella]" in err


def test_policy_value_errors_name_their_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[customers.acme]\ntimezone = "Europe/Wien"\nholidays = "XX"\nworking_hours = "Mon-Fri 17:00-08:00"\n'
        'notice_lead = "1 day"\n',
        encoding="utf-8",
    )
    assert main(_args(_inventory(tmp_path), EXAMPLES / "windows.toml", policy)) == 65
    err = capsys.readouterr().err
    for key in ("timezone", "holidays", "working_hours", "notice_lead"):
        assert f"{policy}: customers.acme.{key}: " in err
