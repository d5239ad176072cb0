"""The MQTT adapter: the only module that touches private attributes of aiomqtt and paho-mqtt.

Both daemons use aiomqtt (over paho). A few things they need are not in aiomqtt's public API, so
this module reaches inside, for the versions in :data:`WRITTEN_FOR` only (checked at import: a
different installed version fails loudly, before any daemon starts). Each function is exercised
against a real Mosquitto broker by tests/runtime/test_mqtt_adapter.py; upgrading either library
means running that test, re-reading the library code named below and updating ``WRITTEN_FOR``
(and the pins in pyproject.toml).

- :func:`enable_manual_ack` / :func:`ack` — paho's ``manual_ack_set`` and ``ack`` on
  ``Client._client``: the controller acknowledges a QoS 1 message only after the transaction that
  stored it committed (the no-loss promise; aiomqtt acknowledges on receipt).
- :func:`message_queue` / :func:`disconnected` — aiomqtt's ``_queue`` and ``_disconnected``: a
  cancel-safe read that never drops a message taken off the queue at the moment of a stop
  (cancelling ``async for message in client.messages`` can), and the connection-lost future.
- :func:`retrieve_connection_errors` — aiomqtt's ``_connected``/``_disconnected`` futures keep a
  lost connection's error that nobody awaits once the session is over.
- :func:`set_connect_timeout` — paho's TCP connect timeout: aiomqtt connects in a worker thread a
  cancelled task cannot stop, so this bounds how long a stopping daemon waits on a dead address.
- :func:`without_cycles` — paho's per-topic callback matcher (``_on_message_filtered``, the trie's
  ``_root``/``_children``/``_content``): paho matches every received message with a recursive
  generator defined inside ``MQTTMatcher.iter_match``; that closure refers to itself, so each
  message leaves a reference cycle only the garbage collector frees. At 500 messages a second the
  controller collected ~150,000 such objects at once every 20-30 s, pausing its event loop for
  150-180 ms (bench/ingest.py). :class:`AcyclicTopicMatcher` matches the same way with a
  module-level recursive generator, which leaves no cycle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from typing import Any

import aiomqtt
import paho.mqtt
from paho.mqtt.matcher import MQTTMatcher

# The versions whose private attributes this module was written against (pinned in pyproject.toml).
WRITTEN_FOR: Mapping[str, str] = {"aiomqtt": "2.5.1", "paho-mqtt": "2.2.0"}


class AdapterVersionError(RuntimeError):
    """The installed library is not the version the adapter was checked against."""


def check_versions(installed: Mapping[str, str]) -> None:
    """Raise :class:`AdapterVersionError` naming every library whose version differs."""
    wrong = [
        f"{name} {installed.get(name)} (written for {expected})"
        for name, expected in WRITTEN_FOR.items()
        if installed.get(name) != expected
    ]
    if wrong:
        raise AdapterVersionError(
            "runtime.mqtt touches private attributes of these libraries and was not checked against "
            f"the installed version: {', '.join(wrong)}. Run tests/runtime/test_mqtt_adapter.py against "
            "it, then update runtime.mqtt.WRITTEN_FOR and the pins in pyproject.toml."
        )


check_versions({"aiomqtt": aiomqtt.__version__, "paho-mqtt": paho.mqtt.__version__})


def _paho(client: aiomqtt.Client) -> Any:
    """aiomqtt's paho client (``aiomqtt.Client._client``, aiomqtt/client.py)."""
    return client._client  # noqa: SLF001 - the adapter


def enable_manual_ack(client: aiomqtt.Client) -> None:
    """Received QoS>0 messages are acknowledged only by :func:`ack`. Must be called before
    connecting: a broker resuming a persistent session sends what it kept right after CONNACK,
    and paho acknowledges on receipt whatever arrives while manual acknowledgement is off.
    Raises :class:`RuntimeError` on a client that has connected."""
    if client._connected.done():  # noqa: SLF001 - the adapter
        raise RuntimeError("enable_manual_ack after connecting: messages already received were acknowledged")
    _paho(client).manual_ack_set(True)  # noqa: FBT003 - paho's API


def ack(client: aiomqtt.Client, message: aiomqtt.Message) -> None:
    """PUBACK ``message`` (a no-op for QoS 0). After a reconnect a stale ``mid`` is ignored by
    paho; the broker redelivers what was not acknowledged on the old connection."""
    if message.qos > 0:
        _paho(client).ack(message.mid, message.qos)


def message_queue(client: aiomqtt.Client) -> asyncio.Queue[aiomqtt.Message]:
    """The queue aiomqtt puts received messages into (``Client._queue``); ``client.messages``
    reads the same queue."""
    queue: asyncio.Queue[aiomqtt.Message] = client._queue  # noqa: SLF001 - the adapter
    return queue


def disconnected(client: aiomqtt.Client) -> asyncio.Future[None]:
    """The future aiomqtt completes when the connection is lost (``Client._disconnected``); its
    exception says why."""
    future: asyncio.Future[None] = client._disconnected  # noqa: SLF001 - the adapter
    return future


def retrieve_connection_errors(client: aiomqtt.Client) -> None:
    """Mark the errors of aiomqtt's connect/disconnect futures retrieved, so asyncio does not log
    "Future exception was never retrieved" when the client is collected."""
    for future in (client._connected, client._disconnected):  # noqa: SLF001 - the adapter
        if future.done() and not future.cancelled():
            future.exception()


def set_connect_timeout(client: aiomqtt.Client, seconds: float) -> None:
    """Bound paho's TCP connect (run in a worker thread by aiomqtt) to ``seconds``."""
    _paho(client).connect_timeout = seconds


def _matches(node: Any, parts: list[str], i: int, normal: bool) -> Iterator[Any]:
    """paho's iter_match, same order of results (paho.mqtt.matcher, version 2.2.0)."""
    children = node._children  # noqa: SLF001 - paho's trie
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
    """``client`` with paho's per-message matcher replaced (keeps the filters added so far)."""
    paho = _paho(client)
    matcher = AcyclicTopicMatcher()  # type: ignore[no-untyped-call]
    matcher._root = paho._on_message_filtered._root  # noqa: SLF001
    paho._on_message_filtered = matcher  # noqa: SLF001
    return client
