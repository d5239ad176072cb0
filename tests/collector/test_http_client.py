"""The shared HTTP layer against a scripted server on loopback: retries, deadline, errors."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr
from structlog.testing import capture_logs

from collector.errors import (
    AuthFailed,
    BadResponse,
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    Throttled,
    Unreachable,
)
from collector.http import (
    AccessToken,
    ApiClient,
    ClientCredentials,
    RetryPolicy,
    TokenCache,
    parse_retry_after,
)
from tests.collector.http_server import Canned, scripted

GRAPH_429 = {
    "error": {
        "code": "TooManyRequests",
        "message": "Please retry again later.",
        "innerError": {"code": "429", "request-id": "94fb3b52-452a-4535-a601-69e0a90e3aa2", "status": "429"},
    }
}


class Sleeps:
    """Records the waits instead of waiting: the tests check what was asked, not how long it took."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def _client(session: aiohttp.ClientSession, base: str, sleeps: Sleeps, **kw: object) -> ApiClient:
    return ApiClient(session, vendor="graph", base_url=base, sleep=sleeps, **kw)  # type: ignore[arg-type]


async def test_429_waits_what_retry_after_says_then_succeeds() -> None:
    sleeps = Sleeps()
    async with scripted() as (script, base), aiohttp.ClientSession() as session:
        script.on(
            "/v1.0/x",
            Canned(429, GRAPH_429, {"Retry-After": "7"}),
            Canned(503, None, {"Retry-After": "2"}),
            Canned(200, {"value": [1]}),
        )
        client = _client(session, base + "/v1.0", sleeps)
        assert await client.get_json("/x") == {"value": [1]}
    assert sleeps.waits == [7.0, 2.0]
    assert script.count("/v1.0/x") == 3
    assert client.requests_made == 3


async def test_429_without_retry_after_uses_the_jittered_backoff() -> None:
    sleeps = Sleeps()
    async with scripted() as (script, base), aiohttp.ClientSession() as session:
        script.on("/x", Canned(429, ""), Canned(429, ""), Canned(200, {"ok": True}))
        client = _client(session, base, sleeps, policy=RetryPolicy(retries=3, min_s=1.0, max_s=8.0))
        assert await client.get_json("/x") == {"ok": True}
    assert len(sleeps.waits) == 2
    assert 1.0 <= sleeps.waits[0] <= 1.0 * 2
    assert 1.0 <= sleeps.waits[1] <= 4.0


async def test_throttled_after_retries_names_the_request_id() -> None:
    sleeps = Sleeps()
    async with scripted() as (script, base), aiohttp.ClientSession() as session:
        script.on("/x", Canned(429, GRAPH_429, {"Retry-After": "1"}))
        client = _client(session, base, sleeps, policy=RetryPolicy(retries=2))
        with pytest.raises(Throttled) as caught:
            await client.get_json("/x")
    assert script.count("/x") == 3  # bounded: retries + 1, no storm
    assert caught.value.retry_after_s == 1.0
    assert "94fb3b52-452a-4535-a601-69e0a90e3aa2" in str(caught.value)
    assert "TooManyRequests" in str(caught.value)


async def test_retry_after_longer_than_the_deadline_is_not_waited_for() -> None:
    sleeps = Sleeps()
    async with scripted() as (script, base), aiohttp.ClientSession() as session:
        script.on("/x", Canned(429, GRAPH_429, {"Retry-After": "100"}))
        client = _client(session, base, sleeps, deadline_s=30)
        with pytest.raises(Throttled):
            await client.get_json("/x")
    assert sleeps.waits == []
    assert script.count("/x") == 1


@pytest.mark.parametrize(
    ("status", "error"),
    [(403, Forbidden), (404, NotFound), (410, Gone), (409, Conflict), (400, BadResponse), (500, Unreachable)],
)
async def test_each_status_becomes_one_of_our_errors_with_the_request_id(status: int, error: type) -> None:
    body = {
        "error": {"code": "Code" + str(status), "message": "words", "innerError": {"request-id": "rid-1"}}
    }
    async with scripted() as (script, base), aiohttp.ClientSession() as session:
        script.on("/x", Canned(status, body, {"request-id": "rid-header"}))
        client = _client(session, base, Sleeps(), policy=RetryPolicy(retries=1))
        with pytest.raises(error) as caught:
            await client.get_json("/x")
    assert "rid-header" in str(caught.value)
    assert f"answered {status} Code{status}: words" in str(caught.value)


async def test_webex_tracking_id_is_quoted() -> None:
    body = {"message": "The requested resource could not be found.", "trackingId": "ROUTER_ABC"}
    async with scripted() as (script, base), aiohttp.ClientSession() as session:
        script.on("/v1/devices/x", Canned(404, body))
        client = ApiClient(session, vendor="webex", base_url=base, client_request_id_header=None)
        with pytest.raises(NotFound, match="ROUTER_ABC"):
            await client.get_json("/v1/devices/x")


async def test_malformed_json_is_a_bad_response() -> None:
    async with scripted() as (script, base), aiohttp.ClientSession() as session:
        script.on("/x", Canned(200, '{"value": [', {"Content-Type": "application/json", "request-id": "r9"}))
        with pytest.raises(BadResponse, match=r"not JSON \(request-id r9\)"):
            await _client(session, base, Sleeps()).get_json("/x")


async def test_a_server_slower_than_the_deadline_is_unreachable() -> None:
    release = asyncio.Event()
    async with scripted() as (script, base), aiohttp.ClientSession() as session:
        script.on("/x", Canned(200, {}, hang=release))
        client = _client(session, base, Sleeps(), deadline_s=0.2)
        try:
            with pytest.raises(Unreachable, match=r"no answer within 0\.2s"):
                await client.get_json("/x")
        finally:
            release.set()


