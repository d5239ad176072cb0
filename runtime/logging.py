"""structlog set-up shared by both daemons and the CLI.

JSON to stdout when it is not a TTY (journald keeps it), the console renderer when it is.
Standard-library loggers go through the same chain, exceptions included.

No secret reaches the output: tracebacks are rendered without frame locals (a frame of asyncpg's
``connect`` holds the database password; structlog and rich show locals by default), values of
secret-named keys are masked, and a last step over each rendered line masks URL passwords and every
value registered with :mod:`runtime.redaction` (the daemons register their settings' secrets at
start). Unhandled exceptions (``sys.excepthook``, ``threading.excepthook``) are logged through the
same chain instead of printed raw to stderr.
"""

from __future__ import annotations

import logging
import sys
import threading
from types import TracebackType
from typing import Any, TextIO

import structlog
from structlog.tracebacks import ExceptionDictTransformer

from runtime.redaction import SECRET_KEY_WORDS, scrub

_MASKED = "**********"

# Frame locals off: they are where the secrets are (connection parameters, settings, options).
exception_to_dict = structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
_console_tracebacks = structlog.dev.RichTracebackFormatter(show_locals=False, color_system=None)


def redact_secrets(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for key in list(event_dict):
        if any(word in key.lower() for word in SECRET_KEY_WORDS):
            event_dict[key] = _MASKED
    return event_dict


def scrub_rendered(_logger: Any, _method: str, rendered: Any) -> Any:
    """The last processor: mask registered secrets and URL passwords in the rendered line."""
    if isinstance(rendered, bytes):
        return scrub(rendered.decode("utf-8", "replace")).encode()
    return scrub(rendered)


def _log_unhandled(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None, *, thread: str | None = None
) -> None:
    structlog.get_logger("unhandled").critical(
        "unhandled_exception", thread=thread, exc_info=(exc_type, exc, tb)
    )


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None:
        return
    name = args.thread.name if args.thread is not None else None
    _log_unhandled(args.exc_type, args.exc_value, args.exc_traceback, thread=name)


def configure_logging(
    level: str = "info", *, json: bool | None = None, stream: TextIO | None = None, cache: bool = True
) -> None:
    """Configure structlog and stdlib logging once. ``json=None`` picks by ``isatty``. Daemons log
    to stdout (the journal) and bind each module's logger on first use (``cache``); a one-shot
    command whose stdout carries its report passes ``stream=sys.stderr, cache=False``, so that the
    modules' loggers stay unbound and a later configuration in the same process (another command
    run in-process, structlog's ``capture_logs``) still takes effect."""
    out = sys.stdout if stream is None else stream
    use_json = (not out.isatty()) if json is None else json
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    exceptions: Any = exception_to_dict if use_json else structlog.dev.set_exc_info
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=_console_tracebacks)
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            exceptions,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=cache,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        # Records of stdlib loggers (asyncio's "Task exception was never retrieved", SQLAlchemy)
        # carry exc_info too: render it the same way, without locals.
        foreign_pre_chain=[*shared, exceptions],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer, scrub_rendered],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Chatty libraries stay at warning unless asked for.
    for name in ("amqtt", "transitions", "aiosqlite", "asyncio", "pysnmp", "snmpsim"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    sys.excepthook = _log_unhandled
    threading.excepthook = _thread_excepthook
