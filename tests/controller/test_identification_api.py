"""The device API says how a device was identified, and why not when nothing matched."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from collector.model import Identity, Observation
from collector.snmp.identify import identify
from collector.wire import encode
from controller.metrics import Metrics
from controller.storage import Received
from controller.web import AppState, make_app
from tests.controller.conftest import auth_headers, make_batch, open_store

CODEC = (
    "Cisco Codec SoftW: RoomOS 11.17.1.7 2c3f1a9b0e4 MCU: Cisco Room Kit Pro"  # noqa: ISC003
    + " Date: 2024-07-15 S/N: FOC2433P1DK"
)


def _observation(device_id: str, sys_descr: str, sys_object_id: str) -> Observation:
    """An observation as the SNMP driver builds it: identity, plus the fingerprint or the reason in raw."""
    found = identify(sys_descr, sys_object_id)
    raw = {"sysDescr": sys_descr, "sysObjectID": sys_object_id}
    if found.rule is not None:
        raw["fingerprint"] = found.rule
    if found.reason is not None:
        raw["identification"] = found.reason
    return Observation(
        device_id=device_id,
        driver="snmp",
        observed_at=datetime.now(UTC),
        identity=Identity(vendor=found.vendor, family=found.family, model=found.model, serial=found.serial),
        raw=raw,
    )


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[TestClient[Any, Any]]:
    async with open_store(database_url, sites=(("site-1", "agent-1"),), tenant_of=lambda _: "acme") as store:
        batch = make_batch(
            "site-1",
            "agent-1",
            0,
            [
                _observation("codec", CODEC, "1.3.6.1.4.1.5596.150.6.4.1"),
                _observation("mt", "router", "1.3.6.1.4.1.14988.1"),
            ],
        )
        message = Received("fernwart/v1/site-1/x", encode(batch), datetime.now(UTC), message=batch)
        assert (await store.write_flush([message])).stored_batches == 1
        app = make_app(AppState(store, Metrics(), lambda: True))
        async with TestClient(TestServer(app, host="127.0.0.1"), headers=await auth_headers(store)) as client:
            yield client


async def _device(client: TestClient[Any, Any], store_id: str) -> Any:
    page = await (await client.get("/api/v1/devices?site=site-1")).json()
    pk = next(item["id"] for item in page["items"] if item["device_id"] == store_id)
    resp = await client.get(f"/api/v1/devices/{pk}")
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_latest_identification_names_the_fingerprint_or_says_why_not(
    client: TestClient[Any, Any],
) -> None:
    codec = (await _device(client, "codec"))["latest"]["identification"]
    assert codec == {
        "vendor": "cisco",
        "family": "roomos",
        "model": "Cisco Room Kit Pro",
        "fingerprint": "cisco/codec-roomos",
        "reason": None,
        "sys_descr": CODEC,
        "sys_object_id": "1.3.6.1.4.1.5596.150.6.4.1",
    }
    unknown = (await _device(client, "mt"))["latest"]["identification"]
    assert (unknown["vendor"], unknown["family"], unknown["fingerprint"]) == ("mikrotik", "unknown", None)
    assert "sysDescr 'router'" in unknown["reason"]
    assert "enterprise 14988 (MikroTik) belongs to mikrotik" in unknown["reason"]
