"""A malicious vendor server (or a compromised codec) against the shared HTTP layer and the xAPI client.

Found: the clients read whole bodies into memory (``text()`` / ``read()``) with no bound, and
aiohttp inflates gzip as it reads, so a 16 kB gzip bomb became gigabytes; JSON or XML nested
deeper than the parser's stack raised ``RecursionError``, which no driver expects (not a
DriverError: the source's poll died instead of reporting a per-device error).
Held (kept here as regression tests): redirects are not followed with the bearer token, and a
``Retry-After`` longer than we honour ends the attempt at once.
"""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from collector.errors import BadResponse, DriverError, Throttled
from collector.http import ApiClient, RetryPolicy
from collector.http.paging import link_pages, odata_pages
from collector.xapi.client import XapiClient
from collector.xapi.options import XapiOptions

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LIMIT = 1024 * 1024


async def _serve(handler: Handler) -> TestServer:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


@pytest.fixture
async def other_host() -> AsyncIterator[tuple[TestServer, list[dict[str, str]]]]:
    """Another host: records what reaches it."""
    seen: list[dict[str, str]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"value": []})

    server = await _serve(record)
    yield server, seen
    await server.close()


async def _get(handler: Handler, **kw: object) -> object:
    server = await _serve(handler)
    try:
        async with aiohttp.ClientSession() as session:
            client = ApiClient(
                session,
                vendor="graph",
                base_url=str(server.make_url("/v1.0")),
                policy=RetryPolicy(retries=1, min_s=0.01, max_s=0.01),
                **kw,  # type: ignore[arg-type]
            )
            return await client.get_json("/deviceManagement/managedDevices")
    finally:
        await server.close()


async def test_a_body_past_the_limit_is_a_bad_response() -> None:
    async def huge(_request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(_request)
        await response.write(b'{"value": ["')
        for _ in range(32):  # 2 MB, chunked: no Content-Length to refuse early
            await response.write(b"x" * 65536)
        await response.write(b'"]}')
        return response

    with pytest.raises(BadResponse, match=f"with a body over {LIMIT} bytes"):
        await _get(huge, max_body_bytes=LIMIT)


async def test_a_gzip_bomb_is_not_inflated_past_the_limit() -> None:
    bomb = gzip.compress(b'{"value": ["' + b"0" * (64 * LIMIT) + b'"]}', compresslevel=9)
    assert len(bomb) < LIMIT // 8

    async def inflating(_request: web.Request) -> web.Response:
        return web.Response(
            body=bomb, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
        )

    with pytest.raises(BadResponse, match="over"):
        await _get(inflating, max_body_bytes=LIMIT)


async def test_json_nested_too_deeply_is_a_bad_response() -> None:
    async def deep(_request: web.Request) -> web.Response:
        return web.Response(text="[" * 200_000 + "]" * 200_000, content_type="application/json")

    with pytest.raises(BadResponse, match="nested too deeply"):
        await _get(deep)


async def test_a_redirect_never_carries_the_token_to_another_host(
    other_host: tuple[TestServer, list[dict[str, str]]],
) -> None:
    server, seen = other_host

    async def redirect(_request: web.Request) -> web.Response:
        raise web.HTTPFound(str(server.make_url("/v1.0/deviceManagement/managedDevices")))

    with pytest.raises(DriverError):
        await _get(redirect)
    assert seen == []


async def test_a_retry_after_of_days_ends_the_attempt_at_once() -> None:
    calls: list[int] = []

    async def throttled(_request: web.Request) -> web.Response:
        calls.append(1)
        return web.json_response(
            {"error": {"code": "TooManyRequests"}}, status=429, headers={"Retry-After": "999999"}
        )

    with pytest.raises(Throttled):
        await _get(throttled)
    assert len(calls) == 1


async def _status(handler: Handler) -> object:
    server = await _serve(handler)
    options = XapiOptions(
        host="127.0.0.1", port=server.port, scheme="http", user="admin", password="codec-pw", min_interval_s=0
    )
    client = XapiClient(options)
    try:
        return await client.status()
    finally:
        await client.aclose()
        await server.close()


async def test_xapi_xml_nested_too_deeply_is_a_bad_response() -> None:
    async def deep(_request: web.Request) -> web.Response:
        body = "<Status>" + "<A>" * 5000 + "x" + "</A>" * 5000 + "</Status>"
        return web.Response(text=body, content_type="text/xml")

    with pytest.raises(BadResponse, match="nested deeper"):
        await _status(deep)


async def test_xapi_answer_past_the_limit_is_a_bad_response() -> None:
    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/xml"})
        await response.prepare(request)
        await response.write(b"<Status><Junk>")
        for _ in range(160):  # 10 MB
            await response.write(b"x" * 65536)
        await response.write(b"</Junk></Status>")
        return response

    with pytest.raises(BadResponse, match="answer over"):
        await _status(huge)


@pytest.mark.parametrize("style", ["odata", "link"])
async def test_an_endless_listing_of_fat_pages_stops_at_the_listing_cap(style: str) -> None:
    """Next links that never repeat (page=N+1 forever), each page 256 kB: without a cap on the
    whole listing the agent collects up to MAX_PAGES of them (found: 10,000 x 32 MiB possible)."""
    served: list[int] = []

    async def endless(request: web.Request) -> web.Response:
        page = int(request.query.get("page", "0"))
        served.append(page)
        items = ["x" * 1024] * 256
        nxt = str(request.url.with_query({"page": str(page + 1)}))
        if style == "odata":
            return web.json_response({"value": items, "@odata.nextLink": nxt})
        return web.json_response({"items": items}, headers={"Link": f'<{nxt}>; rel="next"'})

    server = await _serve(endless)
    try:
        async with aiohttp.ClientSession() as session:
            client = ApiClient(session, vendor="graph", base_url=str(server.make_url("/v1.0")))
            pages = odata_pages if style == "odata" else link_pages
            with pytest.raises(BadResponse, match="listing larger than"):
                async for _page in pages(client, "/things", max_bytes=LIMIT):
                    pass
    finally:
        await server.close()
    assert len(served) == 4  # pages of ~263 kB: the fourth passes 1 MiB
