"""``/api/v1/tokens`` (noc-admin) and ``/api/v1/whoami`` (any token).

* ``POST /api/v1/tokens`` ``{"name", "role", "tenant"?, "expires_at"?}``: 201 with the token
  record and ``token``, the secret, shown this once.
* ``GET /api/v1/tokens``: every token's record (never a secret or hash).
* ``DELETE /api/v1/tokens/{id}``: revokes it (and its console sessions); 204, 404.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from controller.auth import Permission, Role, TokenRequestError
from controller.storage import tokens
from controller.web.auth import principal, requires
from controller.web.responses import error
from controller.web.state import STATE
from runtime.config import clean_message

MAX_BODY = 16 * 1024


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=128)
    role: Role
    tenant: str | None = Field(None, min_length=1, max_length=128)
    expires_at: AwareDatetime | None = None


def _out(info: tokens.TokenInfo) -> dict[str, object]:
    return info.record()  # never the secret or its hash


@requires(Permission.ADMIN)
async def create(request: web.Request) -> web.Response:
    if request.content_length is not None and request.content_length > MAX_BODY:
        return error(413, [{"loc": ["body"], "msg": f"request body exceeds {MAX_BODY} bytes"}])
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        return error(413, [{"loc": ["body"], "msg": f"request body exceeds {MAX_BODY} bytes"}])
    try:
        body = TokenRequest.model_validate_json(raw)
    except ValidationError as err:
        return error(
            422,
            [
                {"loc": ["body", *item["loc"]], "msg": clean_message(item["msg"])}
                for item in err.errors(include_url=False, include_context=False, include_input=False)
            ],
        )
    if body.expires_at is not None and body.expires_at <= datetime.now(UTC):
        return error(422, [{"loc": ["body", "expires_at"], "msg": "lies in the past"}])
    try:
        info, secret = await tokens.create_token(
            request.app[STATE].store,
            name=body.name,
            role=body.role,
            tenant=body.tenant,
            expires_at=body.expires_at,
            created_by=principal(request).name,
        )
    except TokenRequestError as err:
        field, _, msg = str(err).partition(": ")
        return error(422, [{"loc": ["body", field], "msg": msg}])
    return web.json_response({**_out(info), "token": secret}, status=201)


@requires(Permission.ADMIN)
async def list_all(request: web.Request) -> web.Response:
    found = await tokens.list_tokens(request.app[STATE].store)
    return web.json_response({"items": [_out(info) for info in found]})


@requires(Permission.ADMIN)
async def revoke(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        return error(422, [{"loc": ["path", "id"], "msg": "expected a token id (a positive integer)"}])
    if await tokens.revoke_token(request.app[STATE].store, int(raw)) is None:
        return error(404, [{"loc": ["path", "id"], "msg": f"no token with id {raw}"}])
    return web.Response(status=204)


@requires(Permission.READ)
async def whoami(request: web.Request) -> web.Response:
    who = principal(request)
    return web.json_response({"name": who.name, "role": who.role.value, "tenant": who.tenant})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/tokens", create)
    app.router.add_get("/api/v1/tokens", list_all)
    app.router.add_delete("/api/v1/tokens/{id}", revoke)
    app.router.add_get("/api/v1/whoami", whoami)
