"""``fernwart-agent`` as a subprocess, with a real driver from the entry points (SNMP, aimed at
a loopback UDP port where nothing answers, so every poll yields a real ``down`` observation)
and a real Mosquitto: SIGTERM drains and exits 0, kill -9 leaves the last will, the retained
birth describes the agent, secrets appear neither in logs nor on the wire, READY/STOPPING reach
$NOTIFY_SOCKET."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from collector.wire import AgentState, AgentStatus, decode
from tests.agent.receiver import Receiver, receiving
from tests.fixtures.mqtt import MosquittoBroker
from tests.fixtures.net import free_port

AGENT = Path(sys.executable).with_name("fernwart-agent")
SECRET_PASSWORD = "pw-Zq8-never-shown"  # a marker to search for
SECRET_COMMUNITY = "community-Xv3-never-shown"

pytestmark = pytest.mark.skipif(
    not (Path(__file__).resolve().parents[2] / "collector" / "snmp" / "driver.py").exists(),
    reason="needs the snmp driver",
)


def write_config(
    tmp_path: Path,
    broker: MosquittoBroker,
    prefix: str,
    *,
    devices: int = 3,
    interval_s: float = 0.5,
    kind: str = "snmp",
) -> Path:
    dead_port = free_port(socket.SOCK_DGRAM)
    lines = [
        'site_id = "site-1"',
        'agent_id = "agent-1"',
        "[mqtt]",
        f'host = "{broker.host}"',
        f"port = {broker.port}",
        f'prefix = "{prefix}"',
        'username = "agent-1"',
        'password = { env = "FW_TEST_MQTT_PASSWORD" }',
        "keepalive_s = 5",
        "connect_timeout_s = 2",
        "publish_timeout_s = 2",
        "[mqtt.backoff]",
        "min_s = 0.1",
        "max_s = 0.5",
        "[outbox]",
        f'path = "{tmp_path / "state" / "outbox.db"}"',
        "linger_ms = 50",
        "[poll]",
        "timeout_s = 2",
        "[shutdown]",
        "drain_s = 5",
    ]
    for i in range(devices):
        lines += ["[[devices]]", f'id = "{kind}-{i}"', f'kind = "{kind}"', f"interval_s = {interval_s}"]
        lines += ["[devices.options]"]
        if kind == "snmp":
            lines += [
                'host = "127.0.0.1"',
                f"port = {dead_port}",
                'community = { credential = "snmp-community" }',
                "timeout_s = 0.2",
                "retries = 0",
            ]
        else:
            lines += ['disk_paths = ["/"]']
    path = tmp_path / "agent.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class NotifySocket:
    """Stands in for systemd's $NOTIFY_SOCKET, and like systemd reads every datagram at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)  # noqa: FBT003 - the socket API
        self.states: list[str] = []
        self._changed = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock, self._on_readable)

    def _on_readable(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while True:
                self.states.extend(self.sock.recv(4096).decode().splitlines())
                self._changed.set()

    async def wait_for(self, state: str, timeout_s: float = 30) -> None:
        async with asyncio.timeout(timeout_s):
            while state not in self.states:
                self._changed.clear()
                await self._changed.wait()

    def close(self) -> None:
        self._loop.remove_reader(self.sock)
        self.sock.close()


@contextlib.asynccontextmanager
async def agent_process(
    tmp_path: Path, config: Path, *extra_args: str
) -> AsyncIterator[tuple[subprocess.Popen[bytes], NotifySocket, Path]]:
    creds = tmp_path / "creds"
    creds.mkdir(exist_ok=True)
    (creds / "snmp-community").write_text(SECRET_COMMUNITY + "\n")
    notify = NotifySocket(tmp_path / "notify.sock")
    log_path = tmp_path / "agent.log"
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(notify.path),
        "CREDENTIALS_DIRECTORY": str(creds),
        "FW_TEST_MQTT_PASSWORD": SECRET_PASSWORD,
        "WATCHDOG_USEC": "400000",  # systemd's WatchdogSec=, here 0.4 s: a ping every 0.2 s
    }
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [str(AGENT), "--config", str(config), *extra_args],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            yield proc, notify, log_path
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
            notify.close()


