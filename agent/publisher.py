"""The MQTT session: connect, announce, publish the outbox in order, reconnect with backoff.

One aiomqtt client per connection attempt. The last will is this agent's ``offline``
:class:`~collector.wire.AgentStatus` (retained, QoS 1); right after CONNACK the agent subscribes
to its ``ack`` topic and publishes the retained ``online`` birth. Then outbox rows go out oldest
first at QoS 1 with at most ``mqtt.max_inflight`` awaiting their PUBACK. All publishes share one
TCP connection, so they reach the broker in row order.

End-to-end acknowledgement: a PUBACK only says the broker has the message. A row is deleted
when the controller confirms it committed the batch (:class:`~collector.wire.BatchAck` on
``{site}/ack``). A row not confirmed ``confirm_timeout_s`` after it was published is published
again, then after twice that, and so on up to ``resend_max_s``; when a confirmation arrives after
a silence (the controller is back) every waiting row is due at once. Each new connection starts
again at the oldest row. A re-sent batch keeps its ``batch_id``: the controller stores it once
and confirms it again. Every ``heartbeat_s`` a :class:`~collector.wire.Heartbeat` reports the
outbox and the polls.

Reconnects wait as :mod:`runtime.backoff` says (``min_s · 2^attempt`` capped at ``max_s``, full
jitter), so agents of a site that lost the broker together do not return together.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import aiomqtt
import structlog

from agent.metrics import POLL_RESULTS
from collector.wire.codec import DecodeError, decode, encode
from collector.wire.messages import AgentState, AgentStatus, BatchAck, Heartbeat
from collector.wire.topics import TopicKind, topic
from runtime.backoff import backoff_delay
from runtime.config import tls_context
from runtime.mqtt import retrieve_connection_errors, set_connect_timeout, without_cycles

if TYPE_CHECKING:
    from agent.metrics import AgentMetrics
    from agent.outbox import Outbox, OutboxRow
    from agent.settings import AgentSettings

log = structlog.get_logger(__name__)

StatusFactory = Callable[[AgentState], AgentStatus]


@dataclass(slots=True)
class _Sent:
    """A published row waiting for the controller's confirmation."""

    at: float  # monotonic time of the last publish
    times: int  # how often it was published


def _due(sent: _Sent, now: float, timeout_s: float, max_s: float) -> bool:
    wait: float = min(max_s, timeout_s * 2.0 ** min(sent.times - 1, 20))
    return now - sent.at >= wait


