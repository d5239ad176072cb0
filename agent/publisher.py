"""The MQTT session: connect, announce, drain the outbox in order, reconnect with backoff.

One aiomqtt client per connection attempt. The last will is this agent's ``offline``
:class:`~collector.wire.AgentStatus` (retained, QoS 1); right after CONNACK the retained
``online`` birth is published. Then outbox rows go out oldest first at QoS 1 with at most
``mqtt.max_inflight`` awaiting their PUBACK (aiomqtt's ``publish`` returns after the PUBACK), and
a row is deleted only once acknowledged. All publishes share one TCP connection, so they reach
the broker in row order. When the connection drops, unacknowledged rows stay and the next
connection starts again at the oldest row; a redelivered batch keeps its ``batch_id``.

Reconnects wait ``min_s · 2^attempt`` capped at ``max_s``, with full jitter (a random fraction of
that), so agents of a site that lost the broker together do not return together.
"""

from __future__ import annotations

import asyncio
import random
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING

import aiomqtt
import structlog

from collector.mqtt_client import without_cycles
from collector.wire.codec import encode
from collector.wire.messages import AgentState, AgentStatus
from collector.wire.topics import TopicKind, topic

if TYPE_CHECKING:
    from agent.metrics import AgentMetrics
    from agent.outbox import Outbox, OutboxRow
    from agent.settings import AgentSettings, MqttSettings

log = structlog.get_logger(__name__)
_random = random.Random()  # noqa: S311 - jitter, not security

StatusFactory = Callable[[AgentState], AgentStatus]


def tls_context(mqtt: MqttSettings) -> ssl.SSLContext | None:
    """An SSL context from the ``mqtt.tls`` table, or None when TLS is not configured."""
    if mqtt.tls is None:
        return None
    tls = mqtt.tls
    context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if tls.cert_file is not None:
        context.load_cert_chain(
            str(tls.cert_file),
            str(tls.key_file) if tls.key_file else None,
            password=tls.key_password.get_secret_value() if tls.key_password else None,
        )
    if not tls.server_hostname_check:
        context.check_hostname = False
    return context


def backoff_delay(attempt: int, min_s: float, max_s: float) -> float:
    """Capped exponential backoff with jitter, never below ``min_s``."""
    ceiling = min(max_s, min_s * 2 ** min(attempt, 30))
    return float(min_s + _random.random() * (ceiling - min_s))


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
        self._tls = tls_context(settings.mqtt)
        self._client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()

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
        client._client.connect_timeout = self._mqtt.connect_timeout_s  # noqa: SLF001
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
                _retrieve_connection_errors(client)
            await asyncio.sleep(delay)

    async def _pump(self, client: aiomqtt.Client) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._watch(client), name="mqtt-watch")
            window = asyncio.Semaphore(self._mqtt.max_inflight)
            sent_up_to = 0  # row id; every row up to it is published or in flight on this connection
            while True:
                await self._outbox.wait_for_rows_after(sent_up_to)
                rows = await self._outbox.read(after_id=sent_up_to, limit=self._mqtt.max_inflight)
                for row in rows:
                    await window.acquire()
                    tg.create_task(self._publish(client, row, window))
                    sent_up_to = row.id
                if not rows:
                    # Rows between sent_up_to and max_id were dropped before we read them.
                    sent_up_to = self._outbox.max_id

    async def _watch(self, client: aiomqtt.Client) -> None:
        """Raise :class:`aiomqtt.MqttError` as soon as the connection is lost."""
        async for _message in client.messages:
            pass  # commands (cmd topic) will be dispatched here

    async def _publish(self, client: aiomqtt.Client, row: OutboxRow, window: asyncio.Semaphore) -> None:
        try:
            await client.publish(self._obs_topic, row.payload, qos=1, timeout=self._mqtt.publish_timeout_s)
        finally:
            window.release()
        await self._outbox.delete(row.id)
        self._metrics.published.inc()


def _retrieve_connection_errors(client: aiomqtt.Client) -> None:
    """aiomqtt stores a lost connection's error in futures nobody awaits once the session is
    over; retrieve them so asyncio does not log "Future exception was never retrieved"."""
    for name in ("_connected", "_disconnected"):
        future = getattr(client, name, None)
        if isinstance(future, asyncio.Future) and future.done() and not future.cancelled():
            future.exception()
