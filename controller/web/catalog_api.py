"""REST API of the advisory catalog: advisories, KEV, findings, a device's findings.

* ``POST /api/v1/advisories``: one CSAF document; 201 added, 200 replaced or unchanged, 422 with
  ``{"errors": [{"document", "path", "reason"}]}``, 413 above :data:`MAX_BODY_BYTES`, 507 when a
  new advisory would exceed ``[catalog] max_advisories``.
* ``DELETE /api/v1/advisories/{id}``: 204, 404.
* ``GET /api/v1/advisories`` (limit, offset): summaries with affected-device counts.
* ``GET /api/v1/advisories/{id}``: summary, CVEs, products, and every device it concerns.
* ``PUT /api/v1/kev``: the CISA KEV JSON feed; ``GET /api/v1/kev``: its version and size.
* ``GET /api/v1/findings`` (tenant, site, device, advisory, severity, kev, status, limit, offset):
  KEV first, then by CVSS.
* ``GET /api/v1/devices/{id}/findings``: the device's findings, summary and recommended target.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from aiohttp import web

from controller.auth import Permission
from controller.storage.catalog_reads import FindingFilter
from controller.storage.catalog_store import AdvisoryQuotaExceeded
from controller.web.auth import principal, requires, tenant_scope, visible
from controller.web.catalog_schemas import (
    AdvisoryDetail,
    AdvisoryPage,
    AdvisoryQuery,
    DeviceFindings,
    FindingOut,
    FindingPage,
    FindingQuery,
    summarize,
)
from controller.web.responses import device_pk, text_id
from controller.web.responses import error as _error
from controller.web.responses import json_model as _json
from controller.web.responses import parse_query as _query
from controller.web.state import STATE
from firmware_catalog import Advisory, DocumentError, parse_advisory

log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 16 * 1024 * 1024


def _unavailable() -> web.Response:
    return _error(503, [{"loc": [], "msg": "the advisory catalog is not running in this process"}])


async def _body(request: web.Request) -> bytes | web.Response:
    """The request body, at most MAX_BODY_BYTES (413 beyond, without reading the rest)."""
    too_large = _error(
        413, [{"loc": ["body"], "msg": f"request body exceeds the limit of {MAX_BODY_BYTES} bytes"}]
    )
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return too_large
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(1024 * 1024)
        if not chunk:
            break
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _document_errors(err: DocumentError) -> web.Response:
    return _error(422, [{"document": err.document, "path": err.path, "reason": err.reason}])


@requires(Permission.ADMIN)
async def post_advisory(request: web.Request) -> web.Response:
    matching = request.app[STATE].matching
    if matching is None:
        return _unavailable()
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    source = request.headers.get("X-Fernwart-Source", "api")[:1024]
    try:
        advisory, change, devices = await matching.add_advisory(body, source)
    except DocumentError as err:
        log.info("advisory_rejected", document=err.document, path=err.path, reason=err.reason[:300])
        return _document_errors(err)
    except AdvisoryQuotaExceeded as err:
        log.warning("advisory_refused_quota", limit=err.limit)
        return _error(507, [{"loc": ["body"], "msg": str(err)}])
    payload = {"result": change, "devices_recomputed": devices, "advisory": advisory.summary()}
    return web.json_response(payload, status=201 if change == "added" else 200)


@requires(Permission.ADMIN)
async def delete_advisory(request: web.Request) -> web.Response:
    matching = request.app[STATE].matching
    if matching is None:
        return _unavailable()
    advisory_id = text_id(request.match_info["id"])
    if isinstance(advisory_id, web.Response):
        return advisory_id
    if await matching.remove_advisory(advisory_id) is None:
        return _error(404, [{"loc": ["path", "id"], "msg": f"no advisory with id {advisory_id!r}"}])
    return web.Response(status=204)


@requires(Permission.READ)
async def list_advisories(request: web.Request) -> web.Response:
    matching = request.app[STATE].matching
    if matching is None:
        return _unavailable()
    query = _query(request, AdvisoryQuery)
    if isinstance(query, web.Response):
        return query
    who = principal(request)
    rows, total = await matching.store.list_advisories(
        query.limit, query.offset, tenant=who.tenant if who.scoped else None
    )
    page = AdvisoryPage.of([summarize(row) for row in rows], total, query.limit, query.offset)
    return _json(page)


@requires(Permission.READ)
async def get_advisory(request: web.Request) -> web.Response:
    matching = request.app[STATE].matching
    if matching is None:
        return _unavailable()
    advisory_id = text_id(request.match_info["id"])
    if isinstance(advisory_id, web.Response):
        return advisory_id
    who = principal(request)
    row = await matching.store.get_advisory(advisory_id, tenant=who.tenant if who.scoped else None)
    if row is None:
        return _error(404, [{"loc": ["path", "id"], "msg": f"no advisory with id {advisory_id!r}"}])
    advisory = matching.catalog.get(advisory_id)
    if advisory is None or advisory.current_release_date != row["current_release_date"]:
        advisory = await asyncio.to_thread(_parse_stored, row)  # imported by another controller instance
    findings = row.pop("findings")
    affected = sum(1 for f in findings if f["status"] == "affected")
    summary = summarize({**row, "affected_devices": affected, "devices": len(findings)})
    detail = AdvisoryDetail.model_validate(
        {
            **summary.model_dump(),
            "product_tree": _products(advisory),
            "kev_cves": [cve for cve in row["cves"] if cve in matching.catalog.kev],
            "findings": findings,
        }
    )
    return _json(detail)


def _parse_stored(row: dict[str, Any]) -> Advisory | None:
    import json  # noqa: PLC0415 (rarely needed)

    try:
        return parse_advisory(json.loads(row["document"]), row["source"], validate=False)
    except (DocumentError, ValueError):
        return None


def _products(advisory: Advisory | None) -> list[dict[str, Any]]:
    if advisory is None:
        return []
    return [
        {
            "product_id": entry.product_id,
            "name": entry.name,
            "vendor": entry.vendor,
            "product": entry.product,
            "version": entry.version,
            "version_range": str(entry.version_range) if entry.version_range else entry.range_text,
        }
        for entry in advisory.products.values()
    ]


@requires(Permission.ADMIN)
async def put_kev(request: web.Request) -> web.Response:
    matching = request.app[STATE].matching
    if matching is None:
        return _unavailable()
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    try:
        kev = await matching.set_kev(body, request.headers.get("X-Fernwart-Source", "api")[:1024])
    except DocumentError as err:
        return _document_errors(err)
    skipped = [{"document": e.document, "path": e.path, "reason": e.reason} for e in kev.errors]
    return web.json_response({"version": kev.version, "entries": len(kev), "skipped": skipped})


@requires(Permission.READ)
async def get_kev(request: web.Request) -> web.Response:
    matching = request.app[STATE].matching
    if matching is None:
        return _unavailable()
    kev = matching.catalog.kev
    return web.json_response({"version": kev.version, "entries": len(kev)})


@requires(Permission.READ)
async def list_findings(request: web.Request) -> web.Response:
    matching = request.app[STATE].matching
    if matching is None:
        return _unavailable()
    query = _query(request, FindingQuery)
    if isinstance(query, web.Response):
        return query
    tenant, possible = tenant_scope(request, query.tenant)
    flt = FindingFilter(**{**query.model_dump(), "tenant": tenant})
    rows: list[dict[str, Any]] = []
    total = 0
    if possible:
        rows, total = await matching.store.list_findings(flt)
    page = FindingPage.of([FindingOut.model_validate(r) for r in rows], total, query.limit, query.offset)
    return _json(page)


@requires(Permission.READ)
async def device_findings(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state.matching is None:
        return _unavailable()
    pk = device_pk(request.match_info["id"])
    if isinstance(pk, web.Response):
        return pk
    device = await state.store.get_device(pk)
    if device is None or not visible(request, device["tenant"]):
        return _error(404, [{"loc": ["path", "id"], "msg": f"no device with id {pk}"}])
    rows, rec = await state.matching.store.device_findings(device["site_id"], device["device_id"])
    return _json(DeviceFindings.of(device, rows, rec))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/advisories", list_advisories)
    app.router.add_post("/api/v1/advisories", post_advisory)
    app.router.add_get("/api/v1/advisories/{id:.+}", get_advisory)  # tracking ids may hold "/"
    app.router.add_delete("/api/v1/advisories/{id:.+}", delete_advisory)
    app.router.add_get("/api/v1/kev", get_kev)
    app.router.add_put("/api/v1/kev", put_kev)
    app.router.add_get("/api/v1/findings", list_findings)
    app.router.add_get("/api/v1/devices/{id}/findings", device_findings)