class Publisher:
    def __init__(
        self,
        settings: AgentSettings,
        outbox: Outbox,
        status: StatusFactory,
        metrics: AgentMetrics,
    ) -> None:
        self._settings = settings
        self._mqtt = settings.mqtt
        self._outbox = outbox
        self._status = status
        self._metrics = metrics
        self._obs_topic = topic(settings.site_id, TopicKind.OBS, settings.mqtt.prefix)
        self._status_topic = topic(settings.site_id, TopicKind.STATUS, settings.mqtt.prefix)
        self._ack_topic = topic(settings.site_id, TopicKind.ACK, settings.mqtt.prefix)
        self._heartbeat_topic = topic(settings.site_id, TopicKind.HEARTBEAT, settings.mqtt.prefix)
        self._sent: dict[int, _Sent] = {}  # row id → its last publish, until confirmed
        self._last_confirm = time.monotonic()
        self._tls = tls_context(settings.mqtt.tls)
        self._client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()
        self._announce = asyncio.Event()

    def announce(self) -> None:
        """Publish the (retained) online status again, soon: the devices the agent polls changed
        (a source listed new ones or lost some), and the controller reads their poll intervals,
        which it marks devices stale by, from that status. Several calls before it goes out
        publish it once; while disconnected, the next connection's status says it all."""
        self._announce.set()

    def _make_client(self) -> aiomqtt.Client:
        will = aiomqtt.Will(self._status_topic, encode(self._status(AgentState.OFFLINE)), qos=1, retain=True)
        client = aiomqtt.Client(
            self._mqtt.host,
            self._mqtt.port,
            username=self._mqtt.username,
            password=self._mqtt.password.get_secret_value() if self._mqtt.password else None,
            identifier=self._settings.client_id,
            will=will,
            clean_session=True,
            keepalive=self._mqtt.keepalive_s,
            timeout=self._mqtt.connect_timeout_s,
            tls_context=self._tls,
            max_inflight_messages=self._mqtt.max_inflight + 1,
        )
        # Up to max_inflight publishes wait for their PUBACK by design; aiomqtt would warn at 10.
        client.pending_calls_threshold = self._mqtt.max_inflight + 2
        # aiomqtt connects the socket in a worker thread, which a cancelled task cannot stop; paho's
        # own TCP connect timeout bounds it, so a stopping agent never waits on a dead address.
        set_connect_timeout(client, self._mqtt.connect_timeout_s)
        return without_cycles(client)

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until ``stop`` is set, then drain the outbox for at most ``shutdown.drain_s``,
        announce ``offline`` and disconnect cleanly (so the broker does not send the will)."""
        async with asyncio.TaskGroup() as tg:
            session = tg.create_task(self._session_loop(), name="mqtt-session")
            await stop.wait()
            await self._drain()
            await self._goodbye()
            session.cancel()

    async def _drain(self) -> None:
        if not self._outbox.rows:
            return
        log.info("outbox_draining", rows=self._outbox.rows, drain_s=self._settings.shutdown.drain_s)
        try:
            async with asyncio.timeout(self._settings.shutdown.drain_s):
                await self._outbox.wait_empty()
        except TimeoutError:
            log.warning("outbox_drain_incomplete", rows=self._outbox.rows)
        else:
            log.info("outbox_drained")

    async def _goodbye(self) -> None:
        client = self._client
        if client is None:
            return
        try:
            async with asyncio.timeout(1.0):
                await client.publish(
                    self._status_topic, encode(self._status(AgentState.OFFLINE)), qos=1, retain=True
                )
        except (aiomqtt.MqttError, TimeoutError) as err:
            log.warning("offline_status_not_sent", error=str(err))

    async def _session_loop(self) -> None:
        attempt = 0
        was_connected = False
        while True:
            client = self._make_client()
            try:
                async with client:
                    await client.subscribe(self._ack_topic, qos=1, timeout=self._mqtt.publish_timeout_s)
                    await client.publish(
                        self._status_topic, encode(self._status(AgentState.ONLINE)), qos=1, retain=True
                    )
                    attempt = 0
                    self._metrics.connects.inc()
                    log.info(
                        "broker_connected",
                        host=self._mqtt.host,
                        port=self._mqtt.port,
                        outbox_rows=self._outbox.rows,
                    )
                    was_connected = True
                    self._client = client
                    self.connected.set()
                    try:
                        await self._pump(client)
                    finally:
                        self._client = None
                        self.connected.clear()
            except* aiomqtt.MqttError as group:
                error = "; ".join(str(e) for e in group.exceptions)
                delay = backoff_delay(attempt, self._mqtt.backoff.min_s, self._mqtt.backoff.max_s)
                # Logged once per transition at warning; repeated failed attempts only at debug.
                if was_connected or attempt == 0:
                    log.warning("broker_unavailable", error=error, retry_in_s=round(delay, 2))
                else:
                    log.debug(
                        "broker_connect_failed", error=error, attempt=attempt, retry_in_s=round(delay, 2)
                    )
                was_connected = False
                attempt += 1
            else:
                continue
            finally:
                retrieve_connection_errors(client)
            await asyncio.sleep(delay)

    async def _pump(self, client: aiomqtt.Client) -> None:
        self._sent.clear()  # a new connection publishes every waiting row again, oldest first
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._watch(client), name="mqtt-watch")
            window = asyncio.Semaphore(self._mqtt.max_inflight)
            tg.create_task(self._resend(client, window, tg), name="mqtt-resend")
            tg.create_task(self._heartbeats(client), name="mqtt-heartbeat")
            tg.create_task(self._announcements(client), name="mqtt-announce")
            sent_up_to = 0  # row id; every row up to it is published or in flight on this connection
            while True:
                await self._outbox.wait_for_rows_after(sent_up_to)
                rows = await self._outbox.read(after_id=sent_up_to, limit=self._mqtt.max_inflight)
                for row in rows:
                    await window.acquire()
                    tg.create_task(self._publish(client, row, window))
                    sent_up_to = row.id
                if not rows:
                    # Rows between sent_up_to and max_id were dropped or confirmed before we read them.
                    sent_up_to = self._outbox.max_id

    async def _watch(self, client: aiomqtt.Client) -> None:
        """Take the controller's confirmations; raise :class:`aiomqtt.MqttError` as soon as the
        connection is lost."""
        async for message in client.messages:
            if message.topic.matches(self._ack_topic):
                await self._confirmed(message.topic.value, message.payload)

    async def _confirmed(self, topic_name: str, payload: object) -> None:
        data = payload if isinstance(payload, bytes | bytearray | str) else b""
        try:
            _topic, ack = decode(topic_name, data, prefix=self._mqtt.prefix)
        except DecodeError as err:
            log.warning("ack_rejected", reason_code=err.code, reason=err.reason[:300])
            return
        if not isinstance(ack, BatchAck) or ack.agent_id != self._settings.agent_id:
            return  # not a confirmation for this agent
        now = time.monotonic()
        if now - self._last_confirm >= self._mqtt.confirm_timeout_s:
            for sent in self._sent.values():  # the controller is back: what waits is due now
                sent.at = 0.0
        self._last_confirm = now
        deleted = await self._outbox.confirm([(boot, first, last) for boot, first, last in ack.ranges])
        for row_id in deleted:
            self._sent.pop(row_id, None)
        self._metrics.confirmed.inc(len(deleted))

    async def _publish(
        self, client: aiomqtt.Client, row: OutboxRow, window: asyncio.Semaphore, *, again: bool = False
    ) -> None:
        try:
            await client.publish(self._obs_topic, row.payload, qos=1, timeout=self._mqtt.publish_timeout_s)
        finally:
            window.release()
        self._metrics.published.inc()
        if again:
            self._metrics.resent.inc()
        previous = self._sent.get(row.id)
        if previous is None and again:
            return  # confirmed while it was on its way again
        self._sent[row.id] = _Sent(time.monotonic(), previous.times + 1 if previous else 1)

    async def _resend(self, client: aiomqtt.Client, window: asyncio.Semaphore, tg: asyncio.TaskGroup) -> None:
        """Publish again what the controller has not confirmed in time (oldest first)."""
        tick = min(self._mqtt.confirm_timeout_s / 4, 5.0)
        timeout, most = self._mqtt.confirm_timeout_s, self._mqtt.resend_max_s
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            waiting = self._sent.items()
            due = sorted(row_id for row_id, sent in waiting if _due(sent, now, timeout, most))[:500]
            if not due:
                continue
            rows = await self._outbox.read_ids(due)
            present = {row.id for row in rows}
            for row_id in due:
                if row_id not in present:
                    self._sent.pop(row_id, None)  # confirmed or dropped meanwhile
                else:
                    self._sent[row_id].at = now  # not due again while this re-send is queued
            if rows:
                log.info("resending_unconfirmed", rows=len(rows), oldest_row=rows[0].id)
            for row in rows:
                await window.acquire()
                tg.create_task(self._publish(client, row, window, again=True))

    def heartbeat(self) -> Heartbeat:
        polls = {r: int(self._metrics.value("fernwart_polls_total", result=r)) for r in POLL_RESULTS}
        return Heartbeat(
            site_id=self._settings.site_id,
            agent_id=self._settings.agent_id,
            sent_at=datetime.now(UTC),
            boot=self._outbox.boot,
            interval_s=self._mqtt.heartbeat_s,
            outbox_rows=self._outbox.rows,
            outbox_bytes=self._outbox.size_bytes,
            oldest_unsent_s=None,
            dropped=self._outbox.dropped + self._outbox.store_failed,  # every message not stored
            polls=polls,
        )

    async def _announcements(self, client: aiomqtt.Client) -> None:
        self._announce.clear()  # this connection's status, just published, says it all
        while True:
            await self._announce.wait()
            self._announce.clear()
            status = encode(self._status(AgentState.ONLINE))
            await client.publish(
                self._status_topic, status, qos=1, retain=True, timeout=self._mqtt.publish_timeout_s
            )

    async def _heartbeats(self, client: aiomqtt.Client) -> None:
        while True:
            beat = self.heartbeat()
            oldest = await self._outbox.oldest_created_at()
            if oldest is not None:
                beat = beat.model_copy(update={"oldest_unsent_s": max(0.0, time.time() - oldest)})
            await client.publish(self._heartbeat_topic, encode(beat), qos=0)
            await asyncio.sleep(self._mqtt.heartbeat_s)
