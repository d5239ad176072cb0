"""Agent identity on a real Mosquitto configured by ``fernwart controller broker-config``.

Two sites are enrolled through the CLI (each agent gets its broker password once), the broker runs
the generated password file, ACL and mosquitto.conf (only the listener is swapped for a plain
loopback port, and the state directory for the test's), and the real controller and a real agent
connect with their own credentials. Then, as the attacker tests did: an agent cannot publish
under another site, cannot publish another agent's status (not even as its last will), cannot
read another site's commands; unknown, anonymous, revoked and wrong-password clients are refused
at CONNECT; and the real agent keeps flowing into the controller's database.

"Never arrives" is checked without waiting for a timeout: after the refused messages, the same
client publishes one it may publish; the spy (controller credentials, reading everything) gets
that one, and a broker delivers one client's messages in order, so nothing refused came before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import io
import socket
import struct
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest
import sqlalchemy as sa
import structlog

from agent.service import AgentService
from collector.wire import AgentState, encode
from collector.wire.topics import TopicKind, topic
from controller import service
from controller.settings import ControllerSettings, load_settings, settings_from_dict
from controller.storage import Store
from controller.storage import models as m
from fernwart_cli.main import main as fernwart
from tests.agent.drivers import DriverPool
from tests.agent.test_service import agent_settings
from tests.controller.conftest import (
    make_batch,
    make_observation,
    make_status,
    wait_for_connection,
    wait_until,
)
from tests.fixtures.mqtt import MOSQUITTO, MosquittoBroker
from tests.fixtures.net import free_port, terminate, wait_for_tcp

CONTROLLER_USER = "fernwart-controller"
CONTROLLER_PASSWORD = "ctl-pw-7Hq-test-only"
# The generated mosquitto.conf, minus what the test replaces: the TLS listener and the state directory.
_REPLACED = ("listener", "protocol", "cafile", "certfile", "keyfile", "tls_version", "persistence_location")


@dataclass
class Deployment:
    config: Path
    prefix: str
    broker: MosquittoBroker
    passwords: dict[str, str]  # agent id → broker password, as `enroll` printed it

    def topic(self, site: str, kind: TopicKind) -> str:
        return topic(site, kind, self.prefix)

    def client(self, username: str | None, password: str | None = None) -> aiomqtt.Client:
        if username is not None and password is None:
            password = CONTROLLER_PASSWORD if username == CONTROLLER_USER else self.passwords[username]
        return aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            username=username,
            password=password,
            identifier=f"t-{uuid.uuid4().hex[:8]}",
            timeout=10,
        )


def _cli(*args: str) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        code = fernwart(list(args))
    assert code == 0, f"fernwart {' '.join(args)} exited {code}"
    return out.getvalue()


def _enroll(config: Path, site: str, agent: str) -> str:
    output = _cli("controller", "enroll", "--site", site, "--agent", agent, "--config", str(config))
    return output.splitlines()[-1]  # the password, last line


def _test_conf(generated: str, workdir: Path, port: int) -> str:
    kept = [line for line in generated.splitlines() if line.split(" ", 1)[0] not in _REPLACED]
    return "\n".join(
        [
            *kept,
            f"persistence_location {workdir}/",
            f"user {getpass.getuser()}",  # as the mosquitto fixture: root would drop to `mosquitto`
            "log_dest none",
            f"listener {port} 127.0.0.1",
            "",
        ]
    )


@pytest.fixture
def deployment(tmp_path: Path, topic_prefix: str) -> Iterator[Deployment]:
    workdir = tmp_path / "broker"
    broker = MosquittoBroker(workdir)
    config = tmp_path / "controller.toml"
    config.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path / "fernwart.db"}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nprefix = "{topic_prefix}"\n'
        f'username = "{CONTROLLER_USER}"\npassword = "{CONTROLLER_PASSWORD}"\n'
        f'client_id = "ctl-{uuid.uuid4().hex[:8]}"\nreconnect_max_s = 1.0\n'
        f'[http]\nhost = "127.0.0.1"\nport = {free_port()}\n'
        "[ingest]\nflush_interval_ms = 5\n"
    )
    _cli("controller", "init", "--config", str(config))  # the daemon never creates its database
    passwords = {
        agent: _enroll(config, site, agent) for site, agent in (("site-a", "agent-a"), ("site-b", "agent-b"))
    }
    passwords["agent-gone"] = _enroll(config, "site-gone", "agent-gone")
    _cli("controller", "unenroll", "--site", "site-gone", "--config", str(config))
    _cli(
        "controller", "broker-config", "--format", "mosquitto", "--out", str(workdir), "--config", str(config)
    )
    assert (workdir / "passwd").stat().st_mode & 0o777 == 0o600
    conf = workdir / "test.conf"
    conf.write_text(_test_conf((workdir / "mosquitto.conf").read_text(), workdir, broker.port))
    broker.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL)
    try:
        wait_for_tcp(broker.host, broker.port)
        yield Deployment(config, topic_prefix, broker, passwords)
    finally:
        terminate(broker.proc)


class Spy:
    """A subscriber with the controller's credentials: sees whatever the broker delivers."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.received: list[tuple[str, bytes]] = []

    async def until(self, topic_name: str, payload: bytes) -> list[tuple[str, bytes]]:
        """Every message received up to (not including) ``payload`` on ``topic_name``."""
        async with asyncio.timeout(30):
            async for message in self.client.messages:
                item = (str(message.topic), bytes(message.payload))  # type: ignore[arg-type]
                if item == (topic_name, payload):
                    before, self.received = self.received, []
                    return before
                self.received.append(item)
        raise AssertionError("the subscription ended")


