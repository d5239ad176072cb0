"""REST API of contracts: customers, windows, policies, approvals, device scope, the audit log.

* ``PUT /api/v1/contracts`` (admin): ``{"policy": {...}, "windows": {...}}`` in the schema of the
  policy and windows files (README); 200 with counts, 422 with every problem (``loc`` is the key path).
* ``GET /api/v1/customers``, ``GET /api/v1/customers/{id}``: the stored policy and windows.
* ``GET /api/v1/customers/{id}/windows?n=``: the next usable window occurrences.
* ``GET|POST /api/v1/customers/{id}/approvals``: a customer approves its own feature updates
  (``approved_by`` is the token's name); NOC admins may record one given in writing.
* ``PUT /api/v1/customers/{id}/webhook`` (admin), ``PUT /api/v1/scope/{site}/{device}`` (admin).
* ``GET /api/v1/audit?format=jsonl|csv&customer=&kind=``: the audit log, oldest first.

A customer token sees its own tenant only; another tenant's customer answers 404, as a missing one.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from collector.wire import IDENT_PATTERN
from controller.auth import Permission
from controller.scheduler import DataError, next_windows
from controller.storage import audit, contracts
from controller.web.auth import principal, requires, visible
from controller.web.responses import error as _error
from controller.web.responses import parse_query
from controller.web.state import STATE
from runtime.config import clean_message

log = structlog.get_logger(__name__)
MAX_BODY_BYTES = 4 * 1024 * 1024
_IDENT = re.compile(IDENT_PATTERN)


async def json_body(request: web.Request) -> Any:
    """The request's JSON body, or an error response (413 too large, 400 not JSON)."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return _error(413, [{"loc": ["body"], "msg": f"body exceeds {MAX_BODY_BYTES} bytes"}])
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        return _error(413, [{"loc": ["body"], "msg": f"body exceeds {MAX_BODY_BYTES} bytes"}])
    try:
        return json.loads(raw or b"null")
    except RecursionError:  # "[[[[…" deeper than the parser's stack: was a 500
        return _error(400, [{"loc": ["body"], "msg": "JSON nested too deeply"}])
    except (UnicodeDecodeError, ValueError) as err:
        return _error(400, [{"loc": ["body"], "msg": f"not JSON: {err}"}])


def data_errors(err: DataError, *prefix: str) -> web.Response:
    items = []
    for line in err.errors:
        where, _, msg = line.partition(": ")
        items.append({"loc": ["body", *prefix, where], "msg": msg or where})
    return _error(422, items)


def validation_errors(err: ValidationError) -> web.Response:
    return _error(
        422,
        [
            {"loc": ["body", *item["loc"]], "msg": clean_message(item["msg"])}
            for item in err.errors(include_url=False, include_context=False)
        ],
    )


def _not_found(what: str, ident: object) -> web.Response:
    return _error(404, [{"loc": ["path", "id"], "msg": f"no {what} {ident!r}"}])


class ContractsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    policy: dict[str, Any]
    windows: dict[str, Any] | None = None


@requires(Permission.ADMIN)
async def put_contracts(request: web.Request) -> web.Response:
    body = await json_body(request)
    if isinstance(body, web.Response):
        return body
    try:
        given = ContractsIn.model_validate(body)
    except ValidationError as err:
        return validation_errors(err)
    try:
        counts = await contracts.import_contracts(
            request.app[STATE].store, given.policy, given.windows, actor=principal(request).name
        )
    except DataError as err:
        return data_errors(err, "policy")
    log.info("contracts_imported", actor=principal(request).name, **counts)
    return web.json_response(counts)


@requires(Permission.READ)
async def list_customers(request: web.Request) -> web.Response:
    policy, _windows, _hooks = await contracts.policy_document(request.app[STATE].store)
    items = [
        {"customer_id": cid, **{k: v for k, v in entry.items() if k != "approvals"}}
        for cid, entry in policy["customers"].items()
        if visible(request, cid)
    ]
    return web.json_response({"items": items})


async def _customer(
    request: web.Request,
) -> tuple[str, dict[str, Any], dict[str, Any], str | None] | web.Response:
    cid = request.match_info["id"]
    if not visible(request, cid) or len(cid) > 128 or "\x00" in cid:
        return _not_found("customer", cid)
    policy, windows, hooks = await contracts.policy_document(request.app[STATE].store, cid)
    if cid not in policy["customers"]:
        return _not_found("customer", cid)
    return cid, policy["customers"][cid], windows, hooks.get(cid)


@requires(Permission.READ)
async def get_customer(request: web.Request) -> web.Response:
    found = await _customer(request)
    if isinstance(found, web.Response):
        return found
    cid, entry, windows, hook = found
    body = {"customer_id": cid, "policy": entry, "windows": windows["windows"], "webhook_url": hook}
    return web.json_response(body)


class WindowsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(10, ge=1, le=500)


@requires(Permission.READ)
async def customer_windows(request: web.Request) -> web.Response:
    query = parse_query(request, WindowsQuery)
    if isinstance(query, web.Response):
        return query
    found = await _customer(request)
    if isinstance(found, web.Response):
        return found
    cid = found[0]
    loaded = await contracts.load_contracts(request.app[STATE].store, cid)
    policy = loaded.customers[cid]
    now = datetime.now(UTC)
    occurrences = await asyncio.to_thread(  # a fine-grained rule is CPU work: off the event loop
        lambda: [o for w in loaded.windows for o in next_windows(w, now, query.n, holidays=policy.holidays)]
    )
    occurrences.sort(key=lambda o: o.start)
    items = [
        {
            "window": o.window.name,
            "start": o.start.isoformat(),
            "end": o.end.isoformat(),
            "sites": sorted(o.window.sites) if o.window.sites is not None else None,
        }
        for o in occurrences[: query.n]
    ]
    return web.json_response({"items": items})


class ApprovalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    family: str = Field(min_length=1, max_length=64)
    version: str = Field(min_length=1, max_length=256)
    expires: date | None = None


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime | date) else v) for k, v in row.items()}


@requires(Permission.READ)
async def list_approvals(request: web.Request) -> web.Response:
    found = await _customer(request)
    if isinstance(found, web.Response):
        return found
    rows = await contracts.list_approvals(request.app[STATE].store, found[0])
    return web.json_response({"items": [_plain(r) for r in rows]})


@requires(Permission.APPROVE)
async def post_approval(request: web.Request) -> web.Response:
    found = await _customer(request)
    if isinstance(found, web.Response):
        return found
    body = await json_body(request)
    if isinstance(body, web.Response):
        return body
    try:
        given = ApprovalIn.model_validate(body)
    except ValidationError as err:
        return validation_errors(err)
    # "valid through this day (customer's time zone)": an approval that ended before today would be
    # stored, audited and shown as given while every plan still holds the devices as no_approval.
    today = datetime.now(ZoneInfo(found[1].get("timezone") or "Europe/Vienna")).date()
    if given.expires is not None and given.expires < today:
        msg = f"{given.expires.isoformat()} lies in the past (today is {today.isoformat()} for {found[0]})"
        return _error(422, [{"loc": ["body", "expires"], "msg": msg}])
    who = principal(request)
    try:
        row = await contracts.add_approval(
            request.app[STATE].store,
            found[0],
            given.family,
            given.version,
            approved_by=who.name,
            expires=given.expires,
        )
    except DataError as err:
        return data_errors(err)
    log.info("approval_given", customer=found[0], family=given.family, version=given.version, by=who.name)
    return web.json_response(_plain(row), status=201)


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(None, max_length=2048, pattern=r"^https?://")


@requires(Permission.ADMIN)
async def put_webhook(request: web.Request) -> web.Response:
    body = await json_body(request)
    if isinstance(body, web.Response):
        return body
    try:
        given = WebhookIn.model_validate(body)
    except ValidationError as err:
        return validation_errors(err)
    cid = request.match_info["id"]
    if (
        len(cid) > 128
        or "\x00" in cid
        or not await contracts.set_webhook(
            request.app[STATE].store, cid, given.url, actor=principal(request).name
        )
    ):
        return _not_found("customer", cid)
    return web.json_response({"customer_id": cid, "webhook_url": given.url})


class ScopeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    in_scope: bool


@requires(Permission.ADMIN)
async def put_scope(request: web.Request) -> web.Response:
    body = await json_body(request)
    if isinstance(body, web.Response):
        return body
    try:
        given = ScopeIn.model_validate(body)
    except ValidationError as err:
        return validation_errors(err)
    site, device = request.match_info["site"], request.match_info["device"]
    bad = [
        {"loc": ["path", name], "msg": f"expected an id matching {IDENT_PATTERN}", "input": value[:100]}
        for name, value in (("site", site), ("device", device))
        if not _IDENT.fullmatch(value)
    ]
    if bad:
        return _error(422, bad)
    state = request.app[STATE]
    known = await contracts.set_scope(
        state.store,
        site,
        device,
        in_scope=given.in_scope,
        actor=principal(request).name,
        customer_id=state.tenant_of(site),
    )
    return web.json_response(
        {"site_id": site, "device_id": device, "in_scope": given.in_scope, "known": known}
    )


class AuditQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: str = Field("jsonl", pattern="^(jsonl|csv)$")
    customer: str | None = Field(None, max_length=128)
    kind: str | None = Field(None, pattern="^(" + "|".join(audit.KINDS) + ")$")
    # with an offset, and in range once in UTC: a naive time or 0001-01-01T00:00+23:59 gave 500
    since: AwareDatetime | None = None

    @field_validator("since")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValueError("out of range once converted to UTC") from None


@requires(Permission.READ)
async def export_audit(request: web.Request) -> web.Response:
    query = parse_query(request, AuditQuery)
    if isinstance(query, web.Response):
        return query
    who = principal(request)
    customer = who.tenant if who.scoped else query.customer
    rows: list[dict[str, Any]] = []
    # another tenant's log answers empty, as a customer that does not exist
    if not who.scoped or query.customer in {None, who.tenant}:
        rows = await audit.entries(
            request.app[STATE].store, customer_id=customer, kind=query.kind, since=query.since
        )
    if query.format == "csv":
        return web.Response(text=audit.to_csv(rows), content_type="text/csv")
    return web.Response(text=audit.to_jsonl(rows), content_type="application/x-ndjson")


def add_routes(app: web.Application) -> None:
    app.router.add_put("/api/v1/contracts", put_contracts)
    app.router.add_get("/api/v1/customers", list_customers)
    app.router.add_get("/api/v1/customers/{id}", get_customer)
    app.router.add_get("/api/v1/customers/{id}/windows", customer_windows)
    app.router.add_get("/api/v1/customers/{id}/approvals", list_approvals)
    app.router.add_post("/api/v1/customers/{id}/approvals", post_approval)
    app.router.add_put("/api/v1/customers/{id}/webhook", put_webhook)
    app.router.add_put("/api/v1/scope/{site}/{device}", put_scope)
    app.router.add_get("/api/v1/audit", export_audit)
