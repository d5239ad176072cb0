"""Contracts, campaigns, jobs and the audit log in the database (revision 0009), both backends."""

from __future__ import annotations

import csv
import io
import json
import tomllib
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from controller.campaigns.spec import CampaignSpec
from controller.scheduler import CustomerPolicy, DataError, parse_policy, parse_windows
from controller.storage import audit, campaign_store, contracts, migrate
from tests.controller.conftest import open_store

EXAMPLES = Path(__file__).resolve().parents[2] / "controller" / "examples"


def _view(policy: CustomerPolicy) -> tuple[object, ...]:
    """Everything of a policy; sites sorted (they are informational and come back in key order)."""
    zone_and_calendar = (policy.timezone.key, policy.holidays.code, policy.working_hours)
    terms = (policy.security_min_cvss, policy.notice_lead, policy.approvals, policy.contacts)
    return (policy.customer, *zone_and_calendar, *terms, tuple(sorted(policy.sites)), policy.name)


def _docs() -> tuple[dict[str, object], dict[str, object]]:
    policy = tomllib.loads((EXAMPLES / "policy.toml").read_text(encoding="utf-8"))
    windows = tomllib.loads((EXAMPLES / "windows.toml").read_text(encoding="utf-8"))
    return policy, windows


async def test_contracts_round_trip_through_the_same_parser(database_url: str) -> None:
    policy, windows = _docs()
    expected = parse_policy(policy)
    expected_windows = parse_windows(windows, expected)
    async with open_store(database_url) as store:
        counts = await contracts.import_contracts(store, policy, windows, actor="noc:test")
        assert counts == {"customers": 2, "windows": 3, "approvals": 1, "contacts": 1}
        loaded = await contracts.load_contracts(store)
        # importing again replaces windows and contacts and does not duplicate the approval
        await contracts.import_contracts(store, policy, windows, actor="noc:test")
        again = await contracts.load_contracts(store)
        await contracts.import_contracts(store, policy, None, actor="noc:test")  # the policy alone
        kept = await contracts.load_contracts(store)
    assert {k: _view(v) for k, v in loaded.customers.items()} == {k: _view(v) for k, v in expected.items()}
    assert loaded.customers.package_host == expected.package_host
    assert [
        (w.customer, w.start, w.rrule, w.duration, w.timezone, w.sites, w.blackout) for w in loaded.windows
    ] == [
        (w.customer, w.start, w.rrule, w.duration, w.timezone, w.sites, w.blackout) for w in expected_windows
    ]
    assert len(again.windows) == 3
    assert len(kept.windows) == 3  # a policy without windows leaves the windows as they were
    assert again.customers["acme"].approvals == expected["acme"].approvals
    assert loaded.sites["vie-hq"] == "acme"


async def test_a_bad_import_names_every_field_and_writes_nothing(database_url: str) -> None:
    policy, windows = _docs()
    policy["customers"]["acme"]["timezone"] = "Mars/Olympus"  # type: ignore[index]
    windows["windows"][1]["rrule"] = "FREQ=SOMETIMES"  # type: ignore[index]
    async with open_store(database_url) as store:
        with pytest.raises(DataError) as caught:
            await contracts.import_contracts(store, policy, windows, actor="noc:test")
        loaded = await contracts.load_contracts(store)
    assert any(line.startswith("customers.acme.timezone:") for line in caught.value.errors)
    assert not loaded.customers
    assert not loaded.windows


async def test_approvals_scope_and_webhook(database_url: str) -> None:
    policy, windows = _docs()
    async with open_store(database_url) as store:
        await contracts.import_contracts(store, policy, windows, actor="noc:test")
        with pytest.raises(DataError) as caught:
            await contracts.add_approval(
                store, "acme", "roomos", "not a version", approved_by="x", expires=None
            )
        assert caught.value.errors[0].startswith("version:")
        with pytest.raises(LookupError):
            await contracts.add_approval(store, "nobody", "roomos", "26.1.1.1", approved_by="x", expires=None)
        await contracts.add_approval(
            store, "acme", "roomos", "26.1.1.1", approved_by="Maria Huber", expires=date(2026, 9, 1)
        )
        approvals = await contracts.list_approvals(store, "acme")
        await contracts.set_scope(
            store, "vie-hq", "codec-1", in_scope=False, actor="noc:test", customer_id="acme"
        )
        await contracts.set_scope(
            store, "vie-hq", "codec-2", in_scope=True, actor="noc:test", customer_id="acme"
        )
        assert await contracts.set_webhook(store, "acme", "https://hooks.acme.example/fw", actor="noc:test")
        assert not await contracts.set_webhook(store, "nobody", None, actor="noc:test")
        loaded = await contracts.load_contracts(store)
        assert await contracts.out_of_scope(store) == {("vie-hq", "codec-1")}
        kinds = [e["kind"] for e in await audit.entries(store, customer_id="acme")]
    assert [(a["version"], a["expires"]) for a in approvals] == [
        ("26.2.2.2", "2026-06-30"),
        ("26.1.1.1", "2026-09-01"),
    ]
    assert loaded.webhooks == {"acme": "https://hooks.acme.example/fw"}
    assert kinds.count("approval") == 2
    assert kinds.count("policy") >= 5  # customer, two windows, two scope changes, webhook


