"""The HTTP server's limits: connection caps, header and body deadlines, idle keep-alive.

aiohttp has none of these but ``keepalive_timeout``, so :func:`serve` owns the server's
construction: it listens itself and puts a small protocol (:class:`_Guard`) in front of each of
aiohttp's ``RequestHandler`` s. The guard

* admits a connection only under ``max_connections_per_client`` (per IP address) and
  ``max_connections``; when all are taken it closes the connection that has been idle longest
  (no request in progress: a held-open attacker's socket before a real client's request) and
  refuses the new one only if none is idle. Refusing outright would let anyone holding
  ``max_connections`` idle sockets lock everyone out until the header deadline;
* closes a connection whose request head has not arrived within ``header_timeout_s`` of its
  opening or of the head's first byte, and fails a request whose body has not arrived within
  ``body_timeout_s`` of its head (408, connection closed);
* counts all of it in ``fernwart_http_connections_*`` and logs it in one aggregated line per
  :data:`LOG_INTERVAL_S` at most, so that a flood writes a bounded log.

aiohttp coupling, all of it in this module, written for aiohttp 3.14: a ``RequestHandler`` reads
``Server.request_factory`` and ``Server.request_handler`` when it is created; the factory is
called once per request when its head is parsed (``protocol`` is the handler), and the handler
is awaited for it. :func:`serve` wraps both. It refuses to start when they are missing, and warns
on another minor version (tests/controller/test_limits.py checks the behaviour).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import structlog
from aiohttp import web, web_response
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from prometheus_client import CollectorRegistry, Counter, Gauge

from controller.settings import HttpSettings
from controller.web.security import AccessLogger

log = structlog.get_logger(__name__)

WRITTEN_FOR_AIOHTTP = (3, 14)
# Descriptors kept for everything but HTTP clients: the database pool, SQLite's WAL files, MQTT,
# decode workers' pipes, logs, and sockets accepted in one burst before the guard closes them.
FD_RESERVE = 1024
BACKLOG = 1024
LOG_INTERVAL_S = 10.0

_Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


class BodyTimeout(TimeoutError):
    """The request body did not arrive within ``body_timeout_s`` (raised from its reads)."""


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as err:
            log.warning("fd_limit_not_raised", soft=soft, hard=hard, error=str(err))
            return soft
        return hard
    return soft


def connection_cap(configured: int, fd_limit: int) -> int:
    """``max_connections``, lowered so that the reserve of descriptors (a quarter of a small
    limit) stays free."""
    return max(1, min(configured, fd_limit - min(FD_RESERVE, fd_limit // 4)))


class ConnectionMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.open = Gauge("fernwart_http_connections_open", "Open HTTP connections", registry=registry)
        self.refused = Counter(
            "fernwart_http_connections_refused_total",
            "HTTP connections closed as they opened, by cap (per_client, total)",
            ["reason"],
            registry=registry,
        )
        self.closed = Counter(
            "fernwart_http_connections_closed_total",
            "HTTP connections closed by a limit (evicted, header_timeout, body_timeout)",
            ["reason"],
            registry=registry,
        )
        for reason in ("per_client", "total"):
            self.refused.labels(reason=reason)
        for reason in ("evicted", "header_timeout", "body_timeout"):
            self.closed.labels(reason=reason)


class _Guard(asyncio.Protocol):
    """One connection: admitted or refused, its deadlines, then aiohttp's handler behind it."""

    __slots__ = ("_limiter", "admitted", "client", "deadline", "in_request", "inner", "payload")

    def __init__(self, limiter: ConnectionLimiter) -> None:
        self._limiter = limiter
        self.inner: RequestHandler | None = None
        self.client = ""
        self.admitted = False
        self.in_request = False
        self.deadline: asyncio.TimerHandle | None = None
        self.payload: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self.client = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        if not self._limiter.admit(self):
            assert isinstance(transport, asyncio.Transport)  # a stream server's
            transport.abort()  # RST: the descriptor is free at once
            return
        self.inner = self._limiter.new_handler(self)
        self.inner.connection_made(transport)
        self.arm(self._limiter.settings.header_timeout_s, self.header_expired)

    def data_received(self, data: bytes) -> None:
        if self.inner is None:
            return
        if not self.in_request and self.deadline is None:  # the first byte of the next head
            self.arm(self._limiter.settings.header_timeout_s, self.header_expired)
        self.inner.data_received(data)

    def eof_received(self) -> None:
        if self.inner is not None:
            self.inner.eof_received()  # returns None: the transport closes itself

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.disarm()
        self._limiter.release(self)
        if self.inner is not None:
            self._limiter.forget(self.inner)
            self.inner.connection_lost(exc)

    def arm(self, delay_s: float, callback: Callable[[], None]) -> None:
        self.disarm()
        self.deadline = asyncio.get_running_loop().call_later(delay_s, callback)

    def disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def close(self) -> None:
        if self.inner is not None:
            self.inner.force_close()

    def header_expired(self) -> None:
        self.deadline = None
        if not self.in_request:
            self._limiter.closed("header_timeout")
            self.close()

    def body_expired(self) -> None:
        self.deadline = None
        if self.in_request and self.payload is not None and not self.payload.is_eof():
            self._limiter.closed("body_timeout")
            self.payload.set_exception(BodyTimeout(f"no complete body within {self._limiter.body_s}s"))

    def request_started(self, payload: Any) -> None:
        self.in_request = True
        self._limiter.busy(self)
        self.disarm()
        if not payload.is_eof():
            self.payload = payload
            self.arm(self._limiter.body_s, self.body_expired)

    def request_finished(self) -> None:
        self.disarm()
        self.payload = None
        self.in_request = False
        self._limiter.idle(self)


