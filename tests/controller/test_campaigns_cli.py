"""The CLI against a real controller API on loopback (each command a real `fernwart` process)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from controller.campaigns.notices import customer_secret
from controller.storage import Store
from fernwart_cli.demo_campaign import seed_and_plan
from fernwart_cli.main import main
from tests.controller.test_campaigns_api import client  # noqa: F401 - the fixture

POLICY = """
[customers.acme]
name = "ACME"
sites = ["site-1"]

[[customers.acme.contacts]]
name = "Maria Huber"
email = "maria@acme.example"

[[customers.acme.approvals]]
family = "roomos"
version = "26.2.2.2"
approved_by = "Maria Huber"
approved_at = 2026-01-02T10:00:00+01:00
"""
WINDOWS = """
[[windows]]
customer = "acme"
start = 2026-01-01T22:00:00
rrule = "FREQ=DAILY"
duration = "PT3H"
"""


async def fernwart(base: str, token_file: Path, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "FERNWART_CONTROLLER_URL": base, "FERNWART_TOKEN_FILE": str(token_file)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fernwart_cli.main",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_contracts_campaign_dry_run_and_audit_from_the_cli(
    client: tuple[TestClient[Any, Any], Store],  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    http, _store = client
    base = str(http.make_url("")).rstrip("/")
    token = tmp_path / "token"
    token.write_text(http.session.headers["Authorization"].removeprefix("Bearer "), encoding="utf-8")
    policy, windows, bad = tmp_path / "policy.toml", tmp_path / "windows.toml", tmp_path / "bad.toml"
    policy.write_text(POLICY, encoding="utf-8")
    windows.write_text(WINDOWS, encoding="utf-8")
    bad.write_text(
        POLICY.replace('name = "ACME"', 'name = "ACME"\nworking_hours = "always"'), encoding="utf-8"
    )

    code, out, err = await fernwart(
        base, token, "contracts", "import", "--policy", str(bad), "--windows", str(windows)
    )
    assert code == 65, err
    assert "customers.acme.working_hours" in err
    code, out, err = await fernwart(
        base, token, "contracts", "import", "--policy", str(policy), "--windows", str(windows)
    )
    assert code == 0, err
    assert "1 customers" in out

    code, out, err = await fernwart(
        base,
        token,
        "campaign",
        "create",
        "--name",
        "lab",
        "--customer",
        "acme",
        "--target",
        "roomos=26.2.2.2",
        "--json",
    )
    assert code == 0, err
    cid = str(json.loads(out)["id"])
    code, out, err = await fernwart(base, token, "campaign", "plan", "--campaign", cid, "--dry-run")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"campaign {cid}: would update ")
    updates = [line for line in lines if line.startswith("  update ")]
    holds = [line for line in lines if line.startswith("  hold ")]
    assert updates
    # the canary (wave 1) first, the rest in a window after it ended; each with its class and why
    # (the class of the first follows the catalog's findings: security while an advisory affects it)
    assert re.search(
        r"ber-konf-2-12: RoomOS 11.14.2.3 -> 26.2.2.2 \[(security|feature), automatic, wave 1\]", updates[0]
    )
    assert "ham-desk-4-07: RoomOS 11.17.1.7 -> 26.2.2.2 [feature, automatic, wave 2]" in updates[1], out
    assert any("why: feature update to 26.2.2.2 approved by Maria Huber" in line for line in lines)
    assert any(": unknown_version: " in line for line in holds)
    code, out, err = await fernwart(base, token, "campaign", "jobs", cid)
    assert (code, out) == (0, "")  # a dry run stores nothing

    code, out, err = await fernwart(base, token, "campaign", "pause", cid)
    assert code == 1
    assert "draft" in err
    code, out, err = await fernwart(base, token, "campaign", "plan", "--dry-run")
    assert code == 2
    assert "--dry-run goes with --campaign ID" in err

    code, out, err = await fernwart(base, token, "campaign", "plan", "--campaign", cid)
    assert code == 0, err
    assert out.startswith(f"campaign {cid}: planned ")
    code, out, err = await fernwart(base, token, "campaign", "approve", cid)
    assert (code, out.split("\t")[:2]) == (0, [cid, "approved"]), err
    code, out, err = await fernwart(base, token, "campaign", "list")
    assert out.splitlines()[0].startswith(f"{cid}\tapproved\tacme\tlab")
    code, out, err = await fernwart(base, token, "campaign", "show", cid)
    assert "  jobs: hold 7, planned 2" in out, out
    code, out, err = await fernwart(base, token, "campaign", "jobs", cid, "--json")
    job_id = str(next(j["id"] for j in json.loads(out) if j["state"] == "planned"))
    code, out, err = await fernwart(base, token, "campaign", "cancel", cid)
    assert (code, out.split("\t")[1]) == (0, "cancelled"), err
    code, out, err = await fernwart(base, token, "campaign", "job", job_id)
    assert out.splitlines()[0].endswith(": cancelled")
    assert [line.split("\t")[1] for line in out.splitlines()[1:]] == ["planned", "cancelled"]
    code, out, err = await fernwart(base, token, "campaign", "resume", cid)
    assert code == 1
    assert err.startswith(f"fernwart campaign: campaign {cid} is cancelled"), err  # no "path.id: "
    code, out, err = await fernwart(base, token, "campaign", "show", "999")
    assert (code, err) == (1, "fernwart campaign: no campaign 999\n")

    code, out, err = await fernwart(
        base,
        token,
        "contracts",
        "approve",
        "acme",
        "--family",
        "ce",
        "--version",
        "26.2.2.2",
        "--expires",
        "2099-12-31",
    )
    assert code == 0, err
    assert out.startswith("ce 26.2.2.2 approved by test-noc-admin at ")
    code, out, err = await fernwart(base, token, "contracts", "scope", "site-1/mystery-box", "out")
    assert (code, out, err) == (0, "site-1/mystery-box: out scope\n", ""), err
    code, out, err = await fernwart(base, token, "contracts", "scope", "site-1/mystery-bx", "out")
    assert (code, out) == (0, "site-1/mystery-bx: out scope\n"), err  # a typo: stored, and said so
    assert err.startswith("fernwart contracts: note: no device site-1/mystery-bx has reported yet"), err
    code, out, err = await fernwart(base, token, "contracts", "show", "acme")
    assert code == 0, err
    shown = json.loads(out)
    assert [a["family"] for a in shown["policy"]["approvals"]] == ["roomos", "ce"]
    assert len(shown["next_windows"]) == 5
    code, out, err = await fernwart(base, token, "contracts", "show", "globex")
    assert (code, err) == (1, "fernwart contracts: no customer 'globex'\n")

    code, out, err = await fernwart(base, token, "audit", "export", "--format", "csv", "--customer", "acme")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {"policy", "approval", "campaign"} <= {row["kind"] for row in rows}


async def test_the_demo_seeds_a_contract_and_prints_a_planned_campaign(
    client: tuple[TestClient[Any, Any], Store],  # noqa: F811 - the fixture
) -> None:
    http, _store = client
    base = str(http.make_url("")).rstrip("/")
    token = http.session.headers["Authorization"].removeprefix("Bearer ")
    lines = await asyncio.to_thread(seed_and_plan, base, token, "acme", "site-1")
    text = "\n".join(lines)
    assert lines[1].startswith("campaign 1: planned 2 device(s)"), text
    # which device, which window, which class, why
    first = (
        r"update site-1/ber-konf-2-12: RoomOS 11.14.2.3 -> 26.2.2.2 \[(security|feature), automatic, wave 1\]"
    )
    assert re.search(first, text), text
    assert "(Tue/Thu night); notice by " in text
    assert "why: feature update to 26.2.2.2 approved by Erika Muster" in text
    assert "hold   site-1/mystery-box: unknown_version:" in text
    jobs = json.loads(await (await http.get("/api/v1/campaigns/1/jobs")).read())["items"]
    assert sorted(j["state"] for j in jobs).count("planned") == 2


def test_a_customer_gets_its_own_webhook_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "controller.toml"
    db = f"sqlite+aiosqlite:///{tmp_path}/none.db"
    config.write_text(
        f'[database]\nurl = "{db}"\n[notices]\nwebhook_secret = "master-key"\n', encoding="utf-8"
    )
    assert main(["contracts", "webhook-secret", "acme", "--config", str(config)]) == 0
    acme = capsys.readouterr().out.strip()
    assert acme.encode() == customer_secret(b"master-key", "acme")
    assert "master-key" not in acme
    main(["contracts", "webhook-secret", "globex", "--config", str(config)])
    assert capsys.readouterr().out.strip() != acme
    config.write_text(f'[database]\nurl = "{db}"\n', encoding="utf-8")
    assert main(["contracts", "webhook-secret", "acme", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        (
            f"fernwart contracts: {config}: notices.webhook_secret is not set: set it,"
            ' e.g. webhook_secret = { credential = "webhook-secret" }, and restart the controller'
        )
    ]


async def test_a_refused_token_names_where_it_came_from(
    client: tuple[TestClient[Any, Any], Store],  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    # A revoked token in the token file used to read "set FERNWART_TOKEN or use --token-file":
    # what the operator had done. Now the line names the file; no token at all says so.
    http, _store = client
    base = str(http.make_url("")).rstrip("/")
    stale = tmp_path / "stale.token"
    stale.write_text("fwt_revoked-long-ago", encoding="utf-8")
    code, out, err = await fernwart(base, stale, "campaign", "list")
    assert (code, out) == (77, "")
    assert err == (
        f"fernwart campaign: the controller refused the API token from $FERNWART_TOKEN_FILE ({stale}):"
        " unknown, revoked or expired (`fernwart controller token list` on the controller's host)\n"
    )
    assert "fwt_revoked-long-ago" not in err
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERNWART_TOKEN")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fernwart_cli.main",
        "audit",
        "export",
        "--controller",
        base,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        _out, raw = await proc.communicate()
    assert proc.returncode == 77
    assert raw.decode() == (
        "fernwart audit: no API token given: use --token-file FILE,"
        " or set FERNWART_TOKEN_FILE or FERNWART_TOKEN\n"
    )


async def test_a_bad_flag_value_is_named_as_the_flag(
    client: tuple[TestClient[Any, Any], Store],  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    http, _store = client
    base = str(http.make_url("")).rstrip("/")
    token = tmp_path / "token"
    token.write_text(http.session.headers["Authorization"].removeprefix("Bearer "), encoding="utf-8")
    code, out, err = await fernwart(base, token, "audit", "export", "--since", "yesterday")
    assert (code, out) == (65, "")
    assert err.startswith("fernwart audit: the controller refused it: --since: "), err
