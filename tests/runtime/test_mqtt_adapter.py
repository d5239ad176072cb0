"""Contract test of runtime.mqtt against a real Mosquitto: every private it touches, exercised.

When aiomqtt or paho-mqtt is upgraded, this is the test that says whether the adapter still holds
(then update ``runtime.mqtt.WRITTEN_FOR`` and the pins in pyproject.toml).
"""

from __future__ import annotations

import asyncio
import gc
import tomllib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from runtime import mqtt as adapter
from tests.fixtures.mqtt import MosquittoBroker

ROOT = Path(__file__).resolve().parents[2]


def test_written_for_the_installed_versions_and_the_pins() -> None:
    installed = {name: version(name) for name in adapter.WRITTEN_FOR}
    assert installed == dict(adapter.WRITTEN_FOR)
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for name, expected in adapter.WRITTEN_FOR.items():
        assert f"{name}=={expected}" in pins


def test_another_version_fails_loudly() -> None:
    with pytest.raises(adapter.AdapterVersionError, match=r"aiomqtt 2\.6\.0 \(written for 2\.5\.1\)"):
        adapter.check_versions({"aiomqtt": "2.6.0", "paho-mqtt": "2.2.0"})
    with pytest.raises(adapter.AdapterVersionError, match="paho-mqtt None"):
        adapter.check_versions({"aiomqtt": "2.5.1"})


def _client(broker: MosquittoBroker, identifier: str, **kwargs: Any) -> aiomqtt.Client:
    return aiomqtt.Client(broker.host, broker.port, identifier=identifier, timeout=5, **kwargs)


@asynccontextmanager
async def _manual_ack_session(broker: MosquittoBroker, identifier: str, topic: str) -> AsyncIterator[Any]:
    """A persistent 3.1.1 session (the broker keeps unacknowledged QoS 1 messages across
    reconnects) with manual acknowledgement, subscribed to ``topic``."""
    client = adapter.without_cycles(_client(broker, identifier, clean_session=False))
    adapter.enable_manual_ack(client)  # before connecting: the broker sends what it kept right away
    async with client:
        await client.subscribe(topic, qos=1, timeout=5)
        yield client


async def _publish(broker: MosquittoBroker, topic: str, payload: bytes) -> None:
    async with _client(broker, f"pub-{uuid.uuid4().hex[:8]}") as publisher:
        await publisher.publish(topic, payload, qos=1, timeout=5)


async def _next_payload(queue: asyncio.Queue[aiomqtt.Message]) -> tuple[aiomqtt.Message, bytes]:
    async with asyncio.timeout(10):
        message = await queue.get()
    assert isinstance(message.payload, bytes)
    return message, message.payload


async def test_manual_ack_holds_back_the_puback_until_ack(
    mosquitto: MosquittoBroker, topic_prefix: str
) -> None:
    """enable_manual_ack + ack (paho's manual_ack_set/ack on Client._client) and message_queue
    (aiomqtt's _queue): a message received but not acknowledged comes again on the next
    connection; once acknowledged, it does not."""
    topic, identifier = f"{topic_prefix}/obs", f"adapter-{uuid.uuid4().hex[:8]}"
    async with _manual_ack_session(mosquitto, identifier, topic):
        pass  # the session and its subscription now exist on the broker
    await _publish(mosquitto, topic, b"first")

    async with _manual_ack_session(mosquitto, identifier, topic) as client:
        _message, payload = await _next_payload(adapter.message_queue(client))
        assert payload == b"first"  # received, deliberately not acknowledged

    async with _manual_ack_session(mosquitto, identifier, topic) as client:
        message, payload = await _next_payload(adapter.message_queue(client))
        assert payload == b"first"  # redelivered: no PUBACK went out
        adapter.ack(client, message)
        await client.publish(f"{topic_prefix}/sync", b"", qos=1, timeout=5)  # the PUBACK is written before

    await _publish(mosquitto, topic, b"second")
    async with _manual_ack_session(mosquitto, identifier, topic) as client:
        _message, payload = await _next_payload(adapter.message_queue(client))
        assert payload == b"second"  # "first" was acknowledged: the broker dropped it


