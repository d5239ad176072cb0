"""Advisory catalog in the controller: import over REST, findings per device, incremental updates.

The store is written through its real flush path (the same call ingest makes), so the matching
service hears about firmware changes exactly as in production. Both databases.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from collector.wire import encode
from controller.matching import MatchingService
from controller.metrics import Metrics
from controller.storage import Received, Store
from controller.web import AppState, make_app
from controller.web.catalog_api import MAX_BODY_BYTES
from firmware_catalog import parse_advisory
from tests.controller.catalog_helpers import (
    CSRF,
    DEVICES,
    IPPHONE,
    KEV,
    NEW_8851,
    ROOMOS,
    TCE,
    TP,
    VOIP,
    advisory_files,
    by_device,
    lab_observations,
    observation,
)
from tests.controller.conftest import auth_headers, make_batch, open_store

Client = TestClient[Any, Any]


def _received(message: Any) -> Received:
    return Received(f"fernwart/v1/{message.site_id}/obs", encode(message), datetime.now(UTC), message=message)


@dataclass
class Env:
    store: Store
    metrics: Metrics
    matching: MatchingService
    client: Client
    stop: asyncio.Event
    task: asyncio.Task[None]
    seq: int = 1

    async def observe(self, *observations: Any) -> None:
        batch = make_batch("site-1", "agent-1", self.seq, list(observations), batch_id=uuid.uuid4())
        self.seq += 1
        await self.store.write_flush([_received(batch)])


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    async with open_store(database_url, tenant_of=lambda _site: "acme") as store:
        await store.write_flush([_received(make_batch("site-1", "agent-1", 0, lab_observations()))])
        yield store


async def _start(store: Store) -> tuple[Env, Any]:
    metrics = Metrics()
    matching = MatchingService(store, metrics.registry)
    await matching.start()
    store.add_flush_listener(matching.on_flush)
    stop = asyncio.Event()
    task = asyncio.create_task(matching.run(stop))
    client: Client = TestClient(
        TestServer(make_app(AppState(store, metrics, lambda: True, matching)), host="127.0.0.1"),
        headers=await auth_headers(store),
    )
    await client.start_server()
    return Env(store, metrics, matching, client, stop, task), client


async def _stop(env: Env) -> None:
    env.stop.set()
    async with asyncio.timeout(10):
        await env.task
    await env.client.close()


@pytest.fixture
async def env(store: Store) -> AsyncIterator[Env]:
    env, _ = await _start(store)
    try:
        yield env
    finally:
        await _stop(env)


async def _json(client: Client, method: str, path: str, status: int, **kwargs: Any) -> Any:
    if "data" in kwargs:  # as the CLI sends them
        kwargs.setdefault("headers", {"Content-Type": "application/json"})
    resp = await client.request(method, path, **kwargs)
    text = await resp.text()
    assert resp.status == status, text
    return json.loads(text) if text else None


async def _import(client: Client, *ids: str) -> list[Any]:
    return [
        await _json(client, "POST", "/api/v1/advisories", 201, data=path.read_bytes())
        for path in advisory_files(*ids)
    ]


async def _findings(client: Client, query: str = "") -> list[dict[str, Any]]:
    page = await _json(client, "GET", f"/api/v1/findings?limit=1000{query}", 200)
    assert page["total"] == len(page["items"])
    return list(page["items"])


async def _device_pk(client: Client, device_id: str) -> int:
    page = await _json(client, "GET", "/api/v1/devices?limit=1000", 200)
    return next(int(d["id"]) for d in page["items"] if d["device_id"] == device_id)


async def test_real_advisories_give_lab_devices_sensible_findings(env: Env) -> None:
    client = env.client
    imported = await _import(client)
    assert {r["advisory"]["id"] for r in imported} == {VOIP, CSRF, IPPHONE, TCE, ROOMOS, TP}
    again = await _json(client, "POST", "/api/v1/advisories", 200, data=advisory_files(TCE)[0].read_bytes())
    assert again["result"] == "unchanged"
    kev = await _json(client, "PUT", "/api/v1/kev", 200, data=KEV.read_bytes())
    assert kev["entries"] == 98
    assert kev["skipped"] == []

    found = by_device(await _findings(client))
    # RoomOS 11.14 Room Kit Pro: listed as affected by the TelePresence/RoomOS DoS advisory.
    assert found["ber-konf-2-12"][TCE]["status"] == "affected"
    assert found["ber-konf-2-12"][TCE]["severity"] == "high"
    # CE 9 Room Kit: the TelePresence CE advisories concern it; its release is not listed.
    assert set(found["muc-raum-1-04"]) == {TCE, ROOMOS, TP}
    assert {f["status"] for f in found["muc-raum-1-04"].values()} == {"unknown"}
    # The enterprise 8851 on 11.5(1): affected by the KEV advisory, first fixed in its train.
    voip = found["sep-enterprise-8851"][VOIP]
    assert (voip["status"], voip["kev"], voip["first_fixed"]) == ("affected", True, "11.7(1)")
    assert voip["kev_due_date"] == "2022-05-03"
    assert found["sep-enterprise-8851"][CSRF]["first_fixed"] == "12.5(1)SR1"
    # Yealink and Poly: no advisory of theirs in the catalog.
    assert "yealink-mp56-1a56" not in found
    assert "ccx600-empfang" not in found

    kev_first = await _findings(client, "&kev=true")
    assert kev_first
    assert all(f["kev"] for f in kev_first)
    everything = await _findings(client)
    # What needs action first: affected, then unknown, fixed, not_affected; within each, KEV
    # first, then CVSS. (KEV first regardless of status put not_affected KEV findings on top.)
    rank = {"affected": 0, "unknown": 1, "fixed": 2, "not_affected": 3}
    order = [
        (rank[f["status"]], not f["kev"], -(f["cvss"] if f["cvss"] is not None else -1)) for f in everything
    ]
    assert order == sorted(order)
    assert everything[0]["status"] == "affected"
    assert {f["status"] for f in kev_first} > {"affected"}  # the KEV advisory's not_affected phones
    assert everything.index(next(f for f in kev_first if f["status"] == "not_affected")) > max(
        i for i, f in enumerate(everything) if f["status"] == "affected"
    )
    affected = await _findings(client, "&status=affected&tenant=acme")
    assert {f["device_id"] for f in affected} == {"ber-konf-2-12", "sep-enterprise-8851"}
    assert await _findings(client, "&tenant=other") == []
    assert {f["severity"] for f in await _findings(client, "&severity=high")} == {"high"}

    listing = await _json(client, "GET", "/api/v1/advisories", 200)
    assert listing["total"] == 6
    rows = {item["id"]: item for item in listing["items"]}
    assert rows[VOIP]["kev"] is True
    assert rows[VOIP]["affected_devices"] == 1
    assert rows[TCE]["affected_devices"] == 1
    assert rows[TP]["devices"] == 1

    detail = await _json(client, "GET", f"/api/v1/advisories/{VOIP}", 200)
    assert detail["cves"] == ["CVE-2020-3161"]
    assert detail["kev_cves"] == ["CVE-2020-3161"]
    assert detail["product_tree"]
    statuses = {f["device_id"]: f["status"] for f in detail["findings"]}
    assert statuses["sep-enterprise-8851"] == "affected"
    assert statuses["sep5ca62d0088a1"] == "not_affected"
    # The advisory's CVSS on every finding of it, not_affected ones too (as in the listing).
    assert {(f["cvss"], f["severity"]) for f in detail["findings"]} == {(9.8, "critical")}
    assert rows[VOIP]["cvss"] == 9.8

    pk = await _device_pk(client, "sep-enterprise-8851")
    device = await _json(client, "GET", f"/api/v1/devices/{pk}/findings", 200)
    assert device["status"] == "affected"
    assert device["kev"] == 1
    assert device["recommendation"]["current"] == "sip88xx.11-5-1-18"
    assert device["recommendation"]["target"] is None  # IPPHONE lists versions but no fixed release
    mystery = await _json(
        client, "GET", f"/api/v1/devices/{await _device_pk(client, 'mystery-box')}/findings", 200
    )
    assert mystery["status"] == "unknown"
    assert mystery["recommendation"]["match_problem"] == "no firmware version reported"
    # No advisory of the catalog concerns a Yealink: not covered, which is not "not affected".
    yealink = await _json(
        client, "GET", f"/api/v1/devices/{await _device_pk(client, 'yealink-mp56-1a56')}/findings", 200
    )
    assert (yealink["status"], yealink["findings"]) == ("not_covered", [])
    assert yealink["recommendation"]["reason"] == "no advisory in the catalog concerns this product"

    exposition = (await (await client.get("/metrics")).text()).splitlines()
    assert 'fernwart_catalog_imports_total{result="added"} 6.0' in exposition
    assert 'fernwart_catalog_imports_total{result="unchanged"} 1.0' in exposition


async def test_new_firmware_is_rematched_and_recommendation_changes(env: Env) -> None:
    client = env.client
    await _import(client, VOIP, CSRF)
    pk = await _device_pk(client, "sep-enterprise-8851")
    before = await _json(client, "GET", f"/api/v1/devices/{pk}/findings", 200)
    assert before["recommendation"]["target"] == "12.5(1)SR1"
    assert {f["status"] for f in before["findings"]} == {"affected"}

    await env.observe(observation("sep-enterprise-8851", "cisco", "enterprise", "CP-8851", NEW_8851))

    async def fixed() -> bool:
        now = await _json(client, "GET", f"/api/v1/devices/{pk}/findings", 200)
        return bool({f["status"] for f in now["findings"]} == {"fixed"})

    async with asyncio.timeout(30):
        while not await fixed():
            await asyncio.sleep(0.05)
    after = await _json(client, "GET", f"/api/v1/devices/{pk}/findings", 200)
    assert after["status"] == "fixed"
    assert after["recommendation"]["current"] == NEW_8851
    assert after["recommendation"]["target"] is None
    assert after["recommendation"]["reason"] == "affected by no advisory"

    # A device nobody knew before is matched too.
    await env.observe(observation("sep-new-phone", "cisco", "enterprise", "CP-8851", "sip88xx.11-5-1-18"))

    async def new_device_matched() -> bool:
        return any(f["device_id"] == "sep-new-phone" for f in await _findings(client, f"&advisory={VOIP}"))

    async with asyncio.timeout(30):
        while not await new_device_matched():
            await asyncio.sleep(0.05)


async def test_advisory_imported_later_concerns_existing_devices(env: Env) -> None:
    client = env.client
    await _import(client, VOIP)
    assert IPPHONE not in by_device(await _findings(client)).get("sep-enterprise-8851", {})
    response = (await _import(client, IPPHONE))[0]
    assert response["devices_recomputed"] >= 3
    # Stored with the advisory, in the same transaction: visible as soon as the POST returned.
    found = by_device(await _findings(client))
    assert found["sep-enterprise-8851"][IPPHONE]["status"] == "affected"
    assert found["sep5ca62d0088a1"][IPPHONE]["status"] == "unknown"

    # A new revision that no longer names the MPP phones takes their findings away.
    document = json.loads(advisory_files(IPPHONE)[0].read_text())
    products = parse_advisory(document).products
    sip_only = [pid for pid, entry in products.items() if "Multiplatform" not in entry.product]
    document["document"]["tracking"]["version"] = "99"
    document["document"]["tracking"]["current_release_date"] = "2030-01-01T00:00:00Z"
    document["document"]["tracking"]["revision_history"].append(
        {"number": "99", "date": "2030-01-01T00:00:00Z", "summary": "test revision"}
    )
    document["vulnerabilities"][0]["product_status"] = {"known_affected": sip_only}
    replaced = await _json(client, "POST", "/api/v1/advisories", 200, data=json.dumps(document))
    assert replaced["result"] == "replaced"
    remaining = {f["device_id"] for f in await _findings(client, f"&advisory={IPPHONE}")}
    assert remaining == {"sep-enterprise-8851"}

    await _json(client, "DELETE", f"/api/v1/advisories/{VOIP}", 204)
    assert await _findings(client, f"&advisory={VOIP}") == []
    await _json(client, "GET", f"/api/v1/advisories/{VOIP}", 404)
    await _json(client, "DELETE", f"/api/v1/advisories/{VOIP}", 404)

    # Tracking ids are free text: one with slashes is served at its own path.
    slashed = json.loads(advisory_files(TP)[0].read_text())
    slashed["document"]["tracking"]["id"] = "ACME/2026/0001"
    await _json(client, "POST", "/api/v1/advisories", 201, data=json.dumps(slashed))
    detail = await _json(client, "GET", "/api/v1/advisories/ACME/2026/0001", 200)
    assert detail["id"] == "ACME/2026/0001"
    assert {f["device_id"] for f in detail["findings"]} == {"muc-raum-1-04"}
    await _json(client, "DELETE", "/api/v1/advisories/ACME/2026/0001", 204)


async def test_hostile_documents_are_rejected_and_the_rest_imports(env: Env) -> None:
    client = env.client
    broken = json.loads(advisory_files(CSRF)[0].read_text())
    broken["product_tree"]["branches"][0]["name"] = None
    error = await _json(client, "POST", "/api/v1/advisories", 422, data=json.dumps(broken))
    assert len(error["errors"]) == 1
    assert error["errors"][0]["document"]
    assert error["errors"][0]["path"].startswith("product_tree.branches[0]")

    not_json = await _json(client, "POST", "/api/v1/advisories", 422, data=b"{not json")
    assert not_json["errors"][0]["path"] == "$"
    nested = await _json(client, "POST", "/api/v1/advisories", 422, data=b"[" * 100_000)
    assert nested["errors"][0]["document"]
    await _json(client, "POST", "/api/v1/advisories", 413, data=b" " * (MAX_BODY_BYTES + 1))
    nul = json.loads(advisory_files(TP)[0].read_text())
    nul["document"]["notes"][0]["text"] = "zero \u0000 byte"
    error = await _json(client, "POST", "/api/v1/advisories", 422, data=json.dumps(nul))
    assert error["errors"][0] == {
        "document": TP,
        "path": "document.notes[0].text",
        "reason": "NUL character (\\u0000) in a string",
    }
    bad_kev = await _json(client, "PUT", "/api/v1/kev", 422, data=b'{"vulnerabilities": 3}')
    odd_kev = {
        "catalogVersion": "test",
        "vulnerabilities": [
            {"cveID": "CVE-2020-3161", "dateAdded": "2021-11-03", "vendorProject": "Cis\u0000co"},
            {"cveID": "not a CVE", "dateAdded": "2021-11-03"},
        ],
    }
    kev = await _json(client, "PUT", "/api/v1/kev", 200, data=json.dumps(odd_kev))
    assert kev["entries"] == 1
    assert kev["skipped"][0]["path"] == "vulnerabilities[1].cveID"
    assert bad_kev["errors"][0]["path"] == "vulnerabilities"

    await _import(client, VOIP, TCE)
    listing = await _json(client, "GET", "/api/v1/advisories", 200)
    assert {item["id"] for item in listing["items"]} == {VOIP, TCE}
    exposition = (await (await client.get("/metrics")).text()).splitlines()
    assert 'fernwart_catalog_imports_total{result="rejected"} 4.0' in exposition
    assert 'fernwart_catalog_kev_imports_total{result="rejected"} 1.0' in exposition


async def test_bad_query_parameters_name_the_parameter(env: Env) -> None:
    client = env.client
    for query, name in (("kev=maybe", "kev"), ("severity=urgent", "severity"), ("status=broken", "status")):
        error = await _json(client, "GET", f"/api/v1/findings?{query}", 422)
        assert error["errors"][0]["loc"] == ["query", name]
    error = await _json(client, "GET", "/api/v1/findings?limit=0", 422)
    assert error["errors"][0]["loc"] == ["query", "limit"]
    error = await _json(client, "GET", "/api/v1/findings?kev=true&kev=false", 400)
    assert error["errors"][0]["loc"] == ["query", "kev"]
    error = await _json(client, "GET", "/api/v1/findings?colour=red", 422)
    assert error["errors"][0]["loc"] == ["query", "colour"]
    error = await _json(client, "GET", "/api/v1/advisories?offset=-1", 422)
    assert error["errors"][0]["loc"] == ["query", "offset"]
    await _json(client, "GET", "/api/v1/devices/abc/findings", 422)
    await _json(client, "GET", "/api/v1/devices/999999/findings", 404)
    await _json(client, "GET", "/api/v1/advisories/nope", 404)


async def test_restart_reloads_catalog_and_serves_the_same_findings(store: Store) -> None:
    env, client = await _start(store)
    try:
        await _import(client, VOIP, CSRF, TCE, ROOMOS)
        await _json(client, "PUT", "/api/v1/kev", 200, data=KEV.read_bytes())
        before = await _findings(client)
        advisories = await _json(client, "GET", "/api/v1/advisories", 200)
    finally:
        await _stop(env)

    env, client = await _start(store)
    try:
        assert len(env.matching.catalog) == 4
        assert len(env.matching.catalog.kev) == 98
        after = await _findings(client)
        strip = [{k: v for k, v in f.items() if k != "updated_at"} for f in before]
        assert [{k: v for k, v in f.items() if k != "updated_at"} for f in after] == strip
        assert await _json(client, "GET", "/api/v1/advisories", 200) == advisories
        assert (await _import(client, IPPHONE))[0]["result"] == "added"
    finally:
        await _stop(env)


async def test_without_matching_the_catalog_endpoints_answer_503(store: Store) -> None:
    app = make_app(AppState(store, Metrics(CollectorRegistry()), lambda: True))
    async with TestClient(TestServer(app, host="127.0.0.1"), headers=await auth_headers(store)) as client:
        resp = await client.get("/api/v1/findings")
        assert resp.status == 503


async def test_two_instances_share_the_catalog_and_write_findings_in_turn(
    store: Store, database_url: str
) -> None:
    env, client = await _start(store)
    try:
        await _import(client, VOIP, CSRF)
        async with open_store(database_url, tenant_of=lambda _site: "acme") as other_store:
            second = MatchingService(other_store, CollectorRegistry())
            await second.start()  # loads what the first instance imported
            assert {advisory.id for advisory in second.catalog} == {VOIP, CSRF}
            await env.observe(observation("sep-enterprise-8851", "cisco", "enterprise", "CP-8851", NEW_8851))
            # Both instances rewrite the same devices at the same time (each heard of a change).
            keys = [("site-1", device[0]) for device in DEVICES]
            async with asyncio.timeout(60):
                await asyncio.gather(
                    *(service.recompute_devices(keys) for service in (env.matching, second) for _ in range(3))
                )
            # An advisory the first instance imported later, concerning none of the devices, can
            # be deleted through the second one, which never loaded it.
            document = json.loads(advisory_files(IPPHONE)[0].read_text())
            products = parse_advisory(document).products
            small_business = [pid for pid, entry in products.items() if "Small Business" in entry.product]
            document["document"]["tracking"]["id"] = "fw-test-small-business"
            document["vulnerabilities"][0]["product_status"] = {"known_affected": small_business}
            added = await _json(client, "POST", "/api/v1/advisories", 201, data=json.dumps(document))
            assert added["devices_recomputed"] == 0
            assert await second.remove_advisory("fw-test-small-business") == 0
            assert await second.remove_advisory("fw-test-small-business") is None
        mine = by_device(await _findings(client))["sep-enterprise-8851"]
        assert {advisory: f["status"] for advisory, f in mine.items()} == {VOIP: "fixed", CSRF: "fixed"}
        await _json(client, "GET", "/api/v1/advisories/fw-test-small-business", 404)
        findings = await _findings(client)
        assert len({(f["device_id"], f["advisory_id"]) for f in findings}) == len(findings)
    finally:
        await _stop(env)
