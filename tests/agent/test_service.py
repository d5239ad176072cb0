"""The agent service in-process against a real Mosquitto, with the in-test counting driver."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import structlog

from agent.service import AgentService
from agent.settings import AgentSettings, parse_settings
from collector.wire import AgentState
from tests.agent.drivers import DriverPool, lookup, source_lookup
from tests.agent.receiver import Receiver, receiving
from tests.fixtures.mqtt import MosquittoBroker

SECRET_PASSWORD = "pw-Zq8-never-shown"  # a marker to search for, not a credential
SECRET_COMMUNITY = "community-Xv3-never-shown"


def agent_settings(
    broker: MosquittoBroker, prefix: str, tmp_path: Path, devices: int = 5, **extra: Any
) -> AgentSettings:
    raw: dict[str, Any] = {
        "site_id": "site-1",
        "agent_id": "agent-1",
        "mqtt": {
            "host": broker.host,
            "port": broker.port,
            "prefix": prefix,
            "keepalive_s": 5,
            "connect_timeout_s": 2,
            "publish_timeout_s": 2,
            "backoff": {"min_s": 0.1, "max_s": 1.0},
        },
        "outbox": {"path": str(tmp_path / "outbox.db"), "linger_ms": 50, "max_batch": 20},
        "poll": {"jitter_fraction": 0.1, "timeout_s": 1},
        "shutdown": {"drain_s": 5},
        "devices": [
            {"id": f"dev-{i}", "kind": "counting", "interval_s": 0.5, "options": {"firmware": "1.0"}}
            for i in range(devices)
        ],
    }
    for key, value in extra.items():
        if isinstance(value, dict):
            raw[key] = {**raw.get(key, {}), **value}
        else:
            raw[key] = value
    return AgentSettings.model_validate(raw)


def check_complete_and_ordered(rx: Receiver, service: AgentService, pool: DriverPool) -> int:
    """Every observation the drivers made arrived, in order, and each exactly once after
    dedupe by batch_id. Returns how many redelivered duplicates the receiver saw."""
    assert service.outbox is not None
    first_seen: dict[str, Any] = {}
    for batch in rx.batches():
        first_seen.setdefault(str(batch.batch_id), batch)
    batches = list(first_seen.values())
    boot = service.outbox.boot
    assert {b.boot for b in batches} == {boot}
    # In order: first arrivals have strictly increasing seq, and none is missing.
    assert [b.seq for b in batches] == list(range(service.outbox.seqs_assigned))
    per_device: dict[str, list[int]] = {}
    for batch in batches:
        for obs in batch.observations:
            per_device.setdefault(obs.device_id, []).append(int(obs.metrics["poll"]))
    for device_id, driver in pool.drivers.items():
        assert per_device[device_id] == list(range(1, driver.polls + 1)), device_id
    return len(rx.batches()) - len(batches)


async def eventually(predicate: Any, timeout_s: float = 30) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_broker_outage_of_30s_loses_nothing(
    mosquitto: MosquittoBroker, topic_prefix: str, tmp_path: Path
) -> None:
    settings = agent_settings(mosquitto, topic_prefix, tmp_path)
    pool = DriverPool()
    service = AgentService(settings, driver_factory=pool)
    stop = asyncio.Event()
    async with receiving(mosquitto.host, mosquitto.port, topic_prefix) as rx:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(service.run(stop))
            await rx.wait_for(lambda: len(rx.batches()) >= 3)
            await asyncio.to_thread(mosquitto.stop)
            polls_before = sum(d.polls for d in pool.drivers.values())
            await asyncio.sleep(30)  # the outage: the agent keeps polling into the outbox
            assert service.outbox is not None
            assert service.outbox.rows > 0
            assert sum(d.polls for d in pool.drivers.values()) > polls_before
            await asyncio.to_thread(mosquitto.start)
            await eventually(lambda: service.metrics.value("fernwart_mqtt_connects_total") >= 2, 60)
            stop.set()
            # Leaving the TaskGroup waits for the service to drain and stop.
        assert service.outbox.rows == 0
        seqs = service.outbox.seqs_assigned
        await rx.wait_for(lambda: len({b.batch_id for b in rx.batches()}) >= seqs, 30)
    check_complete_and_ordered(rx, service, pool)


async def test_secrets_stay_out_of_logs_and_messages(
    mosquitto: MosquittoBroker, topic_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FW_TEST_PW", SECRET_PASSWORD)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "community").write_text(SECRET_COMMUNITY)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    raw = agent_settings(mosquitto, topic_prefix, tmp_path, devices=2).model_dump(mode="json")
    raw["mqtt"]["username"] = "agent-1"
    raw["mqtt"]["password"] = {"env": "FW_TEST_PW"}
    for device in raw["devices"]:
        device["options"]["community"] = {"credential": "community"}
    settings = parse_settings(raw, lookup=lookup)
    pool = DriverPool()
    service = AgentService(settings, driver_factory=pool)
    stop = asyncio.Event()
    with structlog.testing.capture_logs() as logs:
        async with receiving(mosquitto.host, mosquitto.port, topic_prefix) as rx:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(service.run(stop))
                await rx.wait_for(lambda: len(rx.batches()) >= 2)
                stop.set()
            await rx.wait_for(lambda: rx.statuses()[-1][0].state is AgentState.OFFLINE)
    assert pool.drivers["dev-0"].options.community is not None
    assert pool.drivers["dev-0"].options.community.get_secret_value() == SECRET_COMMUNITY
    assert any(e["event"] == "agent_stopped" for e in logs)
    assert all(driver.closed for driver in pool.drivers.values())
    for secret in (SECRET_PASSWORD, SECRET_COMMUNITY):
        assert secret not in repr(logs)
        assert secret not in repr(settings)
        for message in rx.messages:
            assert secret.encode() not in message.payload


async def test_full_outbox_drops_oldest_and_the_gap_is_visible(
    mosquitto: MosquittoBroker, topic_prefix: str, tmp_path: Path
) -> None:
    settings = agent_settings(
        mosquitto, topic_prefix, tmp_path, devices=3, outbox={"max_rows": 4, "max_batch": 1}
    )
    pool = DriverPool()
    service = AgentService(settings, driver_factory=pool)
    stop = asyncio.Event()
    async with receiving(mosquitto.host, mosquitto.port, topic_prefix) as rx:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(service.run(stop))
            await rx.wait_for(lambda: len(rx.batches()) >= 2)
            await asyncio.to_thread(mosquitto.stop)
            await eventually(lambda: service.metrics.value("fernwart_outbox_dropped_total") >= 3)
            await asyncio.to_thread(mosquitto.start)
            await eventually(lambda: service.metrics.value("fernwart_mqtt_connects_total") >= 2)
            stop.set()
        assert service.outbox is not None
        assert service.outbox.rows == 0
        dropped = int(service.metrics.value("fernwart_outbox_dropped_total"))
        assert dropped == service.outbox.dropped
        seqs = service.outbox.seqs_assigned
        # Every row was acknowledged, so the newest batch arrives too: wait for it as well. A batch
        # both dropped and delivered (below) let the count alone be reached while it was still on
        # its way to this subscriber, and the test saw it missing.
        await rx.wait_for(
            lambda: (
                len({b.batch_id for b in rx.batches()}) >= seqs - dropped
                and seqs - 1 in {b.seq for b in rx.batches()}
            )
        )
    received = sorted({b.seq for b in rx.batches()})
    missing = sorted(set(range(seqs)) - set(received))
    # The counted drops are what is missing (a batch the broker got just before it stopped, whose
    # PUBACK was lost, may be both dropped and delivered), and they form one gap in seq.
    assert 0 < len(missing) <= dropped
    assert missing == list(range(missing[0], missing[0] + len(missing)))


async def test_sources_run_beside_devices_and_commands_find_their_source(
    mosquitto: MosquittoBroker, topic_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``[[sources]]`` tenant of three devices polled beside a ``[[devices]]`` entry: every
    device's observations go out, the tenant's secret never does, and a device id leads to the
    source that can act on it."""
    monkeypatch.setenv("FW_TEST_TENANT_SECRET", SECRET_PASSWORD)
    raw = agent_settings(mosquitto, topic_prefix, tmp_path, devices=1).model_dump(mode="json")
    raw["sources"] = [
        {
            "id": "tenant-a",
            "kind": "listing",
            "interval_s": 0.5,
            "options": {
                "devices": ["room-1", "room-2", "room-3"],
                "client_secret": {"env": "FW_TEST_TENANT_SECRET"},
            },
        }
    ]
    settings = parse_settings(raw, lookup=source_lookup)
    made: dict[str, Any] = {}

    def factory(entry: Any) -> Any:
        made[entry.id] = source_lookup(entry.kind)(entry.id, entry.driver_options)
        return made[entry.id]

    service = AgentService(settings, driver_factory=factory)
    stop = asyncio.Event()
    async with receiving(mosquitto.host, mosquitto.port, topic_prefix) as rx:

        def devices_seen() -> set[str]:
            return {o.device_id for b in rx.batches() for o in b.observations}

        async with asyncio.TaskGroup() as tg:
            tg.create_task(service.run(stop))
            await rx.wait_for(lambda: devices_seen() >= {"dev-0", "room-1", "room-2", "room-3"})
            # The tenant's devices are announced once listed, with the source's interval (the
            # controller marks devices stale by it).
            await rx.wait_for(lambda: any(s.intervals_s.get("room-2") == 0.5 for s, *_ in rx.statuses()))
            (status, *_), *_ = [entry for entry in rx.statuses() if "room-2" in entry[0].intervals_s]
            assert status.intervals_s == {"dev-0": 0.5, "room-1": 0.5, "room-2": 0.5, "room-3": 0.5}
            assert sorted(status.devices) == ["dev-0", "room-1", "room-2", "room-3"]
            assert service.sources.for_device("room-2") is made["tenant-a"]
            assert service.sources.source_of("dev-0") == "dev-0"
            assert service.sources.for_device("dev-0") is None  # the counting driver cannot act
            stop.set()
    assert made["tenant-a"].closed
    assert made["dev-0"].closed
    for message in rx.messages:
        assert SECRET_PASSWORD.encode() not in message.payload
