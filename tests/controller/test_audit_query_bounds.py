"""The audit export's ``since`` parameter: 422 for what cannot be compared, never 500.

Found: ``since=2026-01-01T00:00:00`` (no offset) and offsets that leave the datetime range once in
UTC (``0001-01-01T00:00:00+23:59``, ``9999-12-31T23:59:59-23:59``) answered 500 on both databases.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from controller.storage import Store
from tests.controller.test_campaigns_api import POLICY, WINDOWS, Client, call, client  # noqa: F401


@pytest.mark.parametrize(
    "since", ["2026-01-01T00:00:00", "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59"]
)
async def test_a_since_without_offset_or_out_of_range_is_422(
    client: tuple[Client, Store],  # noqa: F811
    since: str,
) -> None:
    http, _store = client
    await call(http, "PUT", "/api/v1/contracts", 200, {"policy": POLICY, "windows": WINDOWS})
    refused = await call(http, "GET", f"/api/v1/audit?since={quote(since)}", 422)
    assert [e["loc"] for e in refused["errors"]] == [["query", "since"]]


async def test_a_since_with_any_offset_is_compared_in_utc(client: tuple[Client, Store]) -> None:  # noqa: F811
    http, _store = client
    await call(http, "PUT", "/api/v1/contracts", 200, {"policy": POLICY, "windows": WINDOWS})
    every = await call(http, "GET", "/api/v1/audit", 200)
    assert every.strip()
    far_east = await call(http, "GET", f"/api/v1/audit?since={quote('2000-01-01T00:00:00+14:00')}", 200)
    assert far_east == every
    later = await call(http, "GET", f"/api/v1/audit?since={quote('2999-01-01T00:00:00-12:00')}", 200)
    assert later == ""
