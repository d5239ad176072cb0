"""The agent service: the only module that knows every part.

Start order: outbox (increments the boot counter) → sources (each ``[[devices]]`` entry is a
one-device source, each ``[[sources]]`` entry a tenant or codec; :attr:`AgentService.sources` maps
devices to them) → batcher, publisher, pollers (one
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
from typing import TYPE_CHECKING, cast

import structlog

from agent.batcher import Batcher
from agent.commands import CommandExecutor, SourceLookup
from agent.metrics import AgentMetrics
from agent.outbox import Outbox
from agent.poller import Poller
from agent.publisher import Publisher
from agent.sources import SourceSet
from collector.model import utcnow
from collector.registry import load_source
from collector.sources import DriverSource, is_source
from collector.wire.messages import AgentState, AgentStatus
from runtime import sdnotify
from runtime.signals import install_signal_handlers

if TYPE_CHECKING:
    from agent.settings import AgentSettings, PolledEntry
    from collector.base import Driver, Source
    from collector.sources import Collecting

log = structlog.get_logger(__name__)

# Makes the driver of one config entry: a source, or a one-device driver (adapted to a source).
DriverFactoryFn = Callable[["PolledEntry"], "Driver | Source"]


def agent_version() -> str:
    try:
        return version("fernwart")
    except PackageNotFoundError:
        return "0+unknown"


def registry_driver(entry: PolledEntry) -> Source:
    """The default driver factory: the class registered for ``entry.kind`` (a one-device driver
    adapted to a source, see :mod:`collector.sources`), with its options."""
    factory = load_source(entry.kind)
    options = entry.driver_options
    if options is None:
        options = factory.options_model.model_validate(entry.options)
    return factory(entry.id, options)


def as_collecting(entry: PolledEntry, made: Driver | Source) -> Collecting:
    """What a driver factory made, as the poller runs it: a source as it is, a one-device driver
    wrapped so that its one device is the entry's id."""
    if is_source(type(made)):
        return cast("Source", made)
    return DriverSource(entry.id, cast("Driver", made))


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
        # Which source acts on a device for a command; default: self.sources.
        self.command_sources = command_sources
        self.commands: CommandExecutor | None = None
        self.driver_factory = driver_factory
        self.metrics = metrics if metrics is not None else AgentMetrics()
        self.outbox: Outbox | None = None
        self.publisher: Publisher | None = None
        self.pollers: list[Poller] = []
        # device id → the source reporting it, for commands that act on a device.
        self.sources = SourceSet()
        self.ready = asyncio.Event()
        self._kinds = sorted({entry.kind for entry in settings.polled()})

    def intervals(self) -> dict[str, float]:
        """Every device this agent polls with its poll interval: the ``[[devices]]``, and the
        devices each source listed last (a source's interval is its devices')."""
        s = self.settings
        intervals = {d.id: s.interval_for(d) for d in s.devices}
        for poller in self.pollers:
            for device_id in poller.devices:
                intervals.setdefault(device_id, poller.interval_s)
        return intervals

    def status(self, state: AgentState) -> AgentStatus:
        s = self.settings
        online = state is AgentState.ONLINE
        intervals = self.intervals() if online else {}
        return AgentStatus(
            site_id=s.site_id,
            agent_id=s.agent_id,
            sent_at=utcnow(),
            state=state,
            boot=self.outbox.boot if self.outbox else 0,
            version=agent_version(),
            capabilities=["obs", *(f"driver:{kind}" for kind in self._kinds)] if online else [],
            devices=list(intervals) if online else [],
            intervals_s=intervals if online else {},
        )

    def _devices_changed(self) -> None:
        """A source's listing gained or lost devices: announce them (their intervals) again."""
        if self.publisher is not None:
            self.publisher.announce()

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
            for entry in s.polled():
                source = as_collecting(entry, self.driver_factory(entry))
                stack.push_async_callback(_close_source, source, entry.id)
                poller = Poller(
                    entry.id,
                    entry.kind,
                    source,
                    interval_s=s.interval_for(entry),
                    timeout_s=s.timeout_for(entry),
                    jitter_fraction=s.poll.jitter_fraction,
                    semaphore=semaphore,
                    emit=batcher.add,
                    metrics=self.metrics,
                    polled=polled,
                    on_devices_changed=self._devices_changed,
                )
                self.pollers.append(poller)
                self.sources.add(poller)
            self.publisher = Publisher(s, outbox, self.status, self.metrics)
            if s.controller is not None:  # the key was checked with the settings
                acting = self.command_sources if self.command_sources is not None else self.sources
                self.commands = CommandExecutor(s, s.controller.public_key(), acting, self.metrics)
            log.info(
                "agent_started",
                site=s.site_id,
                agent=s.agent_id,
                boot=outbox.boot,
                devices=len(s.devices),
                sources=len(s.sources),
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
                polls = [tg.create_task(p.run(stop), name=f"poll:{p.source_id}") for p in self.pollers]
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


async def _close_source(source: Collecting, source_id: str) -> None:
    """A driver that fails to close must not turn a clean stop into a failure."""
    try:
        async with asyncio.timeout(2):
            await source.aclose()
    except Exception as err:
        log.warning("driver_close_failed", source=source_id, error=f"{type(err).__name__}: {err}")


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
