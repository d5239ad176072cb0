"""REST API, /metrics, /healthz and the fleet page over a seeded store (both databases)."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from collector.wire import encode
from controller.metrics import Metrics
from controller.storage import Received, Store
from controller.web import AppState, make_app
from fernwart_cli import devices as devices_cli
from tests.controller.conftest import auth_headers, make_batch, make_observation, make_status, open_store
from tests.fixtures.net import free_port


def _received(message: Any) -> Received:
    return Received(f"fernwart/v1/{message.site_id}/x", encode(message), datetime.now(UTC), message=message)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    tenants = {"site-1": "acme", "site-2": "acme", "site-3": "globex"}
    sites = (("site-1", "agent-1"), ("site-2", "agent-2"), ("site-3", "agent-3"))
    async with open_store(
        database_url, sites=sites, tenant_of=lambda site: tenants.get(site, "default")
    ) as store:
        items = [_received(make_status("site-1", "agent-1", intervals={"d-00": 60.0}))]
        for site, agent, vendor in (
            ("site-1", "agent-1", "cisco"),
            ("site-2", "agent-2", "yealink"),
            ("site-3", "agent-3", "cisco"),
        ):
            observations = [
                make_observation(f"d-{i:02}", vendor=vendor, firmware=f"1.{i}") for i in range(10)
            ]
            items.append(_received(make_batch(site, agent, 0, observations)))
        items.append(
            _received(make_batch("site-1", "agent-1", 1, [make_observation("d-00", firmware="2.0")]))
        )
        result = await store.write_flush(items)
        assert result.stored_batches == 4
        yield store


@pytest.fixture
async def client(store: Store) -> AsyncIterator[TestClient[Any, Any]]:
    metrics = Metrics()
    metrics.observations.inc(31)
    app = make_app(AppState(store, metrics, lambda: True))
    async with TestClient(TestServer(app, host="127.0.0.1"), headers=await auth_headers(store)) as client:
        yield client


async def _get(client: TestClient[Any, Any], path: str, status: int = 200) -> Any:
    resp = await client.get(path)
    assert resp.status == status, await resp.text()
    return await resp.json()


async def test_devices_filters(client: TestClient[Any, Any]) -> None:
    page = await _get(client, "/api/v1/devices")
    assert page["total"] == 30
    assert page["next_offset"] is None
    assert (await _get(client, "/api/v1/devices?tenant=acme"))["total"] == 20
    assert (await _get(client, "/api/v1/devices?tenant=acme&vendor=cisco"))["total"] == 10
    site3 = await _get(client, "/api/v1/devices?site=site-3")
    assert {item["tenant"] for item in site3["items"]} == {"globex"}
    assert (await _get(client, "/api/v1/devices?status=active"))["total"] == 30
    assert (await _get(client, "/api/v1/devices?status=stale"))["total"] == 0
    assert (await _get(client, "/api/v1/devices?vendor=poly"))["items"] == []


async def test_devices_paging_visits_every_device_once(client: TestClient[Any, Any]) -> None:
    seen: list[tuple[str, str]] = []
    offset: int | None = 0
    while offset is not None:
        page = await _get(client, f"/api/v1/devices?limit=7&offset={offset}")
        assert len(page["items"]) <= 7
        seen.extend((item["site_id"], item["device_id"]) for item in page["items"])
        offset = page["next_offset"]
    assert len(seen) == len(set(seen)) == 30


@pytest.mark.parametrize(
    ("query", "loc", "fragment"),
    [
        ("limit=0", ["query", "limit"], "greater than or equal to 1"),
        ("limit=abc", ["query", "limit"], "valid integer"),
        ("limit=5000", ["query", "limit"], "less than or equal to 1000"),
        ("offset=-1", ["query", "offset"], "greater than or equal to 0"),
        ("status=broken", ["query", "status"], "'unknown', 'active' or 'stale'"),
        ("colour=red", ["query", "colour"], "Extra inputs are not permitted"),
    ],
)
async def test_bad_query_is_422_with_the_field(
    client: TestClient[Any, Any], query: str, loc: list[str], fragment: str
) -> None:
    body = await _get(client, f"/api/v1/devices?{query}", status=422)
    assert [error["loc"] for error in body["errors"]] == [loc]
    assert fragment in body["errors"][0]["msg"]


async def test_repeated_query_parameter_is_400(client: TestClient[Any, Any]) -> None:
    body = await _get(client, "/api/v1/devices?site=a&site=b", status=400)
    assert body["errors"] == [{"loc": ["query", "site"], "msg": "given more than once; give it once"}]


async def test_device_detail_has_firmware_history(client: TestClient[Any, Any]) -> None:
    page = await _get(client, "/api/v1/devices?site=site-1&limit=1")
    device = await _get(client, f"/api/v1/devices/{page['items'][0]['id']}")
    assert device["device_id"] == "d-00"
    assert device["interval_s"] == 60.0
    assert [h["version"] for h in device["firmware_history"]] == ["1.0", "2.0"]
    assert device["firmware_version"] == "2.0"
    # Every software component is listed, with its own history (the firmware is one of them).
    assert device["components"] == [{"component": "firmware", "version": "2.0", "scheme": None}]
    assert [(h["component"], h["version"]) for h in device["component_history"]] == [
        ("firmware", "1.0"),
        ("firmware", "2.0"),
    ]
    missing = await _get(client, "/api/v1/devices/999999", status=404)
    assert missing["errors"][0]["loc"] == ["path", "id"]
    bad = await _get(client, "/api/v1/devices/abc", status=422)
    assert bad["errors"][0]["msg"] == "expected a device id (a positive integer)"


async def test_agents(client: TestClient[Any, Any]) -> None:
    agents = (await _get(client, "/api/v1/agents"))["items"]
    assert [(a["agent_id"], a["site_id"], a["state"], a["last_seq"]) for a in agents] == [
        ("agent-1", "site-1", "online", 1),
        ("agent-2", "site-2", "online", 0),
        ("agent-3", "site-3", "online", 0),
    ]
    assert agents[0]["intervals_s"] == {"d-00": 60.0}


async def test_healthz_metrics_and_fleet_page(client: TestClient[Any, Any]) -> None:
    assert await _get(client, "/healthz") == {"status": "ok", "database": "ok", "mqtt": "connected"}
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    text = await resp.text()
    assert "fernwart_ingest_observations_total 31.0" in text
    assert 'fernwart_ingest_rejected_total{reason="agent_mismatch"} 0.0' in text
    resp = await client.get("/")
    html = await resp.text()
    assert resp.status == 200
    assert html.count('<tr class="active">') + html.count('<tr class="unknown">') == 30
    assert html.count('<tr class="online">') == 3
    assert "3 agents (0 offline)" in html


async def test_cli_devices_list(
    client: TestClient[Any, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    base = str(client.make_url("")).rstrip("/")
    token = client.session.headers["Authorization"].removeprefix("Bearer ")
    with pytest.raises(devices_cli.ApiError) as no_token:
        await devices_cli.fetch_devices(base, {})
    assert no_token.value.code == 77
    items = await devices_cli.fetch_devices(base, {"tenant": "globex"}, token=token)
    assert len(items) == 10
    assert {item["site_id"] for item in items} == {"site-3"}
    with pytest.raises(devices_cli.ApiError) as refused:
        await devices_cli.fetch_devices(base, {"status": "nope"}, token=token)
    assert refused.value.code == devices_cli.EX_DATAERR
    assert "query.status" in str(refused.value)
    # The JSON output, through the argparse entry (asyncio.run needs its own thread here).
    monkeypatch.setenv("FERNWART_TOKEN", token)
    args = argparse.Namespace(
        controller=base, json=True, tenant="acme", site=None, vendor="yealink", status=None, token_file=None
    )
    code = await asyncio.to_thread(devices_cli.list_devices, args)
    assert code == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == 10
    assert {item["vendor"] for item in listed} == {"yealink"}


def test_cli_devices_unreachable_controller(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(
        controller=f"http://127.0.0.1:{free_port()}",
        json=False,
        tenant=None,
        site=None,
        vendor=None,
        status=None,
        token_file=None,
    )
    assert devices_cli.list_devices(args) == devices_cli.EX_UNAVAILABLE
    assert "cannot reach the controller" in capsys.readouterr().err
