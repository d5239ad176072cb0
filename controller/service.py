"""The controller daemon: the only module that knows every part.

Start in order (store + migrations → HTTP → ingest → stale marker), then READY=1. The first
SIGTERM/SIGINT stops taking messages, lets the writer commit and acknowledge what it has, and
exits; a second one exits at once with 130 (:mod:`runtime.signals`, the same for the agent).
"""

from __future__ import annotations

import asyncio

import structlog

from controller.campaigns.service import run_campaigns
from controller.commands import open_channel
from controller.ingest.session import Ingest
from controller.inventory import run_retention, run_stale_marker
from controller.matching import MatchingService
from controller.metrics import Metrics
from controller.retention import run_dead_letter_pruner
from controller.settings import ControllerSettings
from controller.storage import Store
from controller.web import AppState, limits, make_app
from runtime import sdnotify
from runtime.signals import install_signal_handlers

log = structlog.get_logger(__name__)


def warn_plain_password(settings: ControllerSettings) -> None:
    """TLS is the documented default: a broker password sent in clear is worth a warning."""
    mqtt = settings.mqtt
    if mqtt.password is not None and mqtt.tls is None:
        log.warning(
            "mqtt_password_without_tls",
            host=mqtt.host,
            port=mqtt.port,
            hint="the broker password travels in clear: add an [mqtt.tls] table (docs/broker.md)",
        )


async def run(
    settings: ControllerSettings, stop: asyncio.Event | None = None, *, handle_signals: bool = True
) -> None:
    """Run until ``stop`` is set (or SIGTERM/SIGINT when ``handle_signals``)."""
    stop = stop if stop is not None else asyncio.Event()
    remove_handlers = install_signal_handlers(stop) if handle_signals else None
    try:
        await _run(settings, stop)
    finally:
        if remove_handlers is not None:
            remove_handlers()


async def _run(settings: ControllerSettings, stop: asyncio.Event) -> None:
    metrics = Metrics()
    warn_plain_password(settings)
    async with Store.open(
        settings.database.url.get_secret_value(),
        tenant_of=settings.tenant_of,
        dead_letter_max_bytes=settings.ingest.dead_letter_max_bytes,
        max_future_skew_s=settings.ingest.max_future_skew_s,
        pool_size=settings.database.pool_size,
        create=False,  # a missing or empty database is refused: `fernwart controller init` creates it
    ) as store:
        ingest = Ingest(settings, store, metrics)
        matching = MatchingService(store, metrics.registry, max_advisories=settings.catalog.max_advisories)
        await matching.start()  # the catalog and findings as stored, before the API answers
        store.add_flush_listener(matching.on_flush)
        app = make_app(
            AppState(store, metrics, ingest.connected.is_set, matching, settings.http, settings.tenant_of)
        )
        commands = open_channel(settings, metrics.registry)  # campaigns send through it
        async with limits.serve(app, settings.http, metrics.registry) as limiter:
            log.info(
                "http_listening",
                host=settings.http.host,
                port=settings.http.port,
                database=store.dialect,
                max_connections=limiter.max_connections,
            )
            async with asyncio.TaskGroup() as tg:
                tg.create_task(ingest.run(stop), name="ingest")
                if commands is not None:
                    tg.create_task(commands.run(stop), name="commands")
                tg.create_task(run_stale_marker(settings, store, metrics, stop), name="stale")
                tg.create_task(
                    run_dead_letter_pruner(store, metrics, settings.ingest.dead_letter_max_rows, stop),
                    name="dead_letters",
                )
                tg.create_task(run_retention(settings, store, metrics, stop), name="retention")
                tg.create_task(matching.run(stop), name="matching")
                tg.create_task(
                    run_campaigns(settings, store, stop, commands, metrics.registry), name="campaigns"
                )
                watchdog = sdnotify.watchdog_interval_s()
                if watchdog is not None:
                    tg.create_task(sdnotify.watchdog_loop(watchdog, until=stop), name="watchdog")
                sdnotify.notify("READY=1")
                log.info("controller_ready")
                await stop.wait()
                sdnotify.notify("STOPPING=1")
    log.info("controller_stopped")
