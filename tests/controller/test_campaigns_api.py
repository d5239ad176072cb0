"""Contracts and campaigns over REST, on both databases: import, dry-run plan, stored plan, approve,
pause/cancel, jobs with history, approvals by the customer, scope, tenant isolation, audit export."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from controller.auth import Role
from controller.matching import MatchingService
from controller.metrics import Metrics
from controller.storage import Store
from controller.web import AppState, make_app
from tests.controller.catalog_helpers import DEVICES, advisory_files, lab_observations
from tests.controller.conftest import auth_headers, make_batch, open_store
from tests.controller.test_catalog_api import _received

Client = TestClient[Any, Any]

POLICY = {
    "customers": {
        "acme": {
            "name": "ACME",
            "sites": ["site-1"],
            "contacts": [{"name": "Maria Huber", "email": "maria@acme.example", "role": "IT lead"}],
            "approvals": [
                {
                    "family": "roomos",
                    "version": "26.2.2.2",
                    "approved_by": "Maria Huber",
                    "approved_at": "2026-01-02T10:00:00+01:00",
                }
            ],
        },
        "globex": {"timezone": "America/New_York", "holidays": "US"},
    }
}
# Every night at 22:00 Vienna for three hours: always a usable window within the horizon.
WINDOWS = {
    "windows": [
        {"customer": "acme", "start": "2026-01-01T22:00:00", "rrule": "FREQ=DAILY", "duration": "PT3H"},
        {
            "customer": "globex",
            "start": "2026-01-04T06:00:00",
            "rrule": "FREQ=WEEKLY;BYDAY=SU",
            "duration": "PT4H",
        },
    ]
}


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[tuple[Client, Store]]:
    async with open_store(database_url, tenant_of=lambda _site: "acme") as store:
        await store.write_flush([_received(make_batch("site-1", "agent-1", 0, lab_observations()))])
        metrics = Metrics()
        matching = MatchingService(store, metrics.registry)
        await matching.start()
        app = make_app(AppState(store, metrics, lambda: True, matching, tenant_of=lambda _site: "acme"))
        http: Client = TestClient(TestServer(app, host="127.0.0.1"), headers=await auth_headers(store))
        await http.start_server()
        try:
            for path in advisory_files():
                await call(http, "POST", "/api/v1/advisories", {201, 200}, raw=path.read_bytes())
            yield http, store
        finally:
            await http.close()


async def call(
    http: Client,
    method: str,
    path: str,
    status: int | set[int],
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    resp = await http.request(method, path, data=data, headers=hdrs)
    text = await resp.text()
    assert resp.status in ({status} if isinstance(status, int) else status), (
        f"{method} {path}: {resp.status} {text}"
    )
    if resp.content_type == "application/json":
        return json.loads(text)
    return text


async def test_a_campaign_from_contract_to_cancel(client: tuple[Client, Store]) -> None:
    http, _store = client
    bad = json.loads(json.dumps(POLICY))
    bad["customers"]["acme"]["timezone"] = "Mars/Olympus"
    refused = await call(http, "PUT", "/api/v1/contracts", 422, {"policy": bad, "windows": WINDOWS})
    assert refused["errors"][0]["loc"] == ["body", "policy", "customers.acme.timezone"]
    huge = json.loads(json.dumps(POLICY))
    huge["customers"]["x" * 200] = {
        "name": "n" * 300,
        "contacts": [{"name": "a\u0000b", "email": "a@b.example"}],
    }
    refused = await call(http, "PUT", "/api/v1/contracts", 422, {"policy": huge, "windows": WINDOWS})
    assert sorted(e["loc"][-1].rsplit(".", 1)[-1] for e in refused["errors"]) == ["name", "name", "x" * 200]
    bad_scope = await call(http, "PUT", "/api/v1/scope/site-1/a%20b", 422, {"in_scope": False})
    assert bad_scope["errors"][0]["loc"] == ["path", "device"]
    counts = await call(http, "PUT", "/api/v1/contracts", 200, {"policy": POLICY, "windows": WINDOWS})
    assert counts["customers"] == 2
    assert counts["windows"] == 2
    customer = await call(http, "GET", "/api/v1/customers/acme", 200)
    assert customer["policy"]["timezone"] == "Europe/Vienna"
    upcoming = await call(http, "GET", "/api/v1/customers/acme/windows?n=3", 200)
    assert [w["start"][11:19] for w in upcoming["items"]] == ["22:00:00"] * 3

    out_device = DEVICES[0][0]
    await call(http, "PUT", f"/api/v1/scope/site-1/{out_device}", 200, {"in_scope": False})
    refused = await call(
        http, "POST", "/api/v1/campaigns", 422, {"name": "x", "customer": "acme", "targets": {"nope": "1"}}
    )
    assert refused["errors"][0]["loc"] == ["body", "targets"]
    created = await call(
        http,
        "POST",
        "/api/v1/campaigns",
        201,
        {"name": "lab", "customer": "acme", "canary": 1, "targets": {"roomos": "26.2.2.2", "ce": "26.2.2.2"}},
    )
    cid = created["id"]
    assert created["state"] == "draft"

    dry = await call(http, "POST", f"/api/v1/campaigns/{cid}/plan?dry_run=true", 200)
    assert dry["dry_run"]
    by_device = {job["device_id"]: job for job in dry["jobs"]}
    assert set(by_device) == {d[0] for d in DEVICES}
    assert by_device[out_device]["reason_code"] == "out_of_scope"
    updates = [j for j in dry["jobs"] if j["action"] == "update"]
    assert updates, [(j["device_id"], j["reason_code"], j["reason"]) for j in dry["jobs"]]
    for job in updates:
        assert job["start"].endswith(("+01:00", "+02:00"))
        assert job["reason"]
        assert job["wave"] in {1, 2}
    assert sorted(j["wave"] for j in updates).count(1) >= 1
    assert (await call(http, "GET", f"/api/v1/campaigns/{cid}/jobs", 200))[
        "items"
    ] == []  # a dry run stores nothing

    stored = await call(http, "POST", f"/api/v1/campaigns/{cid}/plan", 200)
    assert stored["updates"] == len(updates)
    jobs = (await call(http, "GET", f"/api/v1/campaigns/{cid}/jobs", 200))["items"]
    assert {j["state"] for j in jobs} == {"planned", "hold"}
    await call(http, "POST", f"/api/v1/campaigns/{cid}/approve", 200)
    await call(http, "POST", f"/api/v1/campaigns/{cid}/plan", 409)  # approved: the plan is fixed
    paused = await call(http, "POST", f"/api/v1/campaigns/{cid}/pause", 409)
    assert "approved" in paused["errors"][0]["msg"]
    cancelled = await call(http, "POST", f"/api/v1/campaigns/{cid}/cancel", 200)
    assert cancelled["state"] == "cancelled"
    planned = next(j for j in jobs if j["state"] == "planned")
    job = await call(http, "GET", f"/api/v1/jobs/{planned['id']}", 200)
    assert [h["state"] for h in job["history"]] == ["planned", "cancelled"]

    summary = await call(http, "GET", f"/api/v1/campaigns/{cid}", 200)
    assert summary["jobs"]["cancelled"] == len(updates)

    lines = [
        json.loads(line)
        for line in (await call(http, "GET", "/api/v1/audit?customer=acme", 200)).splitlines()
    ]
    kinds = [entry["kind"] for entry in lines]
    assert {"policy", "plan", "campaign"} <= set(kinds)
    assert [e["detail"]["change"] for e in lines if e["kind"] == "campaign"] == [
        "created",
        "approved",
        "cancelled",
    ]
    table = list(
        csv.DictReader(io.StringIO(await call(http, "GET", "/api/v1/audit?format=csv&kind=plan", 200)))
    )
    assert [row["kind"] for row in table] == ["plan"]
    assert json.loads(table[0]["detail"])["updates"] == len(updates)


async def test_customers_approve_their_own_and_see_nothing_of_others(client: tuple[Client, Store]) -> None:
    http, store = client
    await call(http, "PUT", "/api/v1/contracts", 200, {"policy": POLICY, "windows": WINDOWS})
    created = await call(http, "POST", "/api/v1/campaigns", 201, {"name": "globex", "customer": "globex"})
    acme = await auth_headers(store, Role.CUSTOMER, "acme")
    viewer = await auth_headers(store, Role.NOC_VIEWER)

    approval = {"family": "roomos", "version": "26.2.2.2", "expires": "2099-12-31"}
    given = await call(http, "POST", "/api/v1/customers/acme/approvals", 201, approval, headers=acme)
    # an approval that already ended is refused, not stored as given while plans still hold
    stale = await call(
        http,
        "POST",
        "/api/v1/customers/acme/approvals",
        422,
        {**approval, "expires": "2000-01-01"},
        headers=acme,
    )
    assert stale["errors"][0]["loc"] == ["body", "expires"]
    assert stale["errors"][0]["msg"].startswith("2000-01-01 lies in the past (today is ")
    assert given["approved_by"] == "test-customer"
    await call(http, "POST", "/api/v1/customers/acme/approvals", 403, approval, headers=viewer)
    await call(http, "POST", "/api/v1/customers/globex/approvals", 404, approval, headers=acme)
    bad = await call(
        http,
        "POST",
        "/api/v1/customers/acme/approvals",
        422,
        {"family": "roomos", "version": "x y"},
        headers=acme,
    )
    assert bad["errors"][0]["loc"][-1] == "version"
    listed = await call(http, "GET", "/api/v1/customers/acme/approvals", 200, headers=acme)
    assert [a["approved_by"] for a in listed["items"]] == ["Maria Huber", "test-customer"]

    assert [
        c["customer_id"] for c in (await call(http, "GET", "/api/v1/customers", 200, headers=acme))["items"]
    ] == ["acme"]
    await call(http, "GET", "/api/v1/customers/globex", 404, headers=acme)
    await call(http, "GET", "/api/v1/customers/a%00b", 404)  # no column can hold it: missing, not 500
    await call(http, "PUT", "/api/v1/customers/a%00b/webhook", 404, {"url": None})
    await call(http, "POST", "/api/v1/campaigns", 422, {"name": "a\u0000b", "customer": "acme"})
    await call(http, "GET", f"/api/v1/campaigns/{created['id']}", 404, headers=acme)
    assert (await call(http, "GET", "/api/v1/campaigns", 200, headers=acme))["items"] == []
    await call(http, "POST", f"/api/v1/campaigns/{created['id']}/approve", 403, headers=acme)
    mine = await call(http, "GET", "/api/v1/audit", 200, headers=acme)
    assert mine
    assert all(json.loads(line)["customer_id"] == "acme" for line in mine.splitlines())
    assert await call(http, "GET", "/api/v1/audit?customer=globex", 200, headers=acme) == ""
