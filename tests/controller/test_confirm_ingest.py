"""The controller confirms each committed batch to its agent (BatchAck on ``{site}/ack``): new
ones, redelivered ones (so a re-sending agent can forget them), never one it did not store."""

from __future__ import annotations

import asyncio
import uuid

import aiomqtt

from collector.wire import BatchAck, TopicKind, decode
from tests.controller.conftest import Harness, make_batch, make_observation, publisher_client


async def _acks(h: Harness, client: aiomqtt.Client, want: int) -> list[BatchAck]:
    found: list[BatchAck] = []
    async with asyncio.timeout(30):
        async for message in client.messages:
            assert isinstance(message.payload, bytes)
            _topic, ack = decode(message.topic.value, message.payload, prefix=h.prefix)
            assert isinstance(ack, BatchAck)
            found.append(ack)
            if sum(last - first + 1 for a in found for _b, first, last in a.ranges) >= want:
                return found
    return found


async def test_committed_and_redelivered_batches_are_confirmed(make_harness) -> None:
    h: Harness = await make_harness()
    async with publisher_client(h.broker) as listener:
        await listener.subscribe(f"{h.prefix}/+/{TopicKind.ACK.value}", qos=1)  # every site's
        batch_id = uuid.uuid4()
        first = make_batch("site-1", "agent-1", 0, [make_observation("dev-a")], batch_id=batch_id)
        await h.send_batch(first)
        await h.send_batch(make_batch("site-1", "agent-1", 1, [make_observation("dev-b")]))
        acks = await _acks(h, listener, 2)
        assert {(a.site_id, a.agent_id) for a in acks} == {("site-1", "agent-1")}
        assert sorted((b, s) for a in acks for b, f, last in a.ranges for s in range(f, last + 1)) == [
            (1, 0),
            (1, 1),
        ]
        # The agent did not hear the confirmation and sends seq 0 again: stored once, confirmed again.
        await h.send_batch(first)
        again = await _acks(h, listener, 1)
        assert [tuple(r) for a in again for r in a.ranges] == [(1, 0, 0)]
        # A batch for a site nobody enrolled is a dead letter, and nobody is told it was committed.
        await h.send_batch(make_batch("site-nobody", "agent-x", 0, [make_observation("dev-c")]))
        await h.send_batch(make_batch("site-1", "agent-1", 2, [make_observation("dev-d")]))
        last = await _acks(h, listener, 1)
        assert [(a.site_id, tuple(r)) for a in last for r in a.ranges] == [("site-1", (1, 2, 2))]