@contextlib.asynccontextmanager
async def spying(d: Deployment) -> AsyncIterator[Spy]:
    async with d.client(CONTROLLER_USER) as client:
        await client.subscribe(f"{d.prefix}/#", qos=1)
        yield Spy(client)


async def test_an_agent_cannot_publish_under_another_site_or_as_another_agent(deployment: Deployment) -> None:
    d = deployment
    forged_batch = encode(
        make_batch("site-b", "agent-b", 999_777, [make_observation("dev-1", firmware="6.6.6")])
    )
    forged_offline = encode(make_status("site-b", "agent-b", state=AgentState.OFFLINE))
    async with spying(d) as spy, d.client("agent-a") as agent_a:
        await agent_a.publish(d.topic("site-b", TopicKind.OBS), forged_batch, qos=1)
        await agent_a.publish(d.topic("site-b", TopicKind.STATUS), forged_offline, qos=1, retain=True)
        await agent_a.publish(d.topic("site-b", TopicKind.CMD_RESULT), b"{}", qos=1)
        await agent_a.publish(d.topic("site-b", TopicKind.CMD), b"{}", qos=1)  # commands are the controller's
        await agent_a.publish(d.topic("site-a", TopicKind.CMD), b"{}", qos=1)  # … its own site's too
        await agent_a.publish(f"{d.prefix}/site-b/obs/extra", b"{}", qos=1)
        marker = encode(make_status("site-a", "agent-a"))
        await agent_a.publish(d.topic("site-a", TopicKind.STATUS), marker, qos=1)
        assert await spy.until(d.topic("site-a", TopicKind.STATUS), marker) == []
    # Nothing retained on site-b's status topic either: a new subscriber gets only agent-b's own.
    async with spying(d) as spy, d.client("agent-b") as agent_b:
        own = encode(make_status("site-b", "agent-b"))
        await agent_b.publish(d.topic("site-b", TopicKind.STATUS), own, qos=1)
        assert await spy.until(d.topic("site-b", TopicKind.STATUS), own) == []


def _connect_packet(client_id: str, username: str, password: str, will_topic: str, will: bytes) -> bytes:
    """An MQTT 3.1.1 CONNECT with a retained QoS 1 last will (written out: the test drops the TCP
    connection without DISCONNECT afterwards, which is what makes the broker send the will)."""

    def text(value: str | bytes) -> bytes:
        data = value.encode() if isinstance(value, str) else value
        return struct.pack("!H", len(data)) + data

    flags = 0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02  # user, password, will retain, will QoS 1, will, clean
    body = text("MQTT") + bytes([4, flags]) + struct.pack("!H", 30)
    body += text(client_id) + text(will_topic) + text(will) + text(username) + text(password)
    length = b""
    size = len(body)
    while True:
        size, digit = divmod(size, 128)
        length += bytes([digit | (0x80 if size else 0)])
        if not size:
            break
    return b"\x10" + length + body


def _connect_and_drop(d: Deployment, username: str, will_topic: str, will: bytes) -> int:
    """CONNECT with a will, then drop the connection; the CONNACK return code."""
    with socket.create_connection((d.broker.host, d.broker.port), timeout=10) as sock:
        packet = _connect_packet(
            f"w-{uuid.uuid4().hex[:8]}", username, d.passwords[username], will_topic, will
        )
        sock.sendall(packet)
        connack = sock.recv(4)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, no DISCONNECT
    return connack[3]