def log_events(path: Path) -> list[dict[str, Any]]:
    events = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            events.append(json.loads(line))
    return events


async def retained_status(broker: MosquittoBroker, prefix: str) -> AgentStatus:
    topic = f"{prefix}/site-1/status"
    async with aiomqtt.Client(broker.host, broker.port, timeout=5) as client:
        await client.subscribe(topic, qos=1)
        async with asyncio.timeout(10):
            message = await anext(aiter(client.messages))
    assert message.retain
    assert isinstance(message.payload, bytes)
    _, status = decode(topic, message.payload, prefix=prefix)
    assert isinstance(status, AgentStatus)
    return status


def unique_batches(rx: Receiver, boot: int) -> list[int]:
    seen: dict[str, int] = {}
    for batch in rx.batches():
        if batch.boot == boot:
            seen.setdefault(str(batch.batch_id), batch.seq)
    return list(seen.values())


@pytest.mark.slow
async def test_sigterm_drains_the_outbox_and_exits_0(
    mosquitto: MosquittoBroker, topic_prefix: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, mosquitto, topic_prefix)
    async with (
        receiving(mosquitto.host, mosquitto.port, topic_prefix) as rx,
        agent_process(tmp_path, config) as (proc, notify, log_path),
    ):
        await notify.wait_for("READY=1")
        await rx.wait_for(lambda: len(rx.batches()) >= 2)
        # Let observations pile up in the outbox, then stop the agent right as the broker returns:
        # the drain has to reconnect and publish the backlog.
        await asyncio.to_thread(mosquitto.stop)
        await asyncio.sleep(2)
        await asyncio.to_thread(mosquitto.start)
        proc.send_signal(signal.SIGTERM)
        await notify.wait_for("STOPPING=1")
        code = await asyncio.to_thread(proc.wait, 10)  # the unit's promise: stopped within 10 s
        assert code == 0
        events = log_events(log_path)
        stopped = next(e for e in events if e["event"] == "agent_stopped")
        assert stopped["outbox_rows"] == 0
        boot, seqs = stopped["boot"], stopped["seqs"]
        await rx.wait_for(lambda: len(unique_batches(rx, boot)) >= seqs, 30)
        assert unique_batches(rx, boot) == list(range(seqs))
        # The clean stop announced itself (after the backlog), so the last status is offline.
        await rx.wait_for(lambda: rx.statuses()[-1][0].state is AgentState.OFFLINE)
    with sqlite3.connect(tmp_path / "state" / "outbox.db") as db:
        assert db.execute("SELECT count(*) FROM outbox").fetchone() == (0,)
    assert (await retained_status(mosquitto, topic_prefix)).state is AgentState.OFFLINE
    # Every observation from the SNMP driver says the (absent) device is down.
    observations = [o for b in rx.batches() for o in b.observations]
    assert observations
    assert all(not o.reachable and o.health.reasons[0].code == "unreachable" for o in observations)


async def test_retained_birth_then_last_will_after_kill_9(
    mosquitto: MosquittoBroker, topic_prefix: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, mosquitto, topic_prefix, devices=2, interval_s=60)
    async with (
        receiving(mosquitto.host, mosquitto.port, topic_prefix) as rx,
        agent_process(tmp_path, config) as (proc, notify, _),
    ):
        await notify.wait_for("READY=1")
        await notify.wait_for("WATCHDOG=1")
        await rx.wait_for(lambda: any(s.state is AgentState.ONLINE for s, _ in rx.statuses()))
        birth = await retained_status(mosquitto, topic_prefix)
        assert birth.state is AgentState.ONLINE
        assert birth.agent_id == "agent-1"
        assert birth.version
        assert birth.boot >= 1
        assert birth.capabilities == ["obs", "driver:snmp"]
        assert birth.devices == ["snmp-0", "snmp-1"]
        assert birth.intervals_s == {"snmp-0": 60.0, "snmp-1": 60.0}
        proc.kill()
        await asyncio.to_thread(proc.wait, 10)
        await rx.wait_for(lambda: rx.statuses()[-1][0].state is AgentState.OFFLINE)
        will = rx.statuses()[-1][0]
        assert will.boot == birth.boot
    assert (await retained_status(mosquitto, topic_prefix)).state is AgentState.OFFLINE


