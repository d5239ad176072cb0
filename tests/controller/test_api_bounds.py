"""Hostile query and path values: every REST handler answers 4xx, never 500. Both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from controller.matching import MatchingService
from controller.metrics import Metrics
from controller.storage import Store
from controller.web import AppState, make_app
from tests.controller.conftest import auth_headers

Client = TestClient[Any, Any]

HOSTILE = [
    str(2**63),
    str(2**63 - 1),
    str(2**64),
    str(10**30),
    "9" * 19,
    "-1",
    "-0",
    "²",
    "١٢",
    "\uff11\uff12",
    "",
    " 1",
    "1e3",
    "0x10",
    "NaN",
    "inf",
    "1.5",
    "true",
    "\x00",
    "a\x00b",
    "\ufffd",
    "a" * 5000,
    "%ff",
    "../../etc/passwd",
]

# Raw, percent-encoded path segments (the decoding is the server's).
RAW_SEGMENTS = ["%00", "%ff", "%C2%B2", "%D9%A1", "1%00", "%2e%2e"]

QUERIES = {
    "/api/v1/devices": ["tenant", "site", "vendor", "status", "limit", "offset"],
    "/api/v1/advisories": ["limit", "offset"],
    "/api/v1/findings": [
        "tenant",
        "site",
        "device",
        "advisory",
        "severity",
        "kev",
        "status",
        "limit",
        "offset",
    ],
}
PATHS = [
    ("GET", "/api/v1/devices/{}"),
    ("GET", "/api/v1/devices/{}/findings"),
    ("GET", "/api/v1/advisories/{}"),
    ("DELETE", "/api/v1/advisories/{}"),
]


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[Client]:
    async with Store.open(database_url) as store:
        metrics = Metrics()
        matching = MatchingService(store, metrics.registry)
        await matching.start()
        client: Client = TestClient(
            TestServer(make_app(AppState(store, metrics, lambda: True, matching)), host="127.0.0.1"),
            headers=await auth_headers(store),
        )
        await client.start_server()
        try:
            yield client
        finally:
            await client.close()


async def _status(client: Client, method: str, url: URL) -> int:
    async with client.request(method, url) as resp:
        await resp.read()
        assert resp.status not in {401, 403}, "the handlers must be reached, not the auth layer"
        return resp.status


async def test_hostile_query_values_are_refused_not_500(client: Client) -> None:
    failures = []
    for path, names in QUERIES.items():
        for name in names:
            for value in HOSTILE:
                url = URL(path).with_query({name: value})
                status = await _status(client, "GET", url)
                if status >= 500:
                    failures.append((path, name, value[:20], status))
    assert failures == []


async def test_bounded_offsets_are_422(client: Client) -> None:
    for path in QUERIES:
        for value in (str(2**63), str(10**30), "-1", "²"):
            assert await _status(client, "GET", URL(path).with_query({"offset": value})) == 422
        assert await _status(client, "GET", URL(path).with_query({"offset": "1000000"})) == 200


async def test_hostile_path_ids_are_refused_not_500(client: Client) -> None:
    failures = []
    for method, template in PATHS:
        segments = [quote(value, safe="") for value in HOSTILE if value] + RAW_SEGMENTS
        for segment in segments:
            url = URL(template.format(segment), encoded=True)
            status = await _status(client, method, url)
            if status >= 500 or status == 200:
                failures.append((method, template, segment[:20], status))
    assert failures == []


@pytest.mark.parametrize("raw", ["²", "١٢", "\uff11\uff12", str(2**63), "-1", "1e3"])
async def test_a_device_id_must_be_ascii_digits(client: Client, raw: str) -> None:
    for template in ("/api/v1/devices/{}", "/api/v1/devices/{}/findings"):
        url = URL(template.format(quote(raw, safe="")), encoded=True)
        assert await _status(client, "GET", url) == 422
