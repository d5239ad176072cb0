"""What a browser must not be able to do to the API, and what every response carries.

* **Host**: only the configured names answer (default: the bind address, ``localhost``,
  ``127.0.0.1``, ``::1``): a DNS-rebinding page, whose requests carry the attacker's host
  name, gets 421.
* **Origin**: a request whose ``Origin`` (or ``Sec-Fetch-Site: cross-site``) names another
  site is refused with 403, whatever its method; same-origin requests and clients that send
  no Origin (curl, the CLI) pass.
* **Content type**: a state-changing request (POST, PUT, PATCH, DELETE) with a body must send
  the type its route expects (``application/json`` unless the route says otherwise with
  :func:`accepts`): a cross-site ``text/plain`` form post, which a browser sends without a
  CORS preflight, gets 415.
* **Headers** on every response: a strict CSP with ``frame-ancestors 'none'``, ``nosniff``,
  no referrer, ``no-store`` on everything but static files, and no ``Server`` version banner.
* **Access log**: client address, token name, method, path, status, bytes and duration, one
  line per request (:class:`AccessLogger`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Middleware

from controller.web.responses import error

if TYPE_CHECKING:
    from controller.auth import Principal

# The key controller.web.auth stores the requester under (defined here: auth imports this module's
# neighbours, and the access logger must not import the auth middleware).
PRINCIPAL: web.RequestKey[Principal | None] = web.RequestKey("fernwart.principal")

log = structlog.get_logger("controller.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)

_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_ACCEPTS = "__fernwart_accepts__"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"

CSP = (
    "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self'; script-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
_WILDCARDS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 (names, not a bind)


def accepts(*content_types: str) -> Callable[[H], H]:
    """Declare the body types a state-changing handler takes (default: ``application/json``)."""

    def mark(handler: H) -> H:
        setattr(handler, _ACCEPTS, frozenset(content_types))
        return handler

    return mark


def allowed_hosts(bind_host: str, configured: Iterable[str]) -> frozenset[str]:
    """Host names (no port, lower case, IPv6 without brackets) that the API answers to."""
    names = {"localhost", "127.0.0.1", "::1"}
    if bind_host not in _WILDCARDS:
        names.add(bind_host)
    names.update(configured)
    return frozenset(_normal(name) for name in names)


def _normal(host: str) -> str:
    return host.strip().lower().removeprefix("[").removesuffix("]").rstrip(".")


def split_host(value: str) -> tuple[str, int | None] | None:
    """``host[:port]`` of a Host header, or None when it is malformed."""
    try:
        parts = urlsplit("//" + value)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host or parts.username is not None or parts.path or parts.query or parts.fragment:
        return None
    return _normal(host), port


def _same_origin(origin: str, host_header: str, scheme: str) -> bool:
    try:
        parts = urlsplit(origin)
        origin_port = parts.port
    except ValueError:
        return False
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return False
    own = split_host(host_header)
    if own is None:
        return False
    default = 443 if scheme == "https" else 80
    return (
        parts.scheme == scheme
        and _normal(parts.hostname) == own[0]
        and (origin_port or (443 if parts.scheme == "https" else 80)) == (own[1] or default)
    )


def make_middleware(hosts: frozenset[str]) -> Middleware:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        host_header = request.headers.get("Host", "")
        parsed = split_host(host_header)
        if parsed is None or parsed[0] not in hosts:
            msg = "this server does not answer to that host"
            return error(421, [{"loc": ["header", "Host"], "msg": msg}])
        origin = request.headers.get("Origin")
        if origin is not None and origin != "null" and not _same_origin(origin, host_header, request.scheme):
            return error(403, [{"loc": ["header", "Origin"], "msg": "cross-origin requests are refused"}])
        if origin == "null" or request.headers.get("Sec-Fetch-Site") == "cross-site":
            return error(403, [{"loc": ["header", "Origin"], "msg": "cross-site requests are refused"}])
        return await handler(request)

    return guard


@web.middleware
async def content_types(request: web.Request, handler: Handler) -> web.StreamResponse:
    """After authentication (an anonymous caller learns nothing but 401): the body type."""
    if request.method in _UNSAFE and _has_body(request):
        wanted: frozenset[str] = getattr(request.match_info.handler, _ACCEPTS, frozenset({JSON}))
        if request.content_type not in wanted:
            msg = f"expected {' or '.join(sorted(wanted))}"
            problem = {"loc": ["header", "Content-Type"], "msg": msg, "input": request.content_type[:100]}
            return error(415, [problem])
    return await handler(request)


def _has_body(request: web.Request) -> bool:
    # Only a non-empty body has a type to check (clients label even empty POSTs).
    return bool(request.content_length) or "Transfer-Encoding" in request.headers


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: after aiohttp set its defaults, before the headers are sent."""
    for name, value in _HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers["Server"] = "fernwart"  # replaces aiohttp's "Python/3.x aiohttp/3.y"
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"


class AccessLogger(AbstractAccessLogger):
    """One structured line per request; the token's name, never the token."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        who = request.get(PRINCIPAL)
        log.info(
            "http_request",
            client=_client(request),
            token=getattr(who, "name", None),
            method=request.method,
            path=request.path[:512],
            status=response.status,
            bytes=response.body_length,
            duration_ms=round(time * 1000, 1),
        )

    @property
    def enabled(self) -> bool:
        return True


def _client(request: web.BaseRequest) -> str | None:
    peer: Any = request.transport.get_extra_info("peername") if request.transport else None
    if isinstance(peer, tuple) and peer:
        try:
            return str(ipaddress.ip_address(peer[0]))
        except ValueError:
            return str(peer[0])
    return request.remote