class ConnectionLimiter:
    """Admission, idle order and counters of every connection; the guards do the rest."""

    def __init__(
        self, server: web.Server, settings: HttpSettings, metrics: ConnectionMetrics, max_connections: int
    ) -> None:
        self.settings = settings
        self.body_s = settings.body_timeout_s
        self.max_connections = max_connections
        self._server = server
        self._metrics = metrics
        self._open = 0
        self._per_client: dict[str, int] = {}
        self._idle: dict[_Guard, None] = {}  # insertion order: idle longest first
        self._guards: dict[RequestHandler, _Guard] = {}
        self._pending_log: dict[str, int] = {}
        self._log_handle: asyncio.TimerHandle | None = None
        self._last_log = -LOG_INTERVAL_S
        metrics.open.set_function(lambda: self._open)
        _check_aiohttp(server)
        factory, handler = server.request_factory, server.request_handler
        server.request_factory = self._request_factory(factory)
        server.request_handler = self._request_handler(handler)

    def protocol(self) -> asyncio.Protocol:
        return _Guard(self)

    def new_handler(self, guard: _Guard) -> RequestHandler:
        handler = self._server()
        self._guards[handler] = guard
        return handler

    def forget(self, handler: RequestHandler) -> None:
        self._guards.pop(handler, None)

    def admit(self, guard: _Guard) -> bool:
        if self._per_client.get(guard.client, 0) >= self.settings.max_connections_per_client:
            self._count("per_client", refused=True)
            return False
        if self._open >= self.max_connections:
            victim = next(iter(self._idle), None)
            if victim is None:
                self._count("total", refused=True)
                return False
            self.release(victim)
            victim.disarm()
            victim.close()
            self.closed("evicted")
        guard.admitted = True
        self._open += 1
        self._per_client[guard.client] = self._per_client.get(guard.client, 0) + 1
        self._idle[guard] = None
        return True

    def release(self, guard: _Guard) -> None:
        if not guard.admitted:
            return
        guard.admitted = False
        self._open -= 1
        left = self._per_client[guard.client] - 1
        if left:
            self._per_client[guard.client] = left
        else:
            del self._per_client[guard.client]
        self._idle.pop(guard, None)

    def busy(self, guard: _Guard) -> None:
        self._idle.pop(guard, None)

    def idle(self, guard: _Guard) -> None:
        if guard.admitted:
            self._idle[guard] = None

    def closed(self, reason: str) -> None:
        self._count(reason, refused=False)

    def _count(self, reason: str, *, refused: bool) -> None:
        (self._metrics.refused if refused else self._metrics.closed).labels(reason=reason).inc()
        key = f"refused_{reason}" if refused else reason
        self._pending_log[key] = self._pending_log.get(key, 0) + 1
        if self._log_handle is None:
            loop = asyncio.get_running_loop()
            self._log_handle = loop.call_at(max(loop.time(), self._last_log + LOG_INTERVAL_S), self._log)

    def _log(self) -> None:
        """One line for everything the limits did since the last one (a flood logs a line per interval)."""
        self._log_handle = None
        self._last_log = asyncio.get_running_loop().time()
        counts, self._pending_log = self._pending_log, {}
        log.warning("http_connections_limited", open=self._open, clients=len(self._per_client), **counts)

    def close(self) -> None:
        if self._log_handle is not None:
            self._log_handle.cancel()
            self._log()
        for guard in list(self._guards.values()):
            guard.disarm()

    def _request_factory(self, factory: Any) -> Any:
        guards = self._guards

        def make_request(message: Any, payload: Any, protocol: Any, writer: Any, task: Any) -> Any:
            guard = guards.get(protocol)
            if guard is not None:
                guard.request_started(payload)
            return factory(message, payload, protocol, writer, task)

        return make_request

    def _request_handler(self, handler: _Handler) -> _Handler:
        guards = self._guards

        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            guard = guards.get(request.protocol)
            try:
                return await handler(request)
            except BodyTimeout as err:
                response = web.json_response({"errors": [{"loc": ["body"], "msg": str(err)}]}, status=408)
                response.force_close()
                return response
            finally:
                if guard is not None:
                    guard.request_finished()

        return handle


