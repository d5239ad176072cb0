"""The controller daemon: the only module that knows every part.

Start in order (store + migrations → HTTP → ingest → stale marker), then READY=1. The first
SIGTERM/SIGINT stops taking messages, lets the writer commit and acknowledge what it has, and
exits; a second one exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

import structlog
from aiohttp import web

from collector.sdnotify import notify as sd_notify
from collector.sdnotify import watchdog_interval_s
from controller.ingest.session import Ingest
from controller.inventory import run_stale_marker
from controller.matching import MatchingService
from controller.metrics import Metrics
from controller.settings import ControllerSettings
from controller.storage import Store
from controller.web import AppState, make_app
from controller.web.security import AccessLogger

log = structlog.get_logger(__name__)


def install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            log.warning("second_signal_exiting_now", signal=signal.Signals(signum).name)
            os._exit(1)
        log.info("stopping", signal=signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)


async def _watchdog(stop: asyncio.Event, interval_s: float) -> None:
    while not stop.is_set():
        sd_notify("WATCHDOG=1")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval_s):
                await stop.wait()


def warn_plain_password(settings: ControllerSettings) -> None:
    """TLS is the documented default: a broker password sent in clear is worth a warning."""
    mqtt = settings.mqtt
    if mqtt.password is not None and not mqtt.tls:
        log.warning(
            "mqtt_password_without_tls",
            host=mqtt.host,
            port=mqtt.port,
            hint="the broker password travels in clear: set [mqtt] tls = true (docs/broker.md)",
        )


async def run(
    settings: ControllerSettings, stop: asyncio.Event | None = None, *, handle_signals: bool = True
) -> None:
    """Run until ``stop`` is set (or SIGTERM/SIGINT when ``handle_signals``)."""
    stop = stop if stop is not None else asyncio.Event()
    if handle_signals:
        install_signal_handlers(stop)
    metrics = Metrics()
    warn_plain_password(settings)
    async with Store.open(
        settings.database.url.get_secret_value(),
        tenant_of=settings.tenant_of,
        dead_letter_max_bytes=settings.ingest.dead_letter_max_bytes,
        max_future_skew_s=settings.ingest.max_future_skew_s,
        pool_size=settings.database.pool_size,
    ) as store:
        ingest = Ingest(settings, store, metrics)
        matching = MatchingService(store, metrics.registry)
        await matching.start()  # the catalog and findings as stored, before the API answers
        store.add_flush_listener(matching.on_flush)
        app = make_app(
            AppState(store, metrics, ingest.connected.is_set, matching, settings.http, settings.tenant_of)
        )
        if settings.http.access_log:
            runner = web.AppRunner(
                app, access_log=logging.getLogger("controller.access"), access_log_class=AccessLogger
            )
        else:
            runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, settings.http.host, settings.http.port)
            await site.start()
            log.info(
                "http_listening", host=settings.http.host, port=settings.http.port, database=store.dialect
            )
            async with asyncio.TaskGroup() as tg:
                tg.create_task(ingest.run(stop), name="ingest")
                tg.create_task(run_stale_marker(settings, store, metrics, stop), name="stale")
                tg.create_task(matching.run(stop), name="matching")
                watchdog = watchdog_interval_s()
                if watchdog is not None:
                    tg.create_task(_watchdog(stop, watchdog), name="watchdog")
                sd_notify("READY=1")
                log.info("controller_ready")
                await stop.wait()
                sd_notify("STOPPING=1")
        finally:
            await runner.cleanup()
    log.info("controller_stopped")
