"""REST API of campaigns and their jobs.

* ``POST /api/v1/campaigns`` (operate): a :class:`~controller.campaigns.spec.CampaignSpec`; 201 draft.
* ``GET /api/v1/campaigns``, ``GET /api/v1/campaigns/{id}``: with job counts per state.
* ``POST /api/v1/campaigns/{id}/plan?dry_run=true`` (operate): which devices would be updated
  when and why, and which are held back and why; without ``dry_run`` the plan is stored as the
  draft's jobs (409 once approved).
* ``POST /api/v1/campaigns/{id}/approve|pause|resume|cancel`` (operate): 409 when the campaign's
  state does not allow it (the message says what it allows).
* ``GET /api/v1/campaigns/{id}/jobs``, ``GET /api/v1/jobs/{id}``: jobs, one with its state history.

Customers read their own tenant's campaigns; another tenant's answer 404.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from controller.auth import Permission
from controller.campaigns.planning import plan_devices
from controller.campaigns.spec import CampaignSpec
from controller.storage import campaign_store, contracts
from controller.storage.catalog_store import CatalogStore
from controller.web.auth import principal, requires, visible
from controller.web.contracts_api import json_body, validation_errors
from controller.web.responses import MAX_ID_DIGITS, parse_query
from controller.web.responses import error as _error
from controller.web.state import STATE
from firmware_catalog import Catalog

log = structlog.get_logger(__name__)
ACTIONS = {"approve": "approved", "pause": "paused", "resume": "running", "cancel": "cancelled"}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _id(request: web.Request) -> int | web.Response:
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > MAX_ID_DIGITS:
        return _error(
            422, [{"loc": ["path", "id"], "msg": "expected a positive integer", "input": raw[:100]}]
        )
    return int(raw)


async def _campaign(request: web.Request) -> dict[str, Any] | web.Response:
    ident = _id(request)
    if isinstance(ident, web.Response):
        return ident
    found = await campaign_store.get_campaign(request.app[STATE].store, ident)
    if found is None or not visible(request, found["customer_id"]):
        return _error(404, [{"loc": ["path", "id"], "msg": f"no campaign {ident}"}])
    return found


@requires(Permission.OPERATE)
async def create_campaign(request: web.Request) -> web.Response:
    body = await json_body(request)
    if isinstance(body, web.Response):
        return body
    try:
        spec = CampaignSpec.model_validate(body)
    except ValidationError as err:
        return validation_errors(err)
    try:
        row = await campaign_store.create_campaign(
            request.app[STATE].store, spec.model_dump(), actor=principal(request).name
        )
    except LookupError:
        return _error(
            422,
            [
                {
                    "loc": ["body", "customer"],
                    "msg": f"no customer {spec.customer!r}: import its contract first",
                }
            ],
        )
    log.info("campaign_created", campaign=row["id"], customer=spec.customer, actor=principal(request).name)
    return web.json_response(_plain(row), status=201)


@requires(Permission.READ)
async def list_campaigns(request: web.Request) -> web.Response:
    who = principal(request)
    rows = await campaign_store.list_campaigns(request.app[STATE].store, who.tenant if who.scoped else None)
    return web.json_response({"items": _plain(rows)})


@requires(Permission.READ)
async def get_campaign(request: web.Request) -> web.Response:
    found = await _campaign(request)
    if isinstance(found, web.Response):
        return found
    jobs = await campaign_store.list_jobs(request.app[STATE].store, found["id"])
    found["jobs"] = dict(Counter(job["state"] for job in jobs))
    return web.json_response(_plain(found))


class PlanQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dry_run: bool = False


@requires(Permission.OPERATE)
async def plan_campaign(request: web.Request) -> web.Response:
    query = parse_query(request, PlanQuery)
    if isinstance(query, web.Response):
        return query
    found = await _campaign(request)
    if isinstance(found, web.Response):
        return found
    if not query.dry_run and found["state"] != "draft":
        return _error(
            409,
            [
                {
                    "loc": ["path", "id"],
                    "msg": f"campaign {found['id']} is {found['state']}: only a draft is re-planned",
                }
            ],
        )
    state = request.app[STATE]
    customer = found["customer_id"]
    loaded = await contracts.load_contracts(state.store, customer)
    if customer not in loaded.customers:
        return _error(409, [{"loc": ["body", "customer"], "msg": f"customer {customer!r} has no contract"}])
    records = await CatalogStore(state.store).devices()
    scope = await contracts.out_of_scope(state.store)
    catalog = state.matching.catalog if state.matching is not None else Catalog()
    now = datetime.now(UTC)
    planned = await asyncio.to_thread(
        lambda: plan_devices(found, loaded, records, out_of_scope=scope, catalog=catalog, now=now)
    )
    jobs = [p.job for p in planned]
    if not query.dry_run:
        await campaign_store.replace_plan(
            state.store, found["id"], customer, jobs, actor=principal(request).name
        )
    counts = Counter(job["action"] for job in jobs)
    body = {
        "campaign": found["id"],
        "dry_run": query.dry_run,
        "at": now,
        "updates": counts["update"],
        "held": counts["hold"],
        "jobs": jobs,
    }
    return web.json_response(_plain(body))


async def _act(request: web.Request, action: str) -> web.Response:
    found = await _campaign(request)
    if isinstance(found, web.Response):
        return found
    store = request.app[STATE].store
    if action == "approve" and not any(
        j["state"] == "planned" for j in await campaign_store.list_jobs(store, found["id"])
    ):
        return _error(
            409, [{"loc": ["path", "id"], "msg": f"campaign {found['id']} has no planned job: plan it first"}]
        )
    try:
        row = await campaign_store.change_state(
            store, found["id"], ACTIONS[action], actor=principal(request).name
        )
    except campaign_store.TransitionRefused as err:
        return _error(409, [{"loc": ["path", "id"], "msg": str(err)}])
    assert row is not None
    log.info("campaign_changed", campaign=found["id"], state=row["state"], actor=principal(request).name)
    return web.json_response(_plain(row))


@requires(Permission.OPERATE)
async def approve(request: web.Request) -> web.Response:
    return await _act(request, "approve")


@requires(Permission.OPERATE)
async def pause(request: web.Request) -> web.Response:
    return await _act(request, "pause")


@requires(Permission.OPERATE)
async def resume(request: web.Request) -> web.Response:
    return await _act(request, "resume")


@requires(Permission.OPERATE)
async def cancel(request: web.Request) -> web.Response:
    return await _act(request, "cancel")


@requires(Permission.READ)
async def list_jobs(request: web.Request) -> web.Response:
    found = await _campaign(request)
    if isinstance(found, web.Response):
        return found
    return web.json_response(
        {"items": _plain(await campaign_store.list_jobs(request.app[STATE].store, found["id"]))}
    )


@requires(Permission.READ)
async def get_job(request: web.Request) -> web.Response:
    ident = _id(request)
    if isinstance(ident, web.Response):
        return ident
    job = await campaign_store.get_job(request.app[STATE].store, ident)
    if job is None or not visible(request, job["customer_id"]):
        return _error(404, [{"loc": ["path", "id"], "msg": f"no job {ident}"}])
    return web.json_response(_plain(job))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/campaigns", create_campaign)
    app.router.add_get("/api/v1/campaigns", list_campaigns)
    app.router.add_get("/api/v1/campaigns/{id}", get_campaign)
    app.router.add_post("/api/v1/campaigns/{id}/plan", plan_campaign)
    app.router.add_post("/api/v1/campaigns/{id}/approve", approve)
    app.router.add_post("/api/v1/campaigns/{id}/pause", pause)
    app.router.add_post("/api/v1/campaigns/{id}/resume", resume)
    app.router.add_post("/api/v1/campaigns/{id}/cancel", cancel)
    app.router.add_get("/api/v1/campaigns/{id}/jobs", list_jobs)
    app.router.add_get("/api/v1/jobs/{id}", get_job)
