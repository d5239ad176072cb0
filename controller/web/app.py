"""``make_app(state)``: the aiohttp application (REST API v1, /metrics, /healthz, fleet page)."""

from __future__ import annotations

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from controller.storage import DeviceFilter
from controller.web import catalog_api, fleet
from controller.web.responses import device_pk
from controller.web.responses import error as _error
from controller.web.responses import json_model as _json
from controller.web.responses import parse_query as _query
from controller.web.schemas import AgentList, AgentOut, DeviceDetail, DeviceOut, DevicePage, DeviceQuery
from controller.web.state import STATE, AppState

log = structlog.get_logger(__name__)


async def list_devices(request: web.Request) -> web.Response:
    query = _query(request, DeviceQuery)
    if isinstance(query, web.Response):
        return query
    rows, total = await request.app[STATE].store.list_devices(
        DeviceFilter(query.tenant, query.site, query.vendor, query.status, query.limit, query.offset)
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


async def get_device(request: web.Request) -> web.Response:
    pk = device_pk(request.match_info["id"])
    if isinstance(pk, web.Response):
        return pk
    device = await request.app[STATE].store.get_device(pk)
    if device is None:
        return _error(404, [{"loc": ["path", "id"], "msg": f"no device with id {pk}"}])
    return _json(DeviceDetail.model_validate(device))


async def list_agents(request: web.Request) -> web.Response:
    rows = await request.app[STATE].store.list_agents()
    return _json(AgentList(items=[AgentOut.model_validate(row) for row in rows]))


async def healthz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    mqtt = "connected" if state.mqtt_connected() else "disconnected"
    try:
        await state.store.ping()
    except Exception as err:
        log.warning("healthz_database_failed", error=str(err))
        return web.json_response({"status": "fail", "database": "unreachable", "mqtt": mqtt}, status=503)
    return web.json_response({"status": "ok", "database": "ok", "mqtt": mqtt})


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[STATE].metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def make_app(state: AppState) -> web.Application:
    app = web.Application()
    app[STATE] = state
    app.router.add_get("/api/v1/devices", list_devices)
    app.router.add_get("/api/v1/devices/{id}", get_device)
    app.router.add_get("/api/v1/agents", list_agents)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/", fleet.page)
    catalog_api.add_routes(app)
    return app
