"""A per-tenant request budget: a token bucket shared by every request of one source.

Graph's Intune device service allows 200 writes per 20 s per app and tenant and Webex publishes
no numbers; the budget keeps one agent from being the reason a customer's tenant is throttled,
and keeps a poll of thousands of devices from sending its requests in one burst.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class RequestBudget:
    """At most ``burst`` requests at once, refilled at ``rate_per_s``.

    :meth:`acquire` waits until a request may go; it never fails. ``waited_s`` adds up the time
    requests spent waiting (for the bench and the logs)."""

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError(f"request budget needs rate_per_s > 0 and burst >= 1, got {rate_per_s}, {burst}")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._updated = clock()
        self._lock = asyncio.Lock()
        self.waited_s = 0.0

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate_per_s)
        self._updated = now

    async def acquire(self) -> None:
        # One waiter at a time, so requests go out in the order they asked (no starvation).
        async with self._lock:
            self._refill()
            while self._tokens < 1:
                wait = (1 - self._tokens) / self.rate_per_s
                self.waited_s += wait
                await self._sleep(wait)
                self._refill()
            self._tokens -= 1