async def test_campaign_states_jobs_history_and_audit_export(database_url: str) -> None:
    policy, windows = _docs()
    spec = CampaignSpec(name="roomos security", customer="acme", targets={"roomos": "26.2.2.2"})
    async with open_store(database_url) as store:
        await contracts.import_contracts(store, policy, windows, actor="noc:test")
        with pytest.raises(LookupError):
            await campaign_store.create_campaign(
                store, spec.model_copy(update={"customer": "nobody"}).model_dump(), actor="noc:op"
            )
        campaign = await campaign_store.create_campaign(store, spec.model_dump(), actor="noc:op")
        cid = campaign["id"]
        planned = [
            {
                "site_id": "vie-hq",
                "device_id": "codec-1",
                "action": "update",
                "update_class": "security",
                "target": "26.2.2.2",
                "wave": 1,
                "reason_code": "scheduled",
                "reason": "security update",
            },
            {
                "site_id": "vie-hq",
                "device_id": "phone-1",
                "action": "hold",
                "reason_code": "out_of_scope",
                "reason": "outside the contract scope",
            },
        ]
        assert await campaign_store.replace_plan(store, cid, "acme", planned, actor="noc:op") == 2
        with pytest.raises(campaign_store.TransitionRefused):
            await campaign_store.change_state(store, cid, "running", actor="noc:op")
        await campaign_store.change_state(store, cid, "approved", actor="noc:admin")
        await campaign_store.change_state(store, cid, "running", actor="runner")
        jobs = await campaign_store.list_jobs(store, cid)
        await campaign_store.record_job_state(
            store,
            jobs[0]["id"],
            "sent",
            detail="command c-1",
            actor="runner",
            kind="command",
            command_id="c-1",
        )
        await campaign_store.change_state(store, cid, "paused", actor="noc:op", reason="customer asked")
        cancelled = await campaign_store.change_state(store, cid, "cancelled", actor="noc:op")
        job = await campaign_store.get_job(store, jobs[0]["id"])
        held = await campaign_store.get_job(store, jobs[1]["id"])
        assert await campaign_store.change_state(store, 999_999, "paused", actor="x") is None
        rows = await audit.entries(store)
    assert cancelled is not None
    assert cancelled["state"] == "cancelled"
    assert job is not None
    assert held is not None
    assert [e["state"] for e in job["history"]] == ["planned", "sent", "cancelled"]
    assert job["command_id"] == "c-1"
    assert held["state"] == "hold"
    assert [(r["kind"], r["detail"].get("change")) for r in rows if r["kind"] == "campaign"] == [
        ("campaign", "created"),
        ("campaign", "approved"),
        ("campaign", "running"),
        ("campaign", "paused"),
        ("campaign", "cancelled"),
    ]
    kinds = {r["kind"] for r in rows}
    assert {"policy", "approval", "plan", "command", "campaign"} <= kinds
    lines = audit.to_jsonl(rows).splitlines()
    assert [json.loads(line)["id"] for line in lines] == [r["id"] for r in rows]
    table = list(csv.DictReader(io.StringIO(audit.to_csv(rows))))
    assert [int(r["id"]) for r in table] == [r["id"] for r in rows]
    plan = next(r for r in table if r["kind"] == "plan")
    assert json.loads(plan["detail"])["held"] == 1


async def test_revision_0009_goes_down_and_up_again(database_url: str) -> None:
    policy, windows = _docs()
    async with open_store(database_url) as store:
        await contracts.import_contracts(store, policy, windows, actor="noc:test")
        await migrate.downgrade(store.engine, "0008")
        async with store.engine.connect() as conn:
            names = await conn.run_sync(lambda sync: set(sa.inspect(sync).get_table_names()))
        assert not names & {"customers", "campaigns", "jobs", "job_events", "audit_log", "approvals"}
        assert "devices" in names
        await migrate.upgrade(store.engine)
        assert not (await contracts.load_contracts(store)).customers  # a fresh start, no leftovers
        await contracts.import_contracts(store, policy, windows, actor="noc:test")
        assert len((await contracts.load_contracts(store)).windows) == 3
