"""MQTT → decode → store → acknowledge.

The broker session is persistent (stable client id, ``clean_start`` false, a session expiry), the
subscription QoS 1, and acknowledgements manual: a message is PUBACKed only after the transaction
that stored it (or its dead letter) committed. A controller killed before a commit gets those
messages again after it reconnects, and the batch-id key turns a redelivery into a no-op.

Reading, decoding and writing overlap, and a flush is as large as the load makes it: the reader
cuts the stream into chunks (what arrives within ``flush_interval_ms``, at most
``max_batch_messages``) and hands each to the decode workers (:mod:`controller.ingest.decode_pool`) at
once; whenever the writer is free it takes every chunk waiting (up to ``max_batch_messages``
messages), mostly decoded by then, and writes them in one transaction. A quiet stream is written
within about ``flush_interval_ms``; under load a message waits for at most the flush being written
and its own. Everything is written and acknowledged in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiomqtt
import structlog
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import exc as sa_exc

from collector.wire import TopicKind
from collector.wire.topics import subscription
from controller.ingest.confirm import Confirmations
from controller.ingest.decode_pool import DecodePool, default_workers
from controller.ingest.prepare import Outcome
from controller.shapes import PreparedBatch
from controller.storage.guard import DatabaseLost
from controller.storage.records import STORE_FAILED, FlushResult, Received
from runtime.backoff import Backoff
from runtime.config import tls_context
from runtime.mqtt import (
    ack,
    disconnected,
    enable_manual_ack,
    message_queue,
    retrieve_connection_errors,
    without_cycles,
)

if TYPE_CHECKING:
    from controller.metrics import Metrics
    from controller.settings import ControllerSettings
    from controller.storage import Store

log = structlog.get_logger(__name__)

_KINDS = (TopicKind.OBS, TopicKind.STATUS, TopicKind.HEARTBEAT, TopicKind.CMD_RESULT)
_MAX_CHUNKS = 64  # gathered chunks waiting for the writer


class Ingest:
    def __init__(self, settings: ControllerSettings, store: Store, metrics: Metrics) -> None:
        self._settings = settings
        self._mqtt = settings.mqtt
        self._store = store
        self._metrics = metrics
        self.connected = asyncio.Event()
        self._stopping = asyncio.Event()  # run()'s stop: a flush that cannot commit gives up then
        self._confirmations = Confirmations(self._mqtt.prefix, metrics.acks)
        workers = settings.ingest.decode_workers
        self._pool = DecodePool(
            default_workers() if workers is None else workers,
            prefix=self._mqtt.prefix,
            max_payload=self._mqtt.max_payload,
            copy=store.dialect == "postgresql",  # batches arrive as COPY rows (controller.shapes)
            on_restart=metrics.decode_restarts.inc,
        )

    def subscriptions(self) -> list[str]:
        group = self._mqtt.share_group or None
        return [subscription(kind, self._mqtt.prefix, group) for kind in _KINDS]

    def _client(self) -> aiomqtt.Client:
        mqtt = self._mqtt
        v5 = mqtt.protocol == "5"
        properties = None
        if v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = mqtt.session_expiry_s
            properties.ReceiveMaximum = mqtt.receive_maximum
        client = aiomqtt.Client(
            mqtt.host,
            mqtt.port,
            identifier=mqtt.client_id,
            username=mqtt.username,
            password=mqtt.password.get_secret_value() if mqtt.password else None,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            # Resume the session (MQTT 5) / keep it (3.1.1, clean_session=False).
            clean_start=False if v5 else MQTT_CLEAN_START_FIRST_ONLY,
            clean_session=None if v5 else False,
            properties=properties,
            keepalive=mqtt.keepalive_s,
            tls_context=tls_context(mqtt.tls),
            timeout=10,
        )
        return without_cycles(client)

    async def run(self, stop: asyncio.Event) -> None:
        """Receive until ``stop`` is set; reconnect with capped, jittered backoff."""
        self._stopping = stop
        await self._pool.start()
        try:
            await self._run(stop)
        finally:
            await asyncio.to_thread(self._pool.close)

    async def _run(self, stop: asyncio.Event) -> None:
        backoff = Backoff(min(0.5, self._mqtt.reconnect_max_s), self._mqtt.reconnect_max_s)
        delay = backoff.next_delay()
        while not stop.is_set():
            client = self._client()
            # aiomqtt acknowledges on receipt; we acknowledge after the commit instead. Before
            # connecting, since the broker resuming our session sends what it kept at once.
            enable_manual_ack(client)
            try:
                async with client:
                    for topic in self.subscriptions():
                        await client.subscribe(topic, qos=1, timeout=10)
                    log.info(
                        "mqtt_connected",
                        host=self._mqtt.host,
                        port=self._mqtt.port,
                        topics=self.subscriptions(),
                    )
                    self._metrics.connected.set(1)
                    self.connected.set()
                    backoff.reset()
                    delay = backoff.next_delay()
                    await self._session(client, stop)
            except* aiomqtt.MqttError as group:
                # A lost connection surfaces inside the session's TaskGroup, so it comes grouped.
                errors = "; ".join(str(err) for err in group.exceptions)
                log.warning("mqtt_disconnected", error=errors, retry_in_s=round(delay, 2))
            finally:
                self.connected.clear()
                self._metrics.connected.set(0)
                # A connection lost after the read loop ended (the broker going away while the
                # controller stops) leaves its error in a future nobody awaits.
                retrieve_connection_errors(client)
            if stop.is_set():
                break
            try:
                async with asyncio.timeout(delay):
                    await stop.wait()
            except TimeoutError:
                pass
            delay = backoff.next_delay()

    async def _session(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        # Bounded: while the database is slow or away, the reader stops taking messages and the
        # broker holds the rest (at most receive_maximum in flight to us).
        chunks: asyncio.Queue[_Pending | None] = asyncio.Queue(maxsize=_MAX_CHUNKS)
        lost: aiomqtt.MqttError | None = None
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._write_loop(client, chunks), name="ingest:write")
            try:
                await self._read_loop(client, stop, chunks)
            except aiomqtt.MqttError as err:
                # Not raised here: inside the TaskGroup it would cancel the writer in the middle of
                # a transaction (on SQLite that can leave the write lock held). The writer commits
                # what it has; its acks are lost with the connection, so the broker redelivers those
                # messages and batch_id makes them duplicates.
                lost = err
            finally:
                await chunks.put(None)  # the writer finishes what it has, then ends
        if lost is not None:
            raise lost

    async def _read_loop(
        self,
        client: aiomqtt.Client,
        stop: asyncio.Event,
        chunks: asyncio.Queue[_Pending | None],
    ) -> None:
        queue = message_queue(client)  # a cancel-safe read, see _next
        lost = disconnected(client)
        limit = self._settings.ingest.max_batch_messages
        linger = self._settings.ingest.flush_interval_ms / 1000
        while not stop.is_set():
            first = await _next(queue, stop, lost)
            if first is None:
                if lost.done():
                    # Retrieve the cause, or asyncio logs "Future exception was never retrieved".
                    cause = None if lost.cancelled() else lost.exception()
                    raise aiomqtt.MqttError(f"disconnected from the broker: {cause}") from cause
                return
            messages = [first]
            _drain(queue, messages, limit)
            if len(messages) < limit and linger > 0:
                await asyncio.sleep(linger)
                _drain(queue, messages, limit)
            jobs = [(message.topic.value, _payload(message)) for message in messages]
            decoding = asyncio.ensure_future(self._pool.prepare(jobs))
            await chunks.put(_Pending(jobs, decoding, datetime.now(UTC), messages))

    async def _received(self, pending: _Pending) -> list[Received]:
        outcomes = await pending.decoding
        at = pending.received_at
        items = []
        for (topic, payload), outcome in zip(pending.jobs, outcomes, strict=True):
            self._metrics.messages.labels(kind=outcome.kind).inc()
            if outcome.message is None:
                items.append(Received(topic, payload, at, code=outcome.code, reason=outcome.reason))
            else:
                items.append(Received(topic, payload, at, message=outcome.message))
        return items

    async def _write_loop(self, client: aiomqtt.Client, chunks: asyncio.Queue[_Pending | None]) -> None:
        carry: _Pending | None = None  # a chunk that did not fit into the previous flush
        ending = abandoned = False
        while not ending:
            flush, carry, ending = await self._next_flush(chunks, carry)
            if not flush or abandoned:
                continue  # after giving up: take what the reader still queued, acknowledge nothing
            items = [item for chunk in flush for item in await self._received(chunk)]
            try:
                confirmed = await self._write(items)
            except _Abandoned as err:
                # Stopping while the database cannot commit (down, its file deleted): the messages
                # stay unacknowledged, so the broker keeps them for the next start, and the agents
                # keep their rows. Waiting on would make a SIGTERM hang.
                log.warning("flush_abandoned_at_stop", messages=len(items), error=str(err.__cause__)[:300])
                abandoned = True
                continue
            self._confirmations.send(client, confirmed)
            for chunk in flush:  # acknowledged only now, after the commit (manual acks, see _run)
                for message in chunk.messages:
                    ack(client, message)

    async def _next_flush(
        self, chunks: asyncio.Queue[_Pending | None], carry: _Pending | None
    ) -> tuple[list[_Pending], _Pending | None, bool]:
        """The chunks of the next flush: the first to arrive, then every one already waiting up
        to ``max_batch_messages``; also the chunk that did not fit, and whether the reader ended."""
        limit = self._settings.ingest.max_batch_messages
        first = carry if carry is not None else await chunks.get()
        if first is None:
            return [], None, True
        flush, count = [first], len(first.messages)
        while True:
            try:
                chunk = chunks.get_nowait()
            except asyncio.QueueEmpty:
                return flush, None, False
            if chunk is None:
                return flush, None, True
            if count + len(chunk.messages) > limit:
                return flush, chunk, False
            flush.append(chunk)
            count += len(chunk.messages)

    async def _write(self, items: list[Received]) -> list[tuple[str, str, int, int]]:
        """Store until it works: nothing is acknowledged before it is committed.

        While the database is unreachable the flush is retried as it is. When the database refuses
        the data itself (a NUL character PostgreSQL cannot store, say), the flush is split in
        halves until the offending message is alone; that one becomes a ``store_failed`` dead
        letter and everything else is stored.
        """
        backoff = Backoff(0.2, 10.0)
        while True:
            started = asyncio.get_running_loop().time()
            try:
                result = await self._store.write_flush(items)
            except Exception as err:
                self._metrics.store_errors.inc()
                if not _transient(err):
                    log.warning("flush_refused", messages=len(items), error=str(err)[:500])
                    return await self._isolate(items, err)
                if self._stopping.is_set():
                    raise _Abandoned from err
                delay = backoff.next_delay()
                if isinstance(err, DatabaseLost):  # logged once by the store's guard
                    log.debug("flush_failed", messages=len(items), error=str(err), retry_in_s=round(delay, 2))
                else:
                    log.exception(
                        "flush_failed", messages=len(items), error=str(err)[:500], retry_in_s=round(delay, 2)
                    )
                with contextlib.suppress(TimeoutError):  # a stop ends the wait (and the retries)
                    async with asyncio.timeout(delay):
                        await self._stopping.wait()
                continue
            break
        self._metrics.flush_seconds.observe(asyncio.get_running_loop().time() - started)
        self._metrics.flush_messages.observe(len(items))
        self._account(items, result)
        return result.confirmed

    async def _isolate(self, items: list[Received], err: Exception) -> list[tuple[str, str, int, int]]:
        if len(items) == 1 and items[0].message is not None:
            item = items[0]
            reason = f"the database refused it: {type(err).__name__}: {str(err).splitlines()[0][:500]}"
            items = [Received(item.topic, item.payload, item.received_at, code=STORE_FAILED, reason=reason)]
            confirmed = await self._write(items)
            message = item.message
            if isinstance(message, PreparedBatch):  # a dead letter for good: no use sending it again
                confirmed.append((message.site_id, message.agent_id, message.boot, message.seq))
            return confirmed
        if len(items) == 1:  # even the dead letter was refused: keep trying, do not drop it
            await asyncio.sleep(1.0)
            return await self._write(items)
        half = len(items) // 2
        return [*await self._write(items[:half]), *await self._write(items[half:])]

    def _account(self, items: list[Received], result: FlushResult) -> None:
        m = self._metrics
        now = datetime.now(UTC)
        m.batches.labels(result="stored").inc(result.stored_batches)
        m.batches.labels(result="duplicate").inc(result.duplicate_batches)
        m.batches.labels(result="late").inc(result.late_batches)
        m.observations.inc(result.observations)
        m.gaps_filled.inc(result.filled)
        for item in items:
            if isinstance(item.message, PreparedBatch):
                m.lag_seconds.observe(max(0.0, (now - item.message.sent_at).total_seconds()))
        for gap in result.detected:
            m.gaps.inc()
            m.missing.inc(gap.to_seq - gap.from_seq + 1)
            log.warning(
                "sequence_gap",
                agent=gap.agent_id,
                site=gap.site_id,
                boot=gap.boot,
                from_seq=gap.from_seq,
                to_seq=gap.to_seq,
            )
        for rejection in result.rejected:
            m.rejected.labels(reason=rejection.code).inc()
            log.warning(
                "message_rejected",
                topic=rejection.topic,
                reason_code=rejection.code,
                reason=rejection.reason[:300],
                size=rejection.size,
            )
        for agent in result.offline_agents:
            m.agents_offline.inc()
            log.info("agent_offline", agent=agent)


@dataclass(slots=True)
class _Pending:
    """A gathered chunk of messages on its way from the reader to the writer, decoding meanwhile."""

    jobs: list[tuple[str, bytes]]  # (topic, payload) of each message
    decoding: asyncio.Future[list[Outcome]]
    received_at: datetime
    messages: list[aiomqtt.Message]  # to acknowledge after the commit


def _payload(message: aiomqtt.Message) -> bytes:
    payload = message.payload
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, bytearray):
        return bytes(payload)
    return str(payload).encode()


class _Abandoned(Exception):
    """A flush that could not commit was given up because the controller is stopping."""


def _transient(err: Exception) -> bool:
    """True when retrying the same flush can succeed (connection lost, database locked or down)."""
    if isinstance(err, OSError | TimeoutError | ConnectionError | DatabaseLost):
        return True
    if isinstance(err, sa_exc.DBAPIError):
        return err.connection_invalidated or isinstance(err, sa_exc.OperationalError | sa_exc.InterfaceError)
    return False


def _drain(queue: asyncio.Queue[aiomqtt.Message], into: list[aiomqtt.Message], limit: int) -> None:
    while len(into) < limit:
        try:
            into.append(queue.get_nowait())
        except asyncio.QueueEmpty:
            return


async def _next(
    queue: asyncio.Queue[aiomqtt.Message], stop: asyncio.Event, disconnected: asyncio.Future[None]
) -> aiomqtt.Message | None:
    """The next message, or None once ``stop`` is set or the connection is gone.

    Unlike cancelling ``async for message in client.messages``, this never drops a message that
    was taken off the queue at the moment of the stop.
    """
    if not queue.empty():
        return queue.get_nowait()
    getter: asyncio.Future[Any] = asyncio.ensure_future(queue.get())
    stopper: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    waiting: set[asyncio.Future[Any]] = {getter, stopper, disconnected}
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not getter.done():
            getter.cancel()
            await asyncio.wait({getter})
    if getter.cancelled():
        return None
    message: aiomqtt.Message = getter.result()
    return message