async def test_a_last_will_cannot_mark_another_agent_offline(deployment: Deployment) -> None:
    d = deployment
    async with spying(d) as spy:
        forged = encode(make_status("site-b", "agent-b", state=AgentState.OFFLINE))
        await asyncio.to_thread(_connect_and_drop, d, "agent-a", d.topic("site-b", TopicKind.STATUS), forged)
        own = encode(make_status("site-a", "agent-a", state=AgentState.OFFLINE))
        code = await asyncio.to_thread(
            _connect_and_drop, d, "agent-a", d.topic("site-a", TopicKind.STATUS), own
        )
        assert code == 0
        assert await spy.until(d.topic("site-a", TopicKind.STATUS), own) == []


async def test_an_agent_cannot_read_another_sites_commands(deployment: Deployment) -> None:
    d = deployment
    async with d.client("agent-a") as agent_a, d.client(CONTROLLER_USER) as controller:
        for name in (d.topic("site-b", TopicKind.CMD), f"{d.prefix}/+/cmd", f"{d.prefix}/#", "#"):
            with contextlib.suppress(aiomqtt.MqttError):  # a refused SUBACK is as good as a silent one
                await agent_a.subscribe(name, qos=1)
        await agent_a.subscribe(d.topic("site-a", TopicKind.CMD), qos=1)
        await controller.publish(d.topic("site-b", TopicKind.CMD), b"for agent-b only", qos=1)
        own = b"for agent-a"
        await controller.publish(d.topic("site-a", TopicKind.CMD), own, qos=1)
        async with asyncio.timeout(30):
            first = await anext(agent_a.messages)
        assert (str(first.topic), first.payload) == (d.topic("site-a", TopicKind.CMD), own)


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("intruder", "whatever"),  # never enrolled
        ("agent-gone", None),  # its enrollment was revoked before broker-config ran
        ("agent-a", "not-the-password"),
        (None, None),  # anonymous
    ],
)
async def test_unknown_revoked_anonymous_and_wrong_password_clients_are_refused(
    deployment: Deployment, username: str | None, password: str | None
) -> None:
    with pytest.raises(aiomqtt.MqttError, match=r"[Nn]ot authori[sz]ed|[Bb]ad user name or password"):
        async with deployment.client(username, password):
            pass


async def test_the_real_agent_flows_into_the_controller(deployment: Deployment, tmp_path: Path) -> None:
    d = deployment
    settings = load_settings(d.config)
    stop = asyncio.Event()
    with structlog.testing.capture_logs() as logs:
        controller = asyncio.create_task(service.run(settings, stop, handle_signals=False))
        await _flows(d, settings, controller, stop, tmp_path)
    # Both send a password over plain MQTT here (the test's loopback listener): both warn, once,
    # and no log line carries a password.
    warned = [entry for entry in logs if entry["event"] == "mqtt_password_without_tls"]
    assert len(warned) == 2
    text = repr(logs)
    assert CONTROLLER_PASSWORD not in text
    assert d.passwords["agent-a"] not in text


def test_no_warning_with_tls(tmp_path: Path) -> None:
    settings = settings_from_dict({"mqtt": {"username": "u", "password": "p", "tls": {}}})
    with structlog.testing.capture_logs() as logs:
        service.warn_plain_password(settings)
    assert logs == []


async def _flows(
    d: Deployment,
    settings: ControllerSettings,
    controller: asyncio.Task[None],
    stop: asyncio.Event,
    tmp_path: Path,
) -> None:
    try:
        await wait_for_connection(settings, controller)
        agent = agent_settings(
            d.broker, d.prefix, tmp_path, devices=2, site_id="site-a", agent_id="agent-a",
            mqtt={"username": "agent-a", "password": d.passwords["agent-a"]},
        )  # fmt: skip
        agent_stop = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(AgentService(agent, driver_factory=DriverPool()).run(agent_stop))
            async with Store.open(settings.database.url.get_secret_value()) as store:

                async def stored() -> bool:
                    batches = await store.count(m.BATCHES, m.BATCHES.c.site_id == "site-a")
                    agents = await store.list_agents()
                    return batches >= 3 and [(a["agent_id"], a["state"]) for a in agents] == [
                        ("agent-a", "online")
                    ]

                await wait_until(stored, what="the agent's batches and birth stored")
                agent_stop.set()
        async with Store.open(settings.database.url.get_secret_value()) as store:

            async def offline() -> bool:
                return [a["state"] for a in await store.list_agents()] == ["offline"]

            await wait_until(offline, what="the agent's own offline status stored")
            assert await store.dead_letter_counts() == {}
            assert await store.count(m.DEVICES, m.DEVICES.c.site_id != "site-a") == 0
            assert await store.count(m.SITES, sa.true()) == 3  # site-a, site-b, site-gone (revoked)
    finally:
        stop.set()
        async with asyncio.timeout(30):
            await controller