async def test_manual_ack_is_refused_once_connected(mosquitto: MosquittoBroker) -> None:
    """A session resumed with manual acknowledgement off would acknowledge on receipt what the
    broker kept (observed: the first message after a reconnect was never redelivered)."""
    async with _client(mosquitto, f"adapter-{uuid.uuid4().hex[:8]}") as client:
        with pytest.raises(RuntimeError, match="after connecting"):
            adapter.enable_manual_ack(client)


async def _lose_the_broker(
    client: aiomqtt.Client, broker: MosquittoBroker, topic: str, *, check_cause: bool
) -> None:
    async with client:
        await client.subscribe(topic, qos=1, timeout=5)
        lost = adapter.disconnected(client)
        assert not lost.done()
        broker.stop()
        async with asyncio.timeout(10):
            await asyncio.wait({lost})
        if check_cause:
            assert isinstance(lost.exception(), aiomqtt.MqttError)
        raise aiomqtt.MqttError("left the session")


async def test_disconnected_completes_with_the_cause(mosquitto: MosquittoBroker, topic_prefix: str) -> None:
    """disconnected (aiomqtt's _disconnected) completes with the cause when the broker goes away."""
    client = _client(mosquitto, f"adapter-{uuid.uuid4().hex[:8]}")
    with pytest.raises(aiomqtt.MqttError):
        await _lose_the_broker(client, mosquitto, f"{topic_prefix}/x", check_cause=True)


async def test_retrieved_errors_are_not_reported(mosquitto: MosquittoBroker, topic_prefix: str) -> None:
    """retrieve_connection_errors (_connected, _disconnected) leaves nothing for asyncio to report
    when the client is collected; without it asyncio logs "Future exception was never retrieved"."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        client = _client(mosquitto, f"adapter-{uuid.uuid4().hex[:8]}")
        with pytest.raises(aiomqtt.MqttError):
            await _lose_the_broker(client, mosquitto, f"{topic_prefix}/x", check_cause=False)
        adapter.retrieve_connection_errors(client)
        del client
        gc.collect()
        await asyncio.sleep(0)  # let any "never retrieved" report run
    finally:
        loop.set_exception_handler(previous)
    assert not [c for c in reported if "never retrieved" in str(c.get("message"))]


async def test_connect_timeout_reaches_paho(mosquitto: MosquittoBroker) -> None:
    """set_connect_timeout sets paho's connect_timeout on aiomqtt's Client._client, and the
    client still connects with it."""
    client = _client(mosquitto, f"adapter-{uuid.uuid4().hex[:8]}")
    adapter.set_connect_timeout(client, 2.5)
    assert client._client.connect_timeout == 2.5
    async with client:
        await client.publish("fwtest/connect", b"", qos=1, timeout=5)


async def test_without_cycles_on_a_live_session(mosquitto: MosquittoBroker, topic_prefix: str) -> None:
    """without_cycles swaps paho's _on_message_filtered (keeping its _root) and paho still
    dispatches every received message through it (tests/runtime/test_mqtt.py: no cycle, same matches)."""
    client = adapter.without_cycles(_client(mosquitto, f"adapter-{uuid.uuid4().hex[:8]}"))
    assert isinstance(client._client._on_message_filtered, adapter.AcyclicTopicMatcher)
    async with client:
        await client.subscribe(f"{topic_prefix}/#", qos=1, timeout=5)
        for index in range(20):
            await client.publish(f"{topic_prefix}/m", str(index).encode(), qos=1, timeout=5)
        queue = adapter.message_queue(client)
        payloads = [(await _next_payload(queue))[1] for _ in range(20)]
    assert payloads == [str(index).encode() for index in range(20)]
