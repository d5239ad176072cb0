"""Every REST route, walked with no token, a token of each role, and a customer of another tenant.

The route table below must name every route the application has: a route added without an
entry here fails ``test_every_route_is_in_the_table``, and one added without a declared
permission fails closed (403) and ``test_every_handler_declares_its_permission``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from collector.wire import encode
from controller.auth import Permission, Role
from controller.matching import MatchingService
from controller.metrics import Metrics
from controller.storage import DeviceFilter, Received, Store, tokens
from controller.web import AppState, make_app, security
from controller.web.auth import declared
from tests.controller.catalog_helpers import CSRF, KEV, TCE, VOIP, advisory_files, lab_observations
from tests.controller.conftest import make_batch, make_status, open_store
from tests.fixtures.net import free_port

Client = TestClient[Any, Any]
TENANTS = {"site-a": "acme", "site-g": "globex"}
# Strings that belong to the globex tenant only: none may reach an acme customer.
GLOBEX_MARKERS = ("globex", "site-g", "agent-g")


def _received(message: Any) -> Received:
    return Received(f"fernwart/v1/{message.site_id}/obs", encode(message), datetime.now(UTC), message=message)


@dataclass
class World:
    client: Client
    store: Store
    headers: dict[str, dict[str, str]]  # who → Authorization header
    acme_device: int
    globex_device: int
    missing_device: int
    token_id: int


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    sites = (("site-a", "agent-a"), ("site-g", "agent-g"))
    tenant_of = lambda site: TENANTS.get(site, "default")  # noqa: E731
    async with open_store(database_url, sites=sites, tenant_of=tenant_of) as store:
        await store.write_flush(
            [
                _received(make_status("site-a", "agent-a")),
                _received(make_status("site-g", "agent-g")),
                _received(make_batch("site-a", "agent-a", 0, lab_observations())),
                _received(make_batch("site-g", "agent-g", 0, lab_observations())),
            ]
        )
        metrics = Metrics()
        matching = MatchingService(store, metrics.registry)
        await matching.start()
        store.add_flush_listener(matching.on_flush)
        for path in advisory_files(VOIP, CSRF, TCE):
            await matching.add_advisory(path.read_bytes(), "test")
        await matching.set_kev(KEV.read_bytes(), "test")
        stop = asyncio.Event()
        task = asyncio.create_task(matching.run(stop))
        headers: dict[str, dict[str, str]] = {"anonymous": {}}
        for role in (Role.NOC_ADMIN, Role.NOC_OPERATOR, Role.NOC_VIEWER):
            _info, token = await tokens.create_token(store, name=role.value, role=role)
            headers[role.value] = {"Authorization": f"Bearer {token}"}
        for tenant in ("acme", "globex"):
            _info, token = await tokens.create_token(
                store, name=f"cust-{tenant}", role=Role.CUSTOMER, tenant=tenant
            )
            headers[f"customer:{tenant}"] = {"Authorization": f"Bearer {token}"}
        info, _ = await tokens.create_token(store, name="victim", role=Role.NOC_VIEWER)
        devices, _total = await store.list_devices(DeviceFilter(limit=1000))
        acme = next(d["id"] for d in devices if d["site_id"] == "site-a")
        globex = next(d["id"] for d in devices if d["site_id"] == "site-g")
        state = AppState(store, metrics, lambda: True, matching, tenant_of=lambda s: TENANTS.get(s, "x"))
        app = make_app(state)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            yield World(client, store, headers, acme, globex, max(d["id"] for d in devices) + 1000, info.id)
        stop.set()
        await task


# (method, route) → (permission or "public", path to call, body). The body of a state-changing
# request is one the handler refuses (422) or a target that does not exist (404), so walking the
# table changes nothing; what matters is that authorization came first.
def _table(w: World) -> dict[tuple[str, str], tuple[Permission | str, str, bytes | None]]:
    return {
        ("GET", "/api/v1/devices"): (Permission.READ, "/api/v1/devices", None),
        ("GET", "/api/v1/devices/{id}"): (Permission.READ, f"/api/v1/devices/{w.acme_device}", None),
        ("GET", "/api/v1/agents"): (Permission.READ, "/api/v1/agents", None),
        ("GET", "/healthz"): ("public", "/healthz", None),
        ("GET", "/metrics"): (Permission.MONITOR, "/metrics", None),
        ("GET", "/"): (Permission.READ, "/", None),
        ("GET", "/api/v1/advisories"): (Permission.READ, "/api/v1/advisories", None),
        ("POST", "/api/v1/advisories"): (Permission.ADMIN, "/api/v1/advisories", b"{}"),
        ("GET", "/api/v1/advisories/{id}"): (Permission.READ, f"/api/v1/advisories/{VOIP}", None),
        ("DELETE", "/api/v1/advisories/{id}"): (Permission.ADMIN, "/api/v1/advisories/no-such", None),
        ("GET", "/api/v1/kev"): (Permission.READ, "/api/v1/kev", None),
        ("PUT", "/api/v1/kev"): (Permission.ADMIN, "/api/v1/kev", b'{"vulnerabilities": 3}'),
        ("GET", "/api/v1/findings"): (Permission.READ, "/api/v1/findings", None),
        ("GET", "/api/v1/devices/{id}/findings"): (
            Permission.READ,
            f"/api/v1/devices/{w.acme_device}/findings",
            None,
        ),
        ("POST", "/api/v1/tokens"): (Permission.ADMIN, "/api/v1/tokens", b'{"name": ""}'),
        ("GET", "/api/v1/tokens"): (Permission.ADMIN, "/api/v1/tokens", None),
        ("DELETE", "/api/v1/tokens/{id}"): (Permission.ADMIN, "/api/v1/tokens/999999999", None),
        ("GET", "/api/v1/whoami"): (Permission.READ, "/api/v1/whoami", None),
        ("POST", "/api/v1/enrollments"): (Permission.ADMIN, "/api/v1/enrollments", b'{"site_id": ""}'),
        ("GET", "/api/v1/enrollments"): (Permission.ADMIN, "/api/v1/enrollments", None),
        ("DELETE", "/api/v1/enrollments/{site_id}"): (Permission.ADMIN, "/api/v1/enrollments/nope", None),
        ("POST", "/api/v1/enrollments/{site_id}/rotate"): (
            Permission.ADMIN,
            "/api/v1/enrollments/no-such-site/rotate",
            None,
        ),
        # contracts and campaigns (tests/controller/test_campaigns_api.py covers what they do)
        ("PUT", "/api/v1/contracts"): (
            Permission.ADMIN,
            "/api/v1/contracts",
            b'{"policy": {"customers": 1}}',
        ),
        ("GET", "/api/v1/customers"): (Permission.READ, "/api/v1/customers", None),
        ("GET", "/api/v1/customers/{id}"): (Permission.READ, "/api/v1/customers/acme", None),
        ("GET", "/api/v1/customers/{id}/windows"): (Permission.READ, "/api/v1/customers/acme/windows", None),
        ("GET", "/api/v1/customers/{id}/approvals"): (
            Permission.READ,
            "/api/v1/customers/acme/approvals",
            None,
        ),
        ("POST", "/api/v1/customers/{id}/approvals"): (
            Permission.APPROVE,
            "/api/v1/customers/acme/approvals",
            b"{}",
        ),
        ("PUT", "/api/v1/customers/{id}/webhook"): (
            Permission.ADMIN,
            "/api/v1/customers/acme/webhook",
            b"{}",
        ),
        ("PUT", "/api/v1/scope/{site}/{device}"): (Permission.ADMIN, "/api/v1/scope/site-a/codec", b"{}"),
        ("GET", "/api/v1/audit"): (Permission.READ, "/api/v1/audit", None),
        ("POST", "/api/v1/campaigns"): (Permission.OPERATE, "/api/v1/campaigns", b"{}"),
        ("GET", "/api/v1/campaigns"): (Permission.READ, "/api/v1/campaigns", None),
        ("GET", "/api/v1/campaigns/{id}"): (Permission.READ, "/api/v1/campaigns/999999", None),
        ("POST", "/api/v1/campaigns/{id}/plan"): (Permission.OPERATE, "/api/v1/campaigns/999999/plan", None),
        ("POST", "/api/v1/campaigns/{id}/approve"): (
            Permission.OPERATE,
            "/api/v1/campaigns/999999/approve",
            None,
        ),
        ("POST", "/api/v1/campaigns/{id}/pause"): (
            Permission.OPERATE,
            "/api/v1/campaigns/999999/pause",
            None,
        ),
        ("POST", "/api/v1/campaigns/{id}/resume"): (
            Permission.OPERATE,
            "/api/v1/campaigns/999999/resume",
            None,
        ),
        ("POST", "/api/v1/campaigns/{id}/cancel"): (
            Permission.OPERATE,
            "/api/v1/campaigns/999999/cancel",
            None,
        ),
        ("GET", "/api/v1/campaigns/{id}/jobs"): (Permission.READ, "/api/v1/campaigns/999999/jobs", None),
        ("GET", "/api/v1/jobs/{id}"): (Permission.READ, "/api/v1/jobs/999999", None),
        ("GET", "/login"): ("public", "/login", None),
        ("POST", "/login"): ("public", "/login", None),
        ("POST", "/logout"): (Permission.READ, "/logout", None),
    }


def _routes(client: Client) -> dict[tuple[str, str], Any]:
    found = {}
    for route in client.server.app.router.routes():
        if route.method == "HEAD":
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter", "")
        found[(route.method, re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path))] = route.handler
    return found


GRANTS = {
    "noc-admin": set(Permission),
    "noc-operator": {Permission.READ, Permission.MONITOR, Permission.OPERATE},
    "noc-viewer": {Permission.READ, Permission.MONITOR},
    "customer:acme": {Permission.READ, Permission.APPROVE},
}


async def _call(w: World, method: str, path: str, body: bytes | None, who: str) -> tuple[int, str]:
    headers = dict(w.headers[who])
    if body is not None:
        headers["Content-Type"] = "application/json"
    if path == "/login" and method == "POST":
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        body = b"token=fwt_not-a-real-token-at-all"
    resp = await w.client.request(method, path, data=body, headers=headers, allow_redirects=False)
    return resp.status, await resp.text()


def test_every_handler_declares_its_permission(world: World) -> None:
    undeclared = [key for key, handler in _routes(world.client).items() if declared(handler) is None]
    assert undeclared == []


def test_every_route_is_in_the_table(world: World) -> None:
    assert set(_routes(world.client)) == set(_table(world))


@pytest.mark.parametrize("who", ["anonymous", "noc-admin", "noc-operator", "noc-viewer", "customer:acme"])
async def test_walk_every_route(world: World, who: str) -> None:
    routes = _routes(world.client)
    for (method, route), (need, path, body) in _table(world).items():
        assert declared(routes[(method, route)]) == need, (method, route)
        status, text = await _call(world, method, path, body, who)
        where = f"{who} {method} {path}: {status} {text[:200]}"
        if need == "public":
            # POST /login with a wrong token answers 401 itself: that is the login refusing it.
            assert status not in {401, 403} or (method, path) == ("POST", "/login"), where
        elif who == "anonymous":
            assert status == 401, where
        elif need in GRANTS[who]:
            assert status not in {401, 403, 500}, where
        else:
            assert status == 403, where
        if who == "customer:acme":
            for marker in GLOBEX_MARKERS:
                assert marker not in text, f"{where}: leaks {marker!r}"


async def test_anonymous_gets_401_with_a_bearer_challenge(world: World) -> None:
    resp = await world.client.get("/api/v1/devices")
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    for bad in ("Bearer", "Basic dXNlcjpwdw==", "Bearer fwt_" + "x" * 43, "Bearer not-a-token"):
        resp = await world.client.get("/api/v1/devices", headers={"Authorization": bad})
        assert resp.status == 401, bad


async def test_another_tenants_objects_answer_as_missing_ones(world: World) -> None:
    acme = world.headers["customer:acme"]
    for template in ("/api/v1/devices/{}", "/api/v1/devices/{}/findings"):
        other = await world.client.get(template.format(world.globex_device), headers=acme)
        missing = await world.client.get(template.format(world.missing_device), headers=acme)
        assert other.status == missing.status == 404
        other_body = (await other.text()).replace(str(world.globex_device), "ID")
        missing_body = (await missing.text()).replace(str(world.missing_device), "ID")
        assert other_body == missing_body
        own = await world.client.get(template.format(world.acme_device), headers=acme)
        assert own.status == 200
    # The same objects are there for the NOC and for their own customer.
    for who in ("noc-viewer", "customer:globex"):
        resp = await world.client.get(f"/api/v1/devices/{world.globex_device}", headers=world.headers[who])
        assert resp.status == 200


async def test_customer_lists_and_counts_only_its_tenant(world: World) -> None:
    acme = world.headers["customer:acme"]
    noc = world.headers["noc-viewer"]

    async def get(path: str, headers: dict[str, str]) -> Any:
        resp = await world.client.get(path, headers=headers)
        assert resp.status == 200, await resp.text()
        return await resp.json()

    devices = await get("/api/v1/devices", acme)
    assert devices["total"] == len(lab_observations())
    assert {d["tenant"] for d in devices["items"]} == {"acme"}
    assert (await get("/api/v1/devices?tenant=globex", acme))["total"] == 0
    assert (await get("/api/v1/devices", noc))["total"] == 2 * len(lab_observations())
    assert [a["site_id"] for a in (await get("/api/v1/agents", acme))["items"]] == ["site-a"]
    findings = await get("/api/v1/findings?limit=1000", acme)
    assert findings["total"] > 0
    assert {f["tenant"] for f in findings["items"]} == {"acme"}
    assert (await get("/api/v1/findings?tenant=globex", acme))["total"] == 0
    noc_findings = await get("/api/v1/findings?limit=1000", noc)
    assert noc_findings["total"] == 2 * findings["total"]
    mine = {a["id"]: a for a in (await get("/api/v1/advisories", acme))["items"]}
    everyone = {a["id"]: a for a in (await get("/api/v1/advisories", noc))["items"]}
    for advisory_id, advisory in everyone.items():
        assert advisory["devices"] == 2 * mine[advisory_id]["devices"]
    detail = await get(f"/api/v1/advisories/{VOIP}", acme)
    assert detail["findings"]
    assert {f["site_id"] for f in detail["findings"]} == {"site-a"}
    page = await world.client.get("/", headers=acme)
    html = await page.text()
    assert "site-a" in html
    assert "site-g" not in html


async def test_revoked_and_expired_tokens_fail(world: World) -> None:
    info, token = await tokens.create_token(world.store, name="short", role=Role.NOC_VIEWER)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await world.client.get("/api/v1/whoami", headers=headers)).status == 200
    admin = world.headers["noc-admin"]
    assert (await world.client.delete(f"/api/v1/tokens/{info.id}", headers=admin)).status == 204
    assert (await world.client.get("/api/v1/whoami", headers=headers)).status == 401
    past = datetime.now(UTC) - timedelta(seconds=1)
    _expired, token = await tokens.create_token(world.store, name="old", role=Role.NOC_ADMIN, expires_at=past)
    resp = await world.client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 401


async def test_token_api_shows_the_secret_once_and_stores_only_its_hash(world: World) -> None:
    admin = world.headers["noc-admin"]
    resp = await world.client.post(
        "/api/v1/tokens",
        data=json.dumps({"name": "cust", "role": "customer", "tenant": "acme"}),
        headers={**admin, "Content-Type": "application/json"},
    )
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    secret = created["token"]
    who = await world.client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {secret}"})
    assert await who.json() == {"name": "cust", "role": "customer", "tenant": "acme"}
    listing = await (await world.client.get("/api/v1/tokens", headers=admin)).text()
    assert secret not in listing
    assert secret[4:] not in listing
    assert '"cust"' in listing
    # A customer token needs its tenant; a NOC token has none.
    for bad in ({"name": "x", "role": "customer"}, {"name": "x", "role": "noc-viewer", "tenant": "acme"}):
        resp = await world.client.post(
            "/api/v1/tokens", data=json.dumps(bad), headers={**admin, "Content-Type": "application/json"}
        )
        assert resp.status == 422, await resp.text()
        assert (await resp.json())["errors"][0]["loc"] == ["body", "tenant"]


async def test_foreign_host_cross_site_post_and_foreign_origin_are_refused(world: World) -> None:
    admin = world.headers["noc-admin"]
    resp = await world.client.get("/api/v1/devices", headers={**admin, "Host": "evil.example"})
    assert resp.status == 421
    resp = await world.client.get("/healthz", headers={"Host": "rebind.attacker.test:8080"})
    assert resp.status == 421
    # A form post from another site: text/plain needs no CORS preflight.
    document = advisory_files(CSRF)[0].read_bytes()
    resp = await world.client.post(
        "/api/v1/advisories", data=document, headers={**admin, "Content-Type": "text/plain"}
    )
    assert resp.status == 415
    port = world.client.port
    for origin in ("https://evil.example", f"http://127.0.0.1:{port + 1}", "null"):
        resp = await world.client.post(
            "/api/v1/advisories",
            data=document,
            headers={**admin, "Content-Type": "application/json", "Origin": origin},
        )
        assert resp.status == 403, origin
        resp = await world.client.get("/api/v1/devices", headers={**admin, "Origin": origin})
        assert resp.status == 403, origin
    resp = await world.client.get("/api/v1/devices", headers={**admin, "Sec-Fetch-Site": "cross-site"})
    assert resp.status == 403
    # Same origin passes.
    resp = await world.client.get("/api/v1/devices", headers={**admin, "Origin": f"http://127.0.0.1:{port}"})
    assert resp.status == 200


async def test_security_headers_and_no_version_banner(world: World) -> None:
    for path, headers in (("/healthz", {}), ("/api/v1/devices", world.headers["noc-viewer"]), ("/nope", {})):
        resp = await world.client.get(path, headers=headers)
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Cache-Control"] == "no-store"
        assert resp.headers["Server"] == "fernwart"
        assert "aiohttp" not in json.dumps(dict(resp.headers))


async def test_console_session_reads_but_needs_its_csrf_token_to_change_anything(world: World) -> None:
    _info, token = await tokens.create_token(world.store, name="browser", role=Role.NOC_ADMIN)
    first = await world.client.get("/")
    assert first.status == 401
    assert "<form" in await first.text()
    resp = await world.client.post(
        "/login",
        data={"token": token},
        allow_redirects=False,
    )
    assert resp.status == 303
    cookie = resp.cookies["fernwart_session"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    assert cookie.value not in token
    page = await world.client.get("/")
    assert page.status == 200
    html = await page.text()
    assert "browser (noc-admin)" in html
    # A state-changing request riding on the cookie alone is refused; with the CSRF token it passes.
    resp = await world.client.delete("/api/v1/tokens/999999")
    assert resp.status == 403
    csrf = re.search(r'name="csrf" value="([^"]+)"', html)
    assert csrf is not None
    resp = await world.client.delete("/api/v1/tokens/999999", headers={"X-CSRF-Token": csrf.group(1)})
    assert resp.status == 404
    resp = await world.client.post("/logout", data={"csrf": csrf.group(1)}, allow_redirects=False)
    assert resp.status == 303
    assert (await world.client.get("/")).status == 401
    bad = await world.client.post("/login", data={"token": "fwt_wrong-wrong-wrong-wrong"})
    assert bad.status == 401


async def test_access_log_names_client_token_method_path_status_duration(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs: list[dict[str, Any]] = []

    class Recorder:
        def info(self, event: str, **fields: Any) -> None:
            logs.append({"event": event, **fields})

    monkeypatch.setattr(security, "log", Recorder())
    async with Store.open(database_url) as store:
        _info, token = await tokens.create_token(store, name="nightly-report", role=Role.NOC_VIEWER)
        app = make_app(AppState(store, Metrics(), lambda: True))
        access = logging.getLogger("controller.access")
        runner = web.AppRunner(app, access_log=access, access_log_class=security.AccessLogger)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as client:
                bearer = {"Authorization": f"Bearer {token}"}
                async with client.get("/api/v1/devices?limit=5", headers=bearer) as resp:
                    assert resp.status == 200
                async with client.get("/api/v1/devices") as resp:
                    assert resp.status == 401
        finally:
            await runner.cleanup()
    lines = [entry for entry in logs if entry["event"] == "http_request"]
    assert len(lines) == 2
    ok, refused = lines
    assert ok["client"] == "127.0.0.1"
    assert ok["token"] == "nightly-report"
    assert (ok["method"], ok["path"], ok["status"]) == ("GET", "/api/v1/devices", 200)
    assert ok["duration_ms"] >= 0
    assert (refused["token"], refused["status"]) == (None, 401)
    assert token not in repr(logs)