def _check_aiohttp(server: web.Server) -> None:
    """Refuse to run if the hooks this module relies on are gone; warn on an untested version."""
    for name in ("request_factory", "request_handler"):
        if not callable(getattr(server, name, None)):
            msg = f"aiohttp {aiohttp.__version__}: web.Server.{name} is gone; update controller/web/limits.py"
            raise RuntimeError(msg)  # noqa: TRY004 (not a caller's type error: our dependency changed)
    version = tuple(int(part) for part in aiohttp.__version__.split(".")[:2] if part.isdigit())
    if version != WRITTEN_FOR_AIOHTTP:
        log.warning("aiohttp_version_untested", version=aiohttp.__version__, written_for="3.14")


class _MalformedRequests(logging.Filter):
    """aiohttp logs every malformed request (a bad request line or header) with a traceback at
    ERROR: any anonymous client could fill the log with them. They become one line per
    ``every_s`` with a count; every other record (a handler's real error) passes unchanged."""

    def __init__(self, every_s: float = 10.0) -> None:
        super().__init__()
        self.every_s = every_s
        self.count = 0
        self.last = -every_s

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True
        self.count += 1
        now = time.monotonic()
        if now - self.last < self.every_s:
            return False
        record.msg, record.args, record.exc_info, record.exc_text = (
            "malformed HTTP requests answered 400: %d since the last report (latest: %s)",
            (self.count, str(error).splitlines()[0][:200]),
            None,
            None,
        )
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        self.count, self.last = 0, now
        return True


def _server_logger() -> logging.Logger:
    logger = logging.getLogger("controller.http")
    if not any(isinstance(f, _MalformedRequests) for f in logger.filters):
        logger.addFilter(_MalformedRequests())
    return logger


def hide_server_version() -> None:
    """``Server: fernwart`` also on the responses aiohttp makes before any application code runs
    (400 for a malformed request): ``on_response_prepare`` never sees those, and aiohttp fills in
    its module's ``SERVER_SOFTWARE`` ("Python/3.x aiohttp/3.y")."""
    web_response.SERVER_SOFTWARE = "fernwart"  # type: ignore[attr-defined]


@contextlib.asynccontextmanager
async def serve(
    app: web.Application, settings: HttpSettings, registry: CollectorRegistry
) -> AsyncIterator[ConnectionLimiter]:
    """Serve ``app`` on ``settings.host:port`` under the limits, until the block exits."""
    fd_limit = raise_fd_limit()
    cap = connection_cap(settings.max_connections, fd_limit)
    if cap < settings.max_connections:
        log.warning(
            "http_max_connections_lowered", configured=settings.max_connections, to=cap, fd_limit=fd_limit
        )
    # The access log (controller.web.security.AccessLogger): client, token name, method, path,
    # status, duration; one line per request, so a flood of idle connections writes nothing.
    access: dict[str, Any] = (
        {"access_log": logging.getLogger("controller.access"), "access_log_class": AccessLogger}
        if settings.access_log
        else {"access_log": None}
    )
    hide_server_version()
    runner = web.AppRunner(
        app, keepalive_timeout=settings.keepalive_s, handle_signals=False, logger=_server_logger(), **access
    )
    await runner.setup()
    try:
        assert runner.server is not None  # set by setup()
        limiter = ConnectionLimiter(runner.server, settings, ConnectionMetrics(registry), cap)
        loop = asyncio.get_running_loop()
        listener = await loop.create_server(
            limiter.protocol, settings.host, settings.port, backlog=BACKLOG, reuse_address=True
        )
        try:
            yield limiter
        finally:
            listener.close()
            limiter.close()
    finally:
        await runner.cleanup()
