"""Confirmations to the agents: which of their batches the controller committed.

After each commit the session hands the committed ``(site, agent, boot, seq)`` to
:meth:`Confirmations.send`, which publishes one :class:`~collector.wire.BatchAck` per agent on
``{prefix}/{site}/ack`` (QoS 1) in the background. An agent deletes an outbox row only when a
BatchAck names it and sends again what stays unconfirmed; a lost confirmation therefore costs one
re-send, which the batch id turns into a duplicate that is confirmed again.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import aiomqtt
import structlog
from prometheus_client import Counter

from collector.wire import BatchAck, TopicKind, encode
from collector.wire.topics import topic

log = structlog.get_logger(__name__)

Committed = tuple[str, str, int, int]  # site_id, agent_id, boot, seq


def ranges(boots: dict[int, list[int]]) -> list[tuple[int, int, int]]:
    """``[boot, first, last]`` runs of consecutive seqs, per boot, in order."""
    found: list[tuple[int, int, int]] = []
    for boot in sorted(boots):
        seqs = sorted(set(boots[boot]))
        first = last = seqs[0]
        for seq in seqs[1:]:
            if seq != last + 1:
                found.append((boot, first, last))
                first = seq
            last = seq
        found.append((boot, first, last))
    return found


class Confirmations:
    def __init__(self, prefix: str, sent: Counter) -> None:
        self._prefix = prefix
        self._sent = sent
        self._tasks: set[asyncio.Task[None]] = set()  # on their way to the agents

    def send(self, client: aiomqtt.Client, committed: list[Committed]) -> None:
        """Confirm ``committed`` to each agent (after the commit; in the background)."""
        if not committed:
            return
        by_agent: dict[tuple[str, str], dict[int, list[int]]] = {}
        for site_id, agent_id, boot, seq in committed:
            by_agent.setdefault((site_id, agent_id), {}).setdefault(boot, []).append(seq)
        now = datetime.now(UTC)
        for (site_id, agent_id), boots in by_agent.items():
            ack = BatchAck(site_id=site_id, agent_id=agent_id, sent_at=now, ranges=ranges(boots))
            name = topic(site_id, TopicKind.ACK, self._prefix)
            count = sum(len(seqs) for seqs in boots.values())
            task = asyncio.create_task(self._publish(client, name, encode(ack), count))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _publish(self, client: aiomqtt.Client, name: str, payload: bytes, count: int) -> None:
        try:
            await client.publish(name, payload, qos=1, timeout=10)
        except aiomqtt.MqttError as err:
            log.debug("confirmation_not_sent", topic=name, error=str(err))
        else:
            self._sent.inc(count)
