"""One request at a time to one codec, at least ``min_interval_s`` apart.

The codec queues Basic-auth requests and serves one per second; past 30 queued it answers 503
(RoomOS 26 release notes). A poll, a follow loop and an action of the same source share the
source's pacer, so together they never exceed the device's rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator


class Pacer:
    def __init__(self, min_interval_s: float) -> None:
        self.min_interval_s = min_interval_s
        self._lock = asyncio.Lock()
        self._next = 0.0
        self.waited_s = 0.0  # total time spent waiting for a slot, for the metrics

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold the device for one request; the next one starts ``min_interval_s`` after it ends."""
        async with self._lock:
            wait = self._next - time.monotonic()
            if wait > 0:
                self.waited_s += wait
                await asyncio.sleep(wait)
            try:
                yield
            finally:
                self._next = time.monotonic() + self.min_interval_s
