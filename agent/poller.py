"""One Poller per source: interval with jitter, a deadline per poll, up/down per device, metrics.

A source is what one driver instance reads: an SNMP target (one device, the ``[[devices]]``
entries, adapted by :mod:`collector.sources`), a tenant or an organisation (``[[sources]]``, any
number of devices). Schedules are per source; up/down state is per device.

The first poll is spread uniformly over one interval, so a thousand sources configured at once do
not fire at once; each later poll is ``interval * (1 +- jitter_fraction)`` after the previous one
was due (not after it finished, so slow polls do not drift the schedule). A global semaphore
bounds concurrent polls, and ``asyncio.timeout`` bounds each one, so a dead source never delays
the others by more than its own deadline.

Every device state the controller should know becomes an observation:

* a device the source observed is emitted as it came (its ``reachable`` decides up or down); a
  ``sink.device_error`` is added to that device's observation, or, for a device not observed,
  becomes a down observation with reason ``device_error``;
* a device that a previous listing had and this one lacks is reported once, down with reason
  ``missing_from_source``; it is forgotten until a listing has it again;
* a whole-source failure (``Unreachable``, a timeout, ``AuthFailed``, a driver bug) marks every
  device the source reported (still listed) down with the reason; ``AuthFailed`` stops polling
  the source. What the source observed before it failed is still emitted.

State changes are logged once per transition: per device (``device_unreachable``,
``device_failed``, ``device_missing``, ``device_recovered``), and per source for a source of
several devices (``source_unreachable``, ``source_failed``, ``source_recovered``); the per-poll
line is at debug level only.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from agent.sources import PollSink
from collector.base import ReportsNeighbours
from collector.errors import AuthFailed, Unreachable
from collector.model import Health, HealthReason, HealthStatus, Observation, Severity, utcnow
from collector.sources import DriverSource, reports_one_device
from runtime.redaction import scrub

if TYPE_CHECKING:
    from agent.metrics import AgentMetrics
    from collector.sources import Collecting

log = structlog.get_logger(__name__)
# Checked before the per-poll debug line, so at info level a poll costs no log processing.
_level = logging.getLogger(__name__)

# A cryptographically strong RNG buys nothing for spreading poll times.
_random = random.Random()  # noqa: S311

MAX_TEXT = 1024  # ShortText in the observation model
MAX_ERRORS = 64  # Observation.errors


class Poller:
    def __init__(
        self,
        source_id: str,
        kind: str,
        source: Collecting,
        *,
        interval_s: float,
        timeout_s: float,
        jitter_fraction: float,
        semaphore: asyncio.Semaphore,
        emit: Callable[[Observation], None],
        metrics: AgentMetrics,
        polled: frozenset[str] = frozenset(),
        on_devices_changed: Callable[[], None] | None = None,
    ) -> None:
        self.source_id = source_id
        self.kind = kind
        self.source = source
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._jitter = jitter_fraction
        self._semaphore = semaphore
        self._emit = emit
        self._metrics = metrics
        # Devices this agent polls itself: a neighbour report of one of them is left out, so its
        # own poller stays the only source of its observations.
        self._polled = polled
        # Called when the source's listing gained or lost a device (the agent announces them).
        self._on_devices_changed = on_devices_changed
        # device id → up (True) / down (False): the devices of the source's latest listing.
        # One-device sources say so up front; a tenant's devices are known from its first listing.
        self.devices: dict[str, bool] = {}
        self._single = reports_one_device(source)
        if isinstance(source, DriverSource):
            self.devices = dict.fromkeys(source.devices(), False)
        self._unseen = set(self.devices)  # known, not yet polled: the first state is not a "recovery"
        self._gone: set[str] = set()  # reported missing; listed again is a recovery
        self.up: bool | None = None  # the source: unknown until the first poll
        self.stopped_reason: str | None = None

    @property
    def interval_s(self) -> float:
        return self._interval_s

    @property
    def device_id(self) -> str:
        """The source's id (for a ``[[devices]]`` entry, its device's id)."""
        return self.source_id

    def reports(self, device_id: str) -> bool:
        return device_id in self.devices

    def _next_delay(self) -> float:
        if not self._jitter:
            return self._interval_s
        return self._interval_s * (1 + _random.uniform(-self._jitter, self._jitter))

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set (the current poll is abandoned by cancelling the task)."""
        loop = asyncio.get_running_loop()
        due = loop.time() + _random.uniform(0, self._interval_s)
        while not stop.is_set():
            delay = due - loop.time()
            if delay > 0:
                try:
                    async with asyncio.timeout(delay):
                        await stop.wait()
                except TimeoutError:
                    pass
                else:
                    return
            if not await self.poll_once():
                return
            due += self._next_delay()
            now = loop.time()
            if due < now:  # fell behind (a long outage or an overloaded host): skip, do not burst
                due = now + self._next_delay() * _random.random()

    async def poll_once(self) -> bool:
        """One poll of the source; emits its devices' observations (and a neighbour-reporting
        driver's neighbours). Returns False when polling must stop."""
        started = time.monotonic()
        sink = PollSink()
        async with self._semaphore:
            try:
                async with asyncio.timeout(self._timeout_s):
                    await self.source.collect(sink)
            except TimeoutError:
                message = f"no answer within {self._timeout_s:g} s"
                self._failed(sink, "timeout", "unreachable", message, started)
                return True
            except Unreachable as err:
                self._failed(sink, "unreachable", "unreachable", str(err), started)
                return True
            except AuthFailed as err:
                self._failed(sink, "auth_failed", "auth_failed", str(err), started)
                self.stopped_reason = "auth_failed"
                log.error(  # noqa: TRY400 - the reason is logged; a traceback says nothing here
                    "source_polling_stopped", source=self.source_id, driver=self.kind, reason="auth_failed"
                )
                return False
            except Exception as err:
                # A driver bug must not kill the agent; count it and keep polling.
                message = f"{type(err).__name__}: {err}"
                self._failed(sink, "error", "driver_error", message, started, exc=True)
                return True
        self._metrics.polls["ok"].inc()
        known = set(self.devices)
        listed = self._emit_listing(sink)
        for device_id in [d for d in self.devices if d not in listed]:
            self._missing(device_id)
        self._devices_changed(known)
        self._emit_neighbours()
        self._source_state(up=True)
        if _level.isEnabledFor(logging.DEBUG):
            log.debug(
                "poll_finished",
                source=self.source_id,
                driver=self.kind,
                duration_s=round(time.monotonic() - started, 3),
                devices=len(listed),
                device_errors=sum(len(e) for e in sink.errors.values()),
            )
        return True

    def _emit_listing(self, sink: PollSink) -> set[str]:
        """Emit what ``sink`` holds, per device; returns the device ids it listed."""
        errors = sink.errors
        if errors:
            self._metrics.device_errors.inc(sum(len(e) for e in errors.values()))
        latest: dict[str, Observation] = {}
        for observed in sink.observations:
            device_errors = errors.get(observed.device_id)
            observation = observed
            if device_errors and observed.device_id not in latest:
                observation = _with_errors(observed, [e.message for e in device_errors])
            latest[observation.device_id] = observation
            self._emit(observation)
        for device_id, device_errors in errors.items():
            if device_id in latest:
                continue
            message = scrub("; ".join(e.message for e in device_errors))
            reachable = all(e.reachable for e in device_errors)
            observation = self._down(device_id, "device_error", message, reachable=reachable)
            latest[device_id] = observation
            self._emit(observation)
        for device_id, observation in latest.items():
            self._device_state(device_id, up=observation.reachable, reason=_reason_of(observation))
        up = sum(self.devices.values())
        self._metrics.source_devices.labels(source=self.source_id, state="up").set(up)
        self._metrics.source_devices.labels(source=self.source_id, state="down").set(len(self.devices) - up)
        return set(latest)

    def _devices_changed(self, known: set[str]) -> None:
        if self._on_devices_changed is not None and self.devices.keys() != known:
            self._on_devices_changed()

    def _emit_neighbours(self) -> None:
        if isinstance(self.source, ReportsNeighbours):
            for neighbour in self.source.neighbours():
                if neighbour.device_id not in self._polled:
                    self._emit(neighbour)

    def _missing(self, device_id: str) -> None:
        """A device the previous listing had: reported down once, then forgotten."""
        del self.devices[device_id]
        self._unseen.discard(device_id)
        self._gone.add(device_id)
        self._metrics.devices_missing.inc()
        message = f"no longer listed by source {self.source_id}"
        self._emit(self._down(device_id, "missing_from_source", message, severity=Severity.WARNING))
        log.warning("device_missing", device=device_id, source=self.source_id, driver=self.kind)

    def _failed(
        self, sink: PollSink, result: str, code: str, message: str, started: float, *, exc: bool = False
    ) -> None:
        self._metrics.polls[result].inc()
        # A driver's error text goes on the wire and into the controller's database: a URL with
        # credentials or a configured secret in it is masked, as in the log.
        message = scrub(message)
        known = set(self.devices)
        read = self._emit_listing(sink)  # what the source did read before it failed stands
        self._devices_changed(known)
        for device_id in [d for d in self.devices if d not in read]:
            self._emit(self._down(device_id, code, message))
            self._device_state(device_id, up=False, reason=code, detail=message, exc=exc and self._single)
        self._source_state(up=False, reason=code, detail=message, exc=exc)
        if _level.isEnabledFor(logging.DEBUG):
            log.debug(
                "poll_finished",
                source=self.source_id,
                driver=self.kind,
                duration_s=round(time.monotonic() - started, 3),
                reachable=False,
                reason=code,
            )

    def _down(
        self,
        device_id: str,
        code: str,
        message: str,
        *,
        reachable: bool = False,
        severity: Severity = Severity.CRITICAL,
    ) -> Observation:
        return Observation(
            device_id=device_id,
            driver=self.kind,
            observed_at=utcnow(),
            reachable=reachable,
            health=Health(
                status=HealthStatus.DEGRADED if reachable else HealthStatus.DOWN,
                reasons=[HealthReason(code=code, message=message[:MAX_TEXT], severity=severity)],
            ),
            errors=[message[:MAX_TEXT]],
        )

    def _device_state(
        self, device_id: str, *, up: bool, reason: str | None, detail: str | None = None, exc: bool = False
    ) -> None:
        """Record one device's state; log it when it changed (a first poll that finds a device
        up is not a change)."""
        before = self.devices.get(device_id)
        returned = device_id in self._gone
        first = device_id in self._unseen or (before is None and not returned)
        self._unseen.discard(device_id)
        self._gone.discard(device_id)
        self.devices[device_id] = up
        if (up and first) or (before is up and not first):
            return
        if up:
            log.info("device_recovered", device=device_id, source=self.source_id, driver=self.kind)
            return
        log.warning(
            "device_unreachable" if reason == "unreachable" else "device_failed",
            device=device_id,
            source=self.source_id,
            driver=self.kind,
            reason=reason,
            detail=detail,
            exc_info=exc,
        )

    def _source_state(
        self, *, up: bool, reason: str | None = None, detail: str | None = None, exc: bool = False
    ) -> None:
        before, self.up = self.up, up
        if self._single or before is up or (up and before is None):
            return  # a one-device source's device lines say it all
        if up:
            log.info("source_recovered", source=self.source_id, driver=self.kind, devices=len(self.devices))
            return
        log.warning(
            "source_unreachable" if reason == "unreachable" else "source_failed",
            source=self.source_id,
            driver=self.kind,
            reason=reason,
            detail=detail,
            devices=len(self.devices),
            exc_info=exc,
        )


def _reason_of(observation: Observation) -> str:
    reasons = observation.health.reasons
    return reasons[0].code if reasons else "unreachable"


def _with_errors(observation: Observation, messages: list[str]) -> Observation:
    """``observation`` with a source's per-device errors for it added (the read stands)."""
    messages = [scrub(m)[:MAX_TEXT] for m in messages]
    health = observation.health
    reasons = [
        *health.reasons,
        *(HealthReason(code="device_error", message=m) for m in messages),
    ][:MAX_ERRORS]
    status = health.status
    if status in {HealthStatus.OK, HealthStatus.UNKNOWN}:
        status = HealthStatus.DEGRADED
    return observation.model_copy(
        update={
            "errors": [*observation.errors, *messages][:MAX_ERRORS],
            "health": Health(status=status, reasons=reasons),
        }
    )
