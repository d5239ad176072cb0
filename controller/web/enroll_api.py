"""REST API of site enrollment (admin only): which agent speaks for a site, with which broker user.

* ``POST /api/v1/enrollments`` ``{"site_id", "agent_id"}``: 201 with the agent's broker username
  and password (the password in this answer only; stored hashed), 409 when the site (or the
  agent, for another site) is enrolled, 422 naming each bad field.
* ``GET /api/v1/enrollments``: the enrolled sites, never a password.
* ``DELETE /api/v1/enrollments/{site_id}``: 204 revoked (the site's messages are refused from
  the next flush on), 404 not enrolled.
* ``POST /api/v1/enrollments/{site_id}/rotate``: 200 with a new password (once), 404.

After every change, ``fernwart controller broker-config`` writes the broker's users and ACL.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from collector.wire import IDENT_PATTERN
from controller.auth import Permission
from controller.storage import enrollment
from controller.web.auth import principal, requires
from controller.web.responses import error as _error
from controller.web.responses import json_model as _json
from controller.web.state import STATE

log = structlog.get_logger(__name__)

_MAX_BODY = 4096
Ident = Annotated[str, StringConstraints(pattern=IDENT_PATTERN)]


class EnrollmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    site_id: Ident
    agent_id: Ident = Field(description="also the agent's broker username: no ':'")


class EnrollmentOut(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    site_id: str
    agent_id: str
    broker_username: str
    registered_at: datetime
    enrolled_by: str | None
    revoked_at: datetime | None
    has_password: bool


class Credentials(EnrollmentOut):
    """An enrollment with its broker password: in the answer to enroll or rotate, and nowhere else."""

    password: str


class EnrollmentList(BaseModel):
    items: list[EnrollmentOut]


def _who(request: web.Request) -> str | None:
    try:
        return principal(request).name[:128]
    except RuntimeError:  # the auth middleware is not installed (a test app)
        return None


async def _body(request: web.Request) -> EnrollmentIn | web.Response:
    if request.content_length is not None and request.content_length > _MAX_BODY:
        return _error(413, [{"loc": ["body"], "msg": f"request body exceeds {_MAX_BODY} bytes"}])
    raw = await request.content.read(_MAX_BODY + 1)
    if len(raw) > _MAX_BODY:
        return _error(413, [{"loc": ["body"], "msg": f"request body exceeds {_MAX_BODY} bytes"}])
    try:
        return EnrollmentIn.model_validate_json(raw)
    except ValidationError as err:
        return _error(
            422,
            [
                {"loc": ["body", *item["loc"]], "msg": item["msg"]}
                for item in err.errors(include_url=False, include_context=False, include_input=False)
            ],
        )


def _credentials(found: enrollment.Enrollment, password: str) -> web.Response:
    return _json(Credentials(**found.public(), password=password), status=201)


@requires(Permission.ADMIN)
async def post_enrollment(request: web.Request) -> web.Response:
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    try:
        found, password = await enrollment.enroll(
            request.app[STATE].store, body.site_id, body.agent_id, enrolled_by=_who(request)
        )
    except enrollment.AlreadyEnrolled as err:
        return _error(409, [{"loc": ["body", err.field], "msg": err.message}])
    except enrollment.EnrollmentError as err:
        return _error(422, [{"loc": ["body", err.field], "msg": err.message}])
    log.info("site_enrolled", site=found.site_id, agent=found.agent_id, by=found.enrolled_by)
    return _credentials(found, password)


@requires(Permission.ADMIN)
async def list_enrollments(request: web.Request) -> web.Response:
    rows = await enrollment.list_enrollments(request.app[STATE].store)
    return _json(EnrollmentList(items=[EnrollmentOut(**row.public()) for row in rows]))


def _not_enrolled(site_id: str) -> web.Response:
    return _error(
        404, [{"loc": ["path", "site_id"], "msg": f"site {json.dumps(site_id)[:140]} is not enrolled"}]
    )


@requires(Permission.ADMIN)
async def delete_enrollment(request: web.Request) -> web.Response:
    site_id = request.match_info["site_id"]
    revoked = await enrollment.unenroll(request.app[STATE].store, site_id)
    if revoked is None:
        return _not_enrolled(site_id)
    log.info("site_unenrolled", site=revoked.site_id, agent=revoked.agent_id, by=_who(request))
    return web.Response(status=204)


@requires(Permission.ADMIN)
async def rotate_password(request: web.Request) -> web.Response:
    site_id = request.match_info["site_id"]
    rotated = await enrollment.rotate(request.app[STATE].store, site_id)
    if rotated is None:
        return _not_enrolled(site_id)
    found, password = rotated
    log.info("broker_password_rotated", site=found.site_id, agent=found.agent_id, by=_who(request))
    response = _credentials(found, password)
    response.set_status(200)
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/enrollments", post_enrollment)
    app.router.add_get("/api/v1/enrollments", list_enrollments)
    app.router.add_delete("/api/v1/enrollments/{site_id}", delete_enrollment)
    app.router.add_post("/api/v1/enrollments/{site_id}/rotate", rotate_password)
