"""The linger buffer between pollers and the outbox.

Pollers call :meth:`Batcher.add` (synchronous, no I/O). Observations are collected for up to
``linger_ms`` or ``max_batch`` observations, whichever comes first, then wrapped in one
:class:`~collector.wire.ObservationBatch` (``batch_id``, ``boot``, ``seq``), encoded once, and
appended to the outbox as one row. The Observation objects the drivers built are passed through
as they are (pydantic does not revalidate model instances), so a batch costs one encode.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import structlog

from agent.outbox import NotStored
from collector.model import utcnow
from collector.wire.codec import encode
from collector.wire.messages import ObservationBatch, new_batch_id

if TYPE_CHECKING:
    from agent.metrics import AgentMetrics
    from agent.outbox import Outbox
    from collector.model import Observation

log = structlog.get_logger(__name__)


class Batcher:
    def __init__(
        self,
        outbox: Outbox,
        *,
        site_id: str,
        agent_id: str,
        linger_s: float,
        max_batch: int,
        metrics: AgentMetrics | None = None,
    ) -> None:
        self._outbox = outbox
        self._site_id = site_id
        self._agent_id = agent_id
        self._linger_s = linger_s
        self._max_batch = max_batch
        self._metrics = metrics
        self._pending: list[Observation] = []
        self._wakeup = asyncio.Event()
        self._full = asyncio.Event()
        self._lock = asyncio.Lock()  # keeps seq order equal to outbox order
        self._closing = False

    def add(self, observation: Observation) -> None:
        self._pending.append(observation)
        if len(self._pending) == 1:
            self._wakeup.set()
        if len(self._pending) >= self._max_batch:
            self._full.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        """Ask :meth:`run` to flush what is pending and return (no cancellation, so no append
        is abandoned half-way and no reserved ``seq`` goes missing)."""
        self._closing = True
        self._wakeup.set()
        self._full.set()

    async def run(self) -> None:
        """Flush lingering batches until :meth:`close`; the last flush happens before returning."""
        while not self._closing:
            await self._wakeup.wait()
            self._wakeup.clear()
            if self._pending and self._linger_s > 0 and len(self._pending) < self._max_batch:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._linger_s):
                        await self._full.wait()
            await self.flush()
        await self.flush()

    async def flush(self) -> None:
        """Move everything pending into the outbox, ``max_batch`` observations per message."""
        async with self._lock:
            while self._pending:
                chunk = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                if not self._closing:
                    self._full.clear()
                if self._pending:
                    self._wakeup.set()
                await self._store(chunk)

    async def _store(self, observations: list[Observation]) -> None:
        await self._outbox.retry_open()  # an unavailable outbox may be back (new boot number)
        seq = self._outbox.next_seq()
        batch = ObservationBatch(
            site_id=self._site_id,
            agent_id=self._agent_id,
            sent_at=utcnow(),
            batch_id=new_batch_id(),
            boot=self._outbox.boot,
            seq=seq,
            observations=observations,
        )
        payload = encode(batch)
        try:
            await self._outbox.append(seq, payload)
        except NotStored:
            return  # counted and logged by the outbox; the seq gap tells the controller
        if self._metrics is not None:
            self._metrics.observations.inc(len(observations))
