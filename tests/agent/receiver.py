"""A test-side MQTT receiver with a persistent session, so it misses nothing across a broker
restart: QoS 1 subscription, ``clean_session=False``, reconnecting until stopped.

It stands in for the controller on the wire: every batch it receives it confirms to the agent
with a :class:`~collector.wire.BatchAck` (unless ``confirm`` is off), as the controller does
after its commit, so the agent's outbox empties."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiomqtt

from collector.wire import AgentStatus, BatchAck, Heartbeat, ObservationBatch, TopicKind, decode, encode
from collector.wire.topics import topic


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool


@dataclass
class Receiver:
    host: str
    port: int
    prefix: str
    messages: list[Received] = field(default_factory=list)
    identifier: str = field(default_factory=lambda: f"rx-{uuid.uuid4().hex[:8]}")
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    confirm: bool = True

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    self.host, self.port, identifier=self.identifier, clean_session=False, timeout=5
                ) as client:
                    await client.subscribe(f"{self.prefix}/#", qos=1)
                    self.subscribed.set()
                    async for message in client.messages:
                        payload = message.payload
                        assert isinstance(payload, bytes)
                        self.messages.append(Received(str(message.topic), payload, bool(message.retain)))
                        if self.confirm and str(message.topic).endswith("/obs"):
                            await self._confirm(client, str(message.topic), payload)
                        self.arrived.set()
                        self.arrived = asyncio.Event()
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)

    async def _confirm(self, client: aiomqtt.Client, name: str, payload: bytes) -> None:
        _, batch = decode(name, payload, prefix=self.prefix)
        assert isinstance(batch, ObservationBatch)
        ack = BatchAck(
            site_id=batch.site_id,
            agent_id=batch.agent_id,
            sent_at=datetime.now(UTC),
            ranges=[(batch.boot, batch.seq, batch.seq)],
        )
        await client.publish(topic(batch.site_id, TopicKind.ACK, self.prefix), encode(ack), qos=1)

    async def wait_for(self, predicate: object, timeout_s: float = 30) -> None:
        assert callable(predicate)
        async with asyncio.timeout(timeout_s):
            while not predicate():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        await self.arrived.wait()

    def batches(self) -> list[ObservationBatch]:
        out = []
        for m in self.messages:
            if m.topic.endswith("/obs"):
                _, message = decode(m.topic, m.payload, prefix=self.prefix)
                assert isinstance(message, ObservationBatch)
                out.append(message)
        return out

    def heartbeats(self) -> list[Heartbeat]:
        out = []
        for m in self.messages:
            if m.topic.endswith("/heartbeat"):
                _, message = decode(m.topic, m.payload, prefix=self.prefix)
                assert isinstance(message, Heartbeat)
                out.append(message)
        return out

    def statuses(self) -> list[tuple[AgentStatus, bool]]:
        out = []
        for m in self.messages:
            if m.topic.endswith("/status"):
                _, message = decode(m.topic, m.payload, prefix=self.prefix)
                assert isinstance(message, AgentStatus)
                out.append((message, m.retain))
        return out


@contextlib.asynccontextmanager
async def receiving(host: str, port: int, prefix: str, *, confirm: bool = True):  # type: ignore[no-untyped-def]
    receiver = Receiver(host, port, prefix, confirm=confirm)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(receiver.run())
        async with asyncio.timeout(10):
            await receiver.subscribed.wait()
        try:
            yield receiver
        finally:
            task.cancel()