async def test_secrets_appear_neither_in_logs_nor_on_the_wire(
    mosquitto: MosquittoBroker, topic_prefix: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, mosquitto, topic_prefix, devices=2)
    async with (
        receiving(mosquitto.host, mosquitto.port, topic_prefix) as rx,
        agent_process(tmp_path, config, "--log-level", "debug") as (proc, notify, log_path),
    ):
        await notify.wait_for("READY=1")
        await rx.wait_for(lambda: len(rx.batches()) >= 3)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 10) == 0
        await rx.wait_for(lambda: rx.statuses()[-1][0].state is AgentState.OFFLINE)
    log_text = log_path.read_text()
    assert "poll_finished" in log_text  # debug lines were written, so there was something to leak
    for secret in (SECRET_PASSWORD, SECRET_COMMUNITY):
        assert secret not in log_text
        for message in rx.messages:
            assert secret.encode() not in message.payload


@pytest.mark.skipif(
    not (Path(__file__).resolve().parents[2] / "collector" / "host" / "driver.py").exists(),
    reason="needs the host driver",
)
async def test_host_driver_end_to_end(mosquitto: MosquittoBroker, topic_prefix: str, tmp_path: Path) -> None:
    """The real ``host`` driver from the entry points, through the agent, onto the wire."""
    config = write_config(tmp_path, mosquitto, topic_prefix, devices=1, kind="host")
    async with (
        receiving(mosquitto.host, mosquitto.port, topic_prefix) as rx,
        agent_process(tmp_path, config) as (proc, notify, log_path),
    ):
        await notify.wait_for("READY=1")
        await rx.wait_for(lambda: sum(len(b.observations) for b in rx.batches()) >= 3)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 10) == 0
    observations = [o for b in rx.batches() for o in b.observations]
    assert {o.device_id for o in observations} == {"host-0"}
    assert all(o.driver == "host" and o.reachable for o in observations)
    assert all(o.metrics["cpu_count"] >= 1 for o in observations)
    assert [o.observed_at for o in observations] == sorted(o.observed_at for o in observations)
    assert not [e for e in log_events(log_path) if e.get("level") in {"error", "critical"}]


async def test_second_signal_exits_at_once(
    mosquitto: MosquittoBroker, topic_prefix: str, tmp_path: Path
) -> None:
    """With the broker gone the drain would wait drain_s; a second SIGTERM does not wait."""
    config = write_config(tmp_path, mosquitto, topic_prefix, devices=1)
    config.write_text(config.read_text().replace("drain_s = 5", "drain_s = 8"))
    async with agent_process(tmp_path, config, "--log-level", "debug") as (proc, notify, log_path):
        await notify.wait_for("READY=1")
        await asyncio.to_thread(mosquitto.stop)

        def events() -> list[str]:
            return [e["event"] for e in log_events(log_path)]

        async def until_logged(predicate: Any) -> None:
            async with asyncio.timeout(20):
                while not predicate(events()):
                    await asyncio.sleep(0.05)

        # Observations made while the broker is away wait in the outbox…
        await until_logged(
            lambda ev: (
                "broker_unavailable" in ev
                and ev[ev.index("broker_unavailable") :].count("poll_finished") >= 2
            )
        )
        proc.send_signal(signal.SIGTERM)
        await notify.wait_for("STOPPING=1")
        # …so the stop has something to drain, and waits for a broker that does not come back.
        await until_logged(lambda ev: "outbox_draining" in ev)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 5) == 130
    events = [e["event"] for e in log_events(log_path)]
    assert "second_signal_exiting_now" in events
    assert "agent_stopped" not in events
