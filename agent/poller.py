"""One Poller per device: interval with jitter, a deadline per poll, up/down state, metrics.

The first poll is spread uniformly over one interval, so a thousand devices configured at once do
not fire at once; each later poll is ``interval * (1 +- jitter_fraction)`` after the previous one
was due (not after it finished, so slow polls do not drift the schedule). A global semaphore
bounds concurrent polls, and ``asyncio.timeout`` bounds each one, so a dead device never delays
the others by more than its own deadline.

Failures still produce an observation: ``Unreachable`` (or a timeout) emits ``reachable=False``
with health ``down`` and a reason, so the controller sees the device down; ``AuthFailed`` emits
a down observation with reason ``auth_failed`` and stops polling that device. Up/down changes
are logged once per transition; the per-poll line is at debug level only.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from collector.base import ReportsNeighbours
from collector.errors import AuthFailed, Unreachable
from collector.model import Health, HealthReason, HealthStatus, Observation, Severity, utcnow
from runtime.redaction import scrub

if TYPE_CHECKING:
    from agent.metrics import AgentMetrics
    from collector.base import Driver

log = structlog.get_logger(__name__)
# Checked before the per-poll debug line, so at info level a poll costs no log processing.
_level = logging.getLogger(__name__)

# A cryptographically strong RNG buys nothing for spreading poll times.
_random = random.Random()  # noqa: S311


class Poller:
    def __init__(
        self,
        device_id: str,
        kind: str,
        driver: Driver,
        *,
        interval_s: float,
        timeout_s: float,
        jitter_fraction: float,
        semaphore: asyncio.Semaphore,
        emit: Callable[[Observation], None],
        metrics: AgentMetrics,
        polled: frozenset[str] = frozenset(),
    ) -> None:
        self.device_id = device_id
        self.kind = kind
        self._driver = driver
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._jitter = jitter_fraction
        self._semaphore = semaphore
        self._emit = emit
        self._metrics = metrics
        # Devices this agent polls itself: a neighbour report of one of them is left out, so its
        # own poller stays the only source of its observations.
        self._polled = polled
        self.up: bool | None = None  # unknown until the first poll
        self.stopped_reason: str | None = None

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
        """One poll; emits one observation (and a neighbour-reporting driver's neighbours).
        Returns False when polling must stop."""
        started = time.monotonic()
        async with self._semaphore:
            try:
                async with asyncio.timeout(self._timeout_s):
                    observation = await self._driver.collect()
            except TimeoutError:
                self._failed("timeout", "unreachable", f"no answer within {self._timeout_s:g} s", started)
                return True
            except Unreachable as err:
                self._failed("unreachable", "unreachable", str(err), started)
                return True
            except AuthFailed as err:
                self._failed("auth_failed", "auth_failed", str(err), started)
                self.stopped_reason = "auth_failed"
                log.error(  # noqa: TRY400 - the reason is logged; a traceback says nothing here
                    "device_polling_stopped", device=self.device_id, driver=self.kind, reason="auth_failed"
                )
                return False
            except Exception as err:
                # A driver bug must not kill the agent; count it and keep polling.
                self._failed("error", "driver_error", f"{type(err).__name__}: {err}", started, exc=True)
                return True
        self._metrics.polls["ok"].inc()
        self._emit(observation)
        self._emit_neighbours()
        if self.up is not True:
            if self.up is False:
                log.info("device_recovered", device=self.device_id, driver=self.kind)
            self.up = True
        if _level.isEnabledFor(logging.DEBUG):
            log.debug(
                "poll_finished",
                device=self.device_id,
                driver=self.kind,
                duration_s=round(time.monotonic() - started, 3),
                reachable=observation.reachable,
                errors=len(observation.errors),
            )
        return True

    def _emit_neighbours(self) -> None:
        if isinstance(self._driver, ReportsNeighbours):
            for neighbour in self._driver.neighbours():
                if neighbour.device_id not in self._polled:
                    self._emit(neighbour)

    def _failed(self, result: str, code: str, message: str, started: float, *, exc: bool = False) -> None:
        self._metrics.polls[result].inc()
        # A driver's error text goes on the wire and into the controller's database: a URL with
        # credentials or a configured secret in it is masked, as in the log.
        message = scrub(message)
        self._emit(
            Observation(
                device_id=self.device_id,
                driver=self.kind,
                observed_at=utcnow(),
                reachable=False,
                health=Health(
                    status=HealthStatus.DOWN,
                    reasons=[HealthReason(code=code, message=message[:1024], severity=Severity.CRITICAL)],
                ),
                errors=[message[:1024]],
            )
        )
        if self.up is not False:
            log.warning(
                "device_unreachable" if code == "unreachable" else "device_failed",
                device=self.device_id,
                driver=self.kind,
                reason=code,
                detail=message,
                exc_info=exc,
            )
            self.up = False
        if _level.isEnabledFor(logging.DEBUG):
            log.debug(
                "poll_finished",
                device=self.device_id,
                driver=self.kind,
                duration_s=round(time.monotonic() - started, 3),
                reachable=False,
                reason=code,
            )
