"""``make_app(state)``: the aiohttp application (REST API v1, /metrics, /healthz, fleet page)."""

from __future__ import annotations

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from controller.auth import Permission
from controller.storage import DeviceFilter
from controller.web import (
    campaigns_api,
    catalog_api,
    console,
    contracts_api,
    enroll_api,
    fleet,
    security,
    tokens_api,
)
from controller.web.auth import authenticate, principal, public, requires, tenant_scope, visible
from controller.web.responses import device_pk
from controller.web.responses import error as _error
from controller.web.responses import json_model as _json
from controller.web.responses import parse_query as _query
from controller.web.schemas import AgentList, AgentOut, DeviceDetail, DeviceOut, DevicePage, DeviceQuery
from controller.web.state import STATE, AppState

log = structlog.get_logger(__name__)


@requires(Permission.READ)
async def list_devices(request: web.Request) -> web.Response:
    query = _query(request, DeviceQuery)
    if isinstance(query, web.Response):
        return query
    tenant, possible = tenant_scope(request, query.tenant)
    rows: list[dict[str, object]] = []
    total = 0
    if possible:
        rows, total = await request.app[STATE].store.list_devices(
            DeviceFilter(tenant, query.site, query.vendor, query.status, query.limit, query.offset)
        )
    next_offset = query.offset + len(rows) if query.offset + len(rows) < total else None
    page = DevicePage(
        items=[DeviceOut.model_validate(row) for row in rows],
        total=total,
        limit=query.limit,
        offset=query.offset,
        next_offset=next_offset,
    )
    return _json(page)


@requires(Permission.READ)
async def get_device(request: web.Request) -> web.Response:
    pk = device_pk(request.match_info["id"])
    if isinstance(pk, web.Response):
        return pk
    store = request.app[STATE].store
    device = await store.get_device(pk)
    if device is None or not visible(request, device["tenant"]):
        return _error(404, [{"loc": ["path", "id"], "msg": f"no device with id {pk}"}])
    newest = await store.observations(device["site_id"], device["device_id"], limit=1)
    if newest:
        device["latest"] = _latest(newest[0])
    return _json(DeviceDetail.model_validate(device))


def _latest(stored: dict[str, object]) -> dict[str, object]:
    """The newest observation's health, its reasons and the host health values, as the agent sent them."""
    observation = stored["observation"]
    assert isinstance(observation, dict)
    health = observation.get("health") or {}
    return {
        "observed_at": stored["observed_at"],
        "health": health.get("status", "unknown"),
        "reasons": health.get("reasons", []),
        "reachable": observation.get("reachable"),
        "metrics": observation.get("metrics", {}),
        "identification": _identification(observation),
    }


def _identification(observation: dict[str, object]) -> dict[str, object] | None:
    """Identity as the driver reported it, with the fingerprint that matched or why none did."""
    identity = observation.get("identity")
    if not isinstance(identity, dict):
        return None
    raw = observation.get("raw")
    raw = raw if isinstance(raw, dict) else {}
    return {
        "vendor": identity.get("vendor", "unknown"),
        "family": identity.get("family", "unknown"),
        "model": identity.get("model", "unknown"),
        "fingerprint": raw.get("fingerprint"),
        "reason": raw.get("identification"),
        "sys_descr": raw.get("sysDescr"),
        "sys_object_id": raw.get("sysObjectID"),
    }


@requires(Permission.READ)
async def list_agents(request: web.Request) -> web.Response:
    state = request.app[STATE]
    who = principal(request)
    rows = [row for row in await state.store.list_agents() if who.sees(state.tenant_of(row["site_id"]))]
    return _json(AgentList(items=[AgentOut.model_validate(row) for row in rows]))


@public
async def healthz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    mqtt = "connected" if state.mqtt_connected() else "disconnected"
    lost = state.store.file_lost()
    if lost is not None:  # SQLite would go on answering from the deleted file (logged once by the store)
        body = {"status": "fail", "database": "lost", "detail": f"database file {lost}", "mqtt": mqtt}
        return web.json_response(body, status=503)
    try:
        await state.store.ping()
    except Exception as err:
        log.warning("healthz_database_failed", error=str(err))
        return web.json_response({"status": "fail", "database": "unreachable", "mqtt": mqtt}, status=503)
    return web.json_response({"status": "ok", "database": "ok", "mqtt": mqtt})


@requires(Permission.MONITOR)
async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[STATE].metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@public
async def public_metrics(request: web.Request) -> web.Response:
    return await metrics(request)


def make_app(state: AppState) -> web.Application:
    """The application; every handler declares its permission (see controller.web.auth)."""
    hosts = security.allowed_hosts(state.http.host, state.http.allowed_hosts)
    app = web.Application(middlewares=[security.make_middleware(hosts), authenticate, security.content_types])
    app[STATE] = state
    app.on_response_prepare.append(security.security_headers)
    app.router.add_get("/api/v1/devices", list_devices)
    app.router.add_get("/api/v1/devices/{id}", get_device)
    app.router.add_get("/api/v1/agents", list_agents)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", public_metrics if state.http.metrics_public else metrics)
    app.router.add_get("/", fleet.page)
    catalog_api.add_routes(app)
    tokens_api.add_routes(app)
    console.add_routes(app)
    enroll_api.add_routes(app)
    contracts_api.add_routes(app)
    campaigns_api.add_routes(app)
    return app
