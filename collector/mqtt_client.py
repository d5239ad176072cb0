"""What the agent and the controller change in the MQTT client they share (aiomqtt over paho).

paho matches every received message against the filters of its per-topic callbacks with a
recursive generator defined inside ``MQTTMatcher.iter_match``; that closure refers to itself, so
each message leaves a reference cycle that only the garbage collector frees. At 500 messages a
second the controller collected ~150,000 such objects at once every 20-30 s, pausing its event
loop for 150-180 ms (bench/ingest.py, a flush-by-flush log). :class:`AcyclicTopicMatcher` matches
the same way with a module-level recursive generator, which leaves no cycle.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import aiomqtt
from paho.mqtt.matcher import MQTTMatcher


def _matches(node: Any, parts: list[str], i: int, normal: bool) -> Iterator[Any]:
    """paho's iter_match, same order of results (paho.mqtt.matcher, version 2.2.0)."""
    children = node._children  # noqa: SLF001 (paho's trie)
    if i == len(parts):
        if node._content is not None:  # noqa: SLF001
            yield node._content  # noqa: SLF001
    else:
        part = parts[i]
        if part in children:
            yield from _matches(children[part], parts, i + 1, normal)
        if "+" in children and (normal or i > 0):
            yield from _matches(children["+"], parts, i + 1, normal)
    if "#" in children and (normal or i > 0):
        content = children["#"]._content  # noqa: SLF001
        if content is not None:
            yield content


class AcyclicTopicMatcher(MQTTMatcher):
    def iter_match(self, topic: str) -> Iterator[Any]:
        return _matches(self._root, topic.split("/"), 0, not topic.startswith("$"))


def without_cycles(client: aiomqtt.Client) -> aiomqtt.Client:
    """``client`` with paho's per-message matcher replaced (before any callback is added)."""
    paho = client._client  # noqa: SLF001
    matcher = AcyclicTopicMatcher()  # type: ignore[no-untyped-call]
    matcher._root = paho._on_message_filtered._root  # noqa: SLF001 (keeps filters added so far)
    paho._on_message_filtered = matcher  # noqa: SLF001
    return client
