"""Paging (Graph ``@odata.nextLink``, Webex ``Link``), the Webex token refresh and the budget."""

from __future__ import annotations

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from collector.errors import BadResponse
from collector.http import (
    ApiClient,
    RefreshTokenGrant,
    RequestBudget,
    TokenCache,
    fix_webex_next,
    link_pages,
    odata_pages,
    parse_link_header,
)
from tests.collector.http_server import Canned, scripted


async def test_odata_pages_follow_absolute_and_relative_next_links() -> None:
    async with scripted() as (script, base), aiohttp.ClientSession() as session:
        script.on(
            "/beta/teamwork/devices",
            Canned(
                200, {"value": [1, 2], "@odata.nextLink": base + "/beta/teamwork/devices?$skiptoken=P2%3d"}
            ),
            # The documented relative form, without the version segment.
            Canned(200, {"value": [3], "@odata.nextLink": "/teamwork/devices?$skiptoken=P3"}),
            Canned(200, {"value": [4]}),
        )
        client = ApiClient(session, vendor="graph", base_url=base + "/beta")
        items = [i async for page in odata_pages(client, "/teamwork/devices", {"$top": "2"}) for i in page]
    assert items == [1, 2, 3, 4]
    assert [s.path_qs for s in script.seen] == [
        "/beta/teamwork/devices?$top=2",
        "/beta/teamwork/devices?$skiptoken=P2%3d",  # verbatim: the skiptoken is not re-encoded
        "/beta/teamwork/devices?$skiptoken=P3",
    ]


async def test_odata_pages_stop_on_a_looping_next_link() -> None:
    async with scripted() as (script, base), aiohttp.ClientSession() as session:
        script.on("/v1.0/x", Canned(200, {"value": [1], "@odata.nextLink": base + "/v1.0/x"}))
        client = ApiClient(session, vendor="graph", base_url=base + "/v1.0")
        with pytest.raises(BadResponse, match="repeats a page"):
            _ = [p async for p in odata_pages(client, "/x")]
    assert script.count("/v1.0/x") == 1


async def test_odata_page_without_value_is_a_bad_response() -> None:
    async with scripted() as (script, base), aiohttp.ClientSession() as session:
        script.on("/x", Canned(200, {"items": []}))
        client = ApiClient(session, vendor="graph", base_url=base)
        with pytest.raises(BadResponse, match="'value' list"):
            _ = [p async for p in odata_pages(client, "/x")]


async def test_link_pages_repair_max_null_and_dropped_filters() -> None:
    async with scripted() as (script, base), aiohttp.ClientSession() as session:
        script.on(
            "/v1/devices",
            Canned(200, {"items": ["a"]}, {"Link": f'<{base}/v1/devices?max=null&start=1>; rel="next"'}),
            Canned(200, {"items": ["b"]}, {"Link": f'<{base}/v1/devices?start=0>; rel="first"'}),
        )
        client = ApiClient(session, vendor="webex", base_url=base, client_request_id_header=None)
        params = {"type": "roomdesk", "max": "1"}
        items = [i async for page in link_pages(client, "/v1/devices", params) for i in page]
    assert items == ["a", "b"]
    second = script.seen[1].path_qs
    assert "max=null" not in second
    assert "type=roomdesk" in second


def test_parse_link_header_reads_every_rel() -> None:
    value = '<https://x/v1/p?after=Y2>; rel="next", <https://x/v1/p>; rel="first prev"'
    assert parse_link_header(value) == {
        "next": "https://x/v1/p?after=Y2",
        "first": "https://x/v1/p",
        "prev": "https://x/v1/p",
    }
    assert parse_link_header(None) == {}


@given(st.text(max_size=80))
def test_parse_link_header_never_raises(value: str) -> None:
    assert isinstance(parse_link_header(value), dict)


def test_fix_webex_next_keeps_what_the_server_gave() -> None:
    url = fix_webex_next("https://w/v1/devices?max=100&after=abc", {"type": "phone"})
    assert dict(url.query) == {"max": "100", "after": "abc", "type": "phone"}


async def test_webex_refresh_grant_rotates_the_refresh_token() -> None:
    body1 = {
        "access_token": "acc-1",
        "expires_in": 1209599,
        "refresh_token": "ref-2",
        "refresh_token_expires_in": 7776000,
    }
    body2 = {
        "access_token": "acc-2",
        "expires_in": 1209599,
        "refresh_token": "ref-3",
        "refresh_token_expires_in": 7776000,
    }
    async with scripted() as (script, base), aiohttp.ClientSession() as session:
        script.on("/v1/access_token", Canned(200, body1), Canned(200, body2))
        script.on(
            "/v1/devices", Canned(401, {"message": "expired", "trackingId": "T1"}), Canned(200, {"items": []})
        )
        api = ApiClient(session, vendor="webex", base_url=base, client_request_id_header=None)
        grant = RefreshTokenGrant(
            api, client_id="cid", client_secret=SecretStr("csecret"), refresh_token=SecretStr("ref-1")
        )
        client = ApiClient(
            session, vendor="webex", base_url=base, auth=TokenCache(grant), client_request_id_header=None
        )
        assert await client.get_json("/v1/devices") == {"items": []}
    refreshes = [s.form["refresh_token"] for s in script.seen if s.path_qs == "/v1/access_token"]
    assert refreshes == ["ref-1", "ref-2"]


async def test_budget_spaces_requests_beyond_the_burst() -> None:
    now = [0.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    budget = RequestBudget(rate_per_s=2.0, burst=3, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        await budget.acquire()
    assert waits == [0.5, 0.5]
    assert budget.waited_s == 1.0


def test_budget_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="rate_per_s > 0"):
        RequestBudget(rate_per_s=0, burst=1)
