"""The agent service: the only module that knows every part.

Start order: outbox (increments the boot counter) → drivers → batcher, publisher, pollers (one
TaskGroup) → ``READY=1``. On the first SIGTERM/SIGINT (or when the caller sets ``stop``):
``STOPPING=1``, pollers are cancelled (a poll in flight is abandoned), the linger buffer is
flushed into the outbox, the publisher drains the outbox for at most ``shutdown.drain_s``,
publishes the retained ``offline`` status and disconnects cleanly, then drivers and the outbox
close. A second signal exits at once with 130 (:mod:`runtime.signals`); the outbox keeps whatever
was not sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

import structlog

from agent.batcher import Batcher
from agent.commands import CommandExecutor, DriverSet, SourceLookup
from agent.metrics import AgentMetrics
from agent.outbox import Outbox
from agent.poller import Poller
from agent.publisher import Publisher
from collector.model import utcnow
from collector.registry import load_driver
from collector.wire.messages import AgentState, AgentStatus
from runtime import sdnotify
from runtime.signals import install_signal_handlers

if TYPE_CHECKING:
    from agent.settings import AgentSettings, DeviceEntry
    from collector.base import Driver

log = structlog.get_logger(__name__)

DriverFactoryFn = Callable[["DeviceEntry"], "Driver"]


def agent_version() -> str:
    try:
        return version("fernwart")
    except PackageNotFoundError:
        return "0+unknown"


def registry_driver(device: DeviceEntry) -> Driver:
    """The default driver factory: the class registered for ``device.kind``, with its options."""
    factory = load_driver(device.kind)
    options = device.driver_options
    if options is None:
        options = factory.options_model.model_validate(device.options)
    return factory(device.id, options)


class AgentService:
    """One agent. ``run`` returns once stopped and drained."""

    def __init__(
        self,
        settings: AgentSettings,
        *,
        driver_factory: DriverFactoryFn = registry_driver,
        metrics: AgentMetrics | None = None,
        command_sources: SourceLookup | None = None,
    ) -> None:
        self.settings = settings
        # What executes commands; default: the drivers by device id (SourceSet once sources merge).
        self.command_sources = command_sources
        self.commands: CommandExecutor | None = None
        self.driver_factory = driver_factory
        self.metrics = metrics if metrics is not None else AgentMetrics()
        self.outbox: Outbox | None = None
        self.publisher: Publisher | None = None
        self.pollers: list[Poller] = []
        self.ready = asyncio.Event()
        self._kinds = sorted({d.kind for d in settings.devices})

    def status(self, state: AgentState) -> AgentStatus:
        s = self.settings
        online = state is AgentState.ONLINE
        return AgentStatus(
            site_id=s.site_id,
            agent_id=s.agent_id,
            sent_at=utcnow(),
            state=state,
            boot=self.outbox.boot if self.outbox else 0,
            version=agent_version(),
            capabilities=["obs", *(f"driver:{kind}" for kind in self._kinds)] if online else [],
            devices=[d.id for d in s.devices] if online else [],
            intervals_s={d.id: s.interval_for(d) for d in s.devices} if online else {},
        )

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        if s.mqtt.password is not None and s.mqtt.tls is None:
            # TLS is the documented default for agents (docs/broker.md).
            log.warning(
                "mqtt_password_without_tls",
                host=s.mqtt.host,
                port=s.mqtt.port,
                hint="the broker password travels in clear: add an [mqtt.tls] table",
            )
        async with contextlib.AsyncExitStack() as stack:
            outbox = await stack.enter_async_context(Outbox.open(s.outbox, self.metrics))
            self.outbox = outbox
            semaphore = asyncio.Semaphore(s.poll.max_concurrency)
            batcher = Batcher(
                outbox,
                site_id=s.site_id,
                agent_id=s.agent_id,
                linger_s=s.outbox.linger_ms / 1000,
                max_batch=s.outbox.max_batch,
                metrics=self.metrics,
            )
            polled = frozenset(device.id for device in s.devices)
            drivers: dict[str, Driver] = {}
            for device in s.devices:
                driver = drivers[device.id] = self.driver_factory(device)
                stack.push_async_callback(_close_driver, driver, device.id)
                self.pollers.append(
                    Poller(
                        device.id,
                        device.kind,
                        driver,
                        interval_s=s.interval_for(device),
                        timeout_s=s.timeout_for(device),
                        jitter_fraction=s.poll.jitter_fraction,
                        semaphore=semaphore,
                        emit=batcher.add,
                        metrics=self.metrics,
                        polled=polled,
                    )
                )
            self.publisher = Publisher(s, outbox, self.status, self.metrics)
            if s.controller is not None:  # the key was checked with the settings
                acting = self.command_sources if self.command_sources is not None else DriverSet(drivers)
                self.commands = CommandExecutor(s, s.controller.public_key(), acting, self.metrics)
            log.info(
                "agent_started",
                site=s.site_id,
                agent=s.agent_id,
                boot=outbox.boot,
                devices=len(s.devices),
                outbox_rows=outbox.rows,
                outbox_unavailable=outbox.unavailable,
                version=agent_version(),
            )
            publisher_stop = asyncio.Event()
            async with asyncio.TaskGroup() as tg:
                publishing = tg.create_task(self.publisher.run(publisher_stop), name="publish")
                watchdog_s = sdnotify.watchdog_interval_s()
                watchdog = tg.create_task(sdnotify.watchdog_loop(watchdog_s)) if watchdog_s else None
                batching = tg.create_task(batcher.run(), name="batch")
                commands_stop = asyncio.Event()
                if self.commands is not None:
                    tg.create_task(self.commands.run(commands_stop), name="commands")
                polls = [tg.create_task(p.run(stop), name=f"poll:{p.device_id}") for p in self.pollers]
                sdnotify.notify("READY=1")
                self.ready.set()
                await stop.wait()
                sdnotify.notify("STOPPING=1")
                log.info("agent_stopping", outbox_rows=outbox.rows, pending=batcher.pending)
                for task in polls:
                    task.cancel()
                await asyncio.gather(*polls, return_exceptions=True)
                commands_stop.set()
                batcher.close()
                await batching  # flushes the linger buffer into the outbox
                publisher_stop.set()  # the publisher drains, says offline and returns
                await publishing
                if watchdog is not None:  # kept pinging while draining
                    watchdog.cancel()
            log.info(
                "agent_stopped",
                boot=outbox.boot,
                seqs=outbox.seqs_assigned,
                outbox_rows=outbox.rows,
                dropped=outbox.dropped,
                not_stored=outbox.store_failed,
            )


async def _close_driver(driver: Driver, device_id: str) -> None:
    """A driver that fails to close must not turn a clean stop into a failure."""
    try:
        async with asyncio.timeout(2):
            await driver.aclose()
    except Exception as err:
        log.warning("driver_close_failed", device=device_id, error=f"{type(err).__name__}: {err}")


async def run(
    settings: AgentSettings,
    *,
    driver_factory: DriverFactoryFn = registry_driver,
    stop: asyncio.Event | None = None,
) -> None:
    """Run the agent until SIGTERM/SIGINT (or until ``stop`` is set), then drain and return."""
    stop = stop if stop is not None else asyncio.Event()
    remove_handlers = install_signal_handlers(stop)
    try:
        await AgentService(settings, driver_factory=driver_factory).run(stop)
    finally:
        remove_handlers()
