"""Authentication and authorization of every HTTP request.

Every handler declares what it needs, with :func:`requires` or :func:`public`; a handler that
declares nothing is refused (403, logged), so a route added without thought fails closed, and
``tests/controller/test_auth_routes.py`` walks every route.

Credentials, in order:

* ``Authorization: Bearer fwt_…`` — API clients, the CLI, scrapers.
* the console's session cookie (``fernwart_session``; opened at ``POST /login`` with a token,
  later with a password or OIDC). A cookie is sent by browsers on their own, so it counts for
  safe methods only (GET, HEAD); a state-changing request with a session must also carry the
  session's CSRF token (:func:`csrf_for`) in ``X-CSRF-Token`` or a form field ``csrf``, else 403.

Answers: no or unknown credentials 401 (``WWW-Authenticate: Bearer``), a role without the
permission 403. Objects of another tenant answer as missing ones do (404): the handlers check
that with :func:`visible`.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import structlog
from aiohttp import web

from controller.auth import Permission, Principal, looks_like_token, token_hash
from controller.storage import tokens
from controller.web import security
from controller.web.responses import error
from controller.web.state import STATE

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)

# request[PRINCIPAL]: the Principal, or None on public routes
PRINCIPAL = security.PRINCIPAL
SESSION_COOKIE = "fernwart_session"
SESSION_TTL = timedelta(hours=12)
_ATTR = "__fernwart_permission__"
_PUBLIC = "public"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def requires(permission: Permission) -> Callable[[H], H]:
    """Declare that ``handler`` needs ``permission``."""

    def mark(handler: H) -> H:
        setattr(handler, _ATTR, permission)
        return handler

    return mark


def public(handler: H) -> H:
    """Declare that ``handler`` answers without credentials (``/healthz``, the login page)."""
    setattr(handler, _ATTR, _PUBLIC)
    return handler


def declared(handler: Any) -> Permission | str | None:
    """What ``handler`` declared: a Permission, ``"public"``, or None (refused)."""
    return getattr(handler, _ATTR, None)


def principal(request: web.Request) -> Principal:
    """The authenticated principal of a handler that declared a permission."""
    found = request.get(PRINCIPAL)
    if not isinstance(found, Principal):
        raise TypeError("principal() called in a handler without a declared permission")
    return found


def visible(request: web.Request, tenant: str | None) -> bool:
    """Whether the requester may know that an object of ``tenant`` exists."""
    return principal(request).sees(tenant)


def tenant_scope(request: web.Request, asked: str | None) -> tuple[str | None, bool]:
    """The tenant filter to apply, and False when the request can only match nothing.

    NOC roles get what they asked for; a customer gets its own tenant, and nothing when it
    asked for another one (an empty answer, as for a tenant that does not exist).
    """
    who = principal(request)
    if not who.scoped:
        return asked, True
    if asked is not None and asked != who.tenant:
        return who.tenant, False
    return who.tenant, True


def unauthorized(msg: str = "authentication required: send Authorization: Bearer <token>") -> web.Response:
    response = error(401, [{"loc": ["header", "Authorization"], "msg": msg}])
    response.headers["WWW-Authenticate"] = 'Bearer realm="fernwart"'
    return response


def forbidden(msg: str) -> web.Response:
    return error(403, [{"loc": [], "msg": msg}])


async def _bearer(request: web.Request) -> tuple[tokens.TokenInfo | None, str | None]:
    header = request.headers.get("Authorization")
    if header is None:
        return None, None
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        return None, "expected Authorization: Bearer <token>"
    if not looks_like_token(value):
        return None, "the token is not valid"
    info = await tokens.authenticate(request.app[STATE].store, value)
    if info is None:
        return None, "the token is not valid, revoked or expired"
    return info, None


async def _session(request: web.Request) -> tokens.TokenInfo | None:
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id or len(session_id) > 128 or not session_id.isascii():
        return None
    return await tokens.session_token(request.app[STATE].store, session_id)


def csrf_for(session_id: str) -> str:
    """The CSRF token of a console session: derived from its id, so nothing more is stored."""
    return token_hash("csrf:" + session_id)


async def _csrf_ok(request: web.Request) -> bool:
    session_id = request.cookies.get(SESSION_COOKIE, "")
    sent = request.headers.get("X-CSRF-Token")
    if sent is None and request.content_type == "application/x-www-form-urlencoded":
        form = await request.post()
        field = form.get("csrf")
        sent = field if isinstance(field, str) else None
    return bool(sent) and hmac.compare_digest(str(sent), csrf_for(session_id))


def _wants_html(request: web.Request) -> bool:
    return request.method == "GET" and not request.path.startswith("/api/") and request.path != "/metrics"


@web.middleware
async def authenticate(  # noqa: PLR0911 (one answer per outcome, in the order checked)
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    need = declared(request.match_info.handler)
    if need == _PUBLIC:
        request[PRINCIPAL] = None
        return await handler(request)
    if request.match_info.http_exception is not None:
        # No route (404) or method (405): answer the same for everyone, without a lookup.
        return await handler(request)
    if not isinstance(need, Permission):
        log.error("route_without_permission", path=request.path, method=request.method)
        return forbidden("this route declares no permission and is refused")
    info, problem = await _bearer(request)
    if info is None and problem is None:
        info = await _session(request)
        if info is not None and request.method not in _SAFE and not await _csrf_ok(request):
            return forbidden("a console session needs its CSRF token for this request")
    if info is None:
        if _wants_html(request):
            from controller.web.console import login_page  # noqa: PLC0415 (console imports this module)

            return login_page("Sign in with an API token.", status=401)
        return unauthorized(problem) if problem else unauthorized()
    who = info.principal()
    request[PRINCIPAL] = who
    if not who.may(need):
        return forbidden(f"role {who.role.value} may not {need.value}")
    return await handler(request)