async def test_connection_refused_is_retried_then_unreachable() -> None:
    sleeps = Sleeps()
    async with aiohttp.ClientSession() as session:
        client = _client(session, "http://127.0.0.1:9", sleeps, policy=RetryPolicy(retries=2))
        with pytest.raises(Unreachable, match="ClientConnectorError"):
            await client.get_json("/x")
    assert len(sleeps.waits) == 2
    assert client.requests_made == 3


async def test_a_next_link_to_another_host_is_refused() -> None:
    async with aiohttp.ClientSession() as session:
        client = _client(session, "http://127.0.0.1:1/v1.0", Sleeps())
        with pytest.raises(BadResponse, match="refusing to follow"):
            client.url_for("https://evil.example/v1.0/x")


def _token_body(value: str, expires_in: int = 3599) -> dict[str, object]:
    return {
        "token_type": "Bearer",
        "expires_in": expires_in,
        "ext_expires_in": expires_in,
        "access_token": value,
    }


async def test_an_expired_token_is_replaced_once_and_the_request_repeated() -> None:
    async with scripted() as (script, base), aiohttp.ClientSession() as session:
        script.on(
            "/t1/oauth2/v2.0/token", Canned(200, _token_body("tok-A")), Canned(200, _token_body("tok-B"))
        )
        expired = {"error": {"code": "InvalidAuthenticationToken", "message": "Access token has expired."}}
        script.on("/v1.0/x", Canned(401, expired), Canned(200, {"value": []}))
        login = ApiClient(session, vendor="login", base_url=base)
        secret = SecretStr("very-secret-value-123")
        tokens = TokenCache(ClientCredentials(login, tenant_id="t1", client_id="c1", client_secret=secret))
        client = ApiClient(session, vendor="graph", base_url=base + "/v1.0", auth=tokens)
        assert await client.get_json("/x") == {"value": []}
    assert tokens.fetches == 2
    api_calls = [s for s in script.seen if s.path_qs == "/v1.0/x"]
    assert [c.headers["Authorization"] for c in api_calls] == ["Bearer tok-A", "Bearer tok-B"]
    form = script.seen[0].form
    assert form == {
        "grant_type": "client_credentials",
        "client_id": "c1",
        "client_secret": "very-secret-value-123",
        "scope": "https://graph.microsoft.com/.default",
    }


async def test_a_token_refused_twice_is_auth_failed() -> None:
    async with scripted() as (script, base), aiohttp.ClientSession() as session:
        script.on("/t1/oauth2/v2.0/token", Canned(200, _token_body("tok")))
        script.on("/x", Canned(401, {"error": {"code": "InvalidAuthenticationToken", "message": "no"}}))
        login = ApiClient(session, vendor="login", base_url=base)
        creds = ClientCredentials(login, tenant_id="t1", client_id="c", client_secret=SecretStr("s3cr3t-xyz"))
        client = ApiClient(session, vendor="graph", base_url=base, auth=TokenCache(creds))
        with pytest.raises(AuthFailed, match="InvalidAuthenticationToken"):
            await client.get_json("/x")
    assert script.count("/x") == 2


async def test_a_wrong_client_secret_is_auth_failed_and_never_echoed() -> None:
    body = {
        "error": "invalid_client",
        "error_description": "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: abc",
        "trace_id": "trace-7",
        "correlation_id": "corr-7",
    }
    async with scripted() as (script, base), aiohttp.ClientSession() as session:
        script.on("/t1/oauth2/v2.0/token", Canned(401, body))
        login = ApiClient(session, vendor="login", base_url=base)
        creds = ClientCredentials(
            login, tenant_id="t1", client_id="c", client_secret=SecretStr("hunter2-secret")
        )
        client = ApiClient(session, vendor="graph", base_url=base, auth=TokenCache(creds))
        with capture_logs() as logs, pytest.raises(AuthFailed) as caught:
            await client.get_json("/x")
    message = str(caught.value)
    assert "invalid_client: AADSTS7000215: Invalid client secret provided." in message
    assert "trace-7" in message
    assert "hunter2-secret" not in message
    assert "hunter2-secret" not in repr(logs)


async def test_concurrent_requests_share_one_token_fetch() -> None:
    async with scripted() as (script, base), aiohttp.ClientSession() as session:
        script.on("/t/oauth2/v2.0/token", Canned(200, _token_body("tok")))
        script.on("/x", Canned(200, {"ok": 1}))
        login = ApiClient(session, vendor="login", base_url=base)
        tokens = TokenCache(
            ClientCredentials(login, tenant_id="t", client_id="c", client_secret=SecretStr("s"))
        )
        client = ApiClient(session, vendor="graph", base_url=base, auth=tokens)
        await asyncio.gather(*(client.get_json("/x") for _ in range(20)))
    assert script.count("/t/oauth2/v2.0/token") == 1


async def test_the_token_is_refreshed_before_it_expires() -> None:
    now = [1000.0]
    fetched: list[int] = []

    async def fetch() -> AccessToken:
        fetched.append(1)
        return AccessToken(f"tok-{len(fetched)}", 3600.0, now[0])

    cache = TokenCache(fetch, refresh_margin_s=300, clock=lambda: now[0])
    assert await cache.token() == "tok-1"
    now[0] += 3600 - 301
    assert await cache.token() == "tok-1"
    now[0] += 2  # inside the margin: refreshed before it runs out
    assert await cache.token() == "tok-2"


def test_retry_after_as_http_date() -> None:
    now = datetime(2026, 12, 5, 8, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Sat, 05 Dec 2026 08:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@given(st.text(max_size=60))
def test_retry_after_never_raises(text: str) -> None:
    value = parse_retry_after(text)
    assert value is None or value >= 0
