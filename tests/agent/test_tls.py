"""TLS to the broker: a real Mosquitto with a TLS listener (certificates made with openssl for
this test), once requiring a client certificate, once username/password over TLS."""

from __future__ import annotations

import asyncio
import getpass
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from agent.service import AgentService
from agent.settings import AgentSettings
from collector.wire import AgentState, AgentStatus, decode
from tests.agent.drivers import DriverPool
from tests.fixtures.mqtt import MOSQUITTO
from tests.fixtures.net import free_port, wait_for_tcp

OPENSSL = shutil.which("openssl")
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")
pytestmark = pytest.mark.skipif(
    OPENSSL is None or MOSQUITTO_PASSWD is None, reason="needs openssl and mosquitto_passwd"
)
PREFIX = "fwtls/v1"


def openssl(*args: str, cwd: Path) -> None:
    assert OPENSSL is not None
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(directory: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA."""
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=fernwart test CA",
        cwd=directory,
    )
    for name, extra in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")):
        openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN=agent-{name}",
            cwd=directory,
        )
        (directory / f"{name}.ext").write_text(extra + "\n")
        openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.pem",
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
            cwd=directory,
        )
    # A second CA that signed nothing of ours: trusting it must fail the handshake.
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "other.key",
        "-out",
        "other.pem",
        "-days",
        "2",
        "-subj",
        "/CN=some other CA",
        cwd=directory,
    )


@dataclass
class TlsBroker:
    plain_port: int
    cert_port: int
    password_port: int
    pki: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    make_pki(directory)
    return directory


@pytest.fixture
def tls_broker(tmp_path: Path, pki: Path) -> Iterator[TlsBroker]:
    passwords = tmp_path / "passwd"
    passwords.touch()
    assert MOSQUITTO_PASSWD is not None
    subprocess.run([MOSQUITTO_PASSWD, "-b", str(passwords), "agent-1", "tls-pw-123"], check=True, timeout=30)
    broker = TlsBroker(free_port(), free_port(), free_port(), pki)
    tls = f"cafile {pki}/ca.pem\ncertfile {pki}/server.pem\nkeyfile {pki}/server.key\n"
    conf = tmp_path / "mosquitto-tls.conf"
    conf.write_text(
        # Started as root, mosquitto would switch to the `mosquitto` user and lose access to tmp_path.
        f"per_listener_settings true\nlog_dest none\nuser {getpass.getuser()}\n"
        f"listener {broker.plain_port} 127.0.0.1\nallow_anonymous true\n"
        f"listener {broker.cert_port} 127.0.0.1\n{tls}"
        "require_certificate true\nuse_identity_as_username true\n"
        f"listener {broker.password_port} 127.0.0.1\n{tls}allow_anonymous false\npassword_file {passwords}\n"
    )
    proc = subprocess.Popen(
        [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for port in (broker.plain_port, broker.cert_port, broker.password_port):
            wait_for_tcp("127.0.0.1", port)
        yield broker
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def tls_settings(tmp_path: Path, port: int, mqtt_extra: dict[str, Any]) -> AgentSettings:
    return AgentSettings.model_validate(
        {
            "site_id": "site-tls",
            "agent_id": "agent-1",
            "mqtt": {
                "host": "127.0.0.1",
                "port": port,
                "prefix": PREFIX,
                "backoff": {"min_s": 0.1, "max_s": 0.5},
                **mqtt_extra,
            },
            "outbox": {"path": str(tmp_path / "outbox.db"), "linger_ms": 20},
            "shutdown": {"drain_s": 1},
            "devices": [{"id": "dev-0", "kind": "counting", "interval_s": 0.2}],
        }
    )


async def retained_status(port: int) -> AgentStatus:
    topic = f"{PREFIX}/site-tls/status"
    async with aiomqtt.Client("127.0.0.1", port, timeout=5) as client:
        await client.subscribe(topic, qos=1)
        async with asyncio.timeout(10):
            message = await anext(aiter(client.messages))
    assert isinstance(message.payload, bytes)
    _, status = decode(topic, message.payload, prefix=PREFIX)
    assert isinstance(status, AgentStatus)
    return status


async def run_until_connected(settings: AgentSettings) -> AgentService:
    service = AgentService(settings, driver_factory=DriverPool())
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(service.run(stop))
        async with asyncio.timeout(20):
            while service.metrics.value("fernwart_published_total") < 2:
                await asyncio.sleep(0.05)
        stop.set()
    return service


async def test_client_certificate(tls_broker: TlsBroker, tmp_path: Path) -> None:
    pki = tls_broker.pki
    settings = tls_settings(
        tmp_path,
        tls_broker.cert_port,
        {
            "tls": {
                "ca_file": str(pki / "ca.pem"),
                "cert_file": str(pki / "client.pem"),
                "key_file": str(pki / "client.key"),
            }
        },
    )
    service = await run_until_connected(settings)
    assert service.outbox is not None
    # Published over the client-certificate connection; with no controller to confirm them the
    # rows stay in the outbox (they are deleted only on the controller's BatchAck).
    assert service.metrics.value("fernwart_published_total") >= 2
    assert service.outbox.rows >= 2
    status = await retained_status(tls_broker.plain_port)
    assert status.state is AgentState.OFFLINE  # the clean goodbye went over TLS too


async def test_username_password_over_tls(tls_broker: TlsBroker, tmp_path: Path) -> None:
    settings = tls_settings(
        tmp_path,
        tls_broker.password_port,
        {"username": "agent-1", "password": "tls-pw-123", "tls": {"ca_file": str(tls_broker.pki / "ca.pem")}},
    )
    await run_until_connected(settings)


async def test_untrusted_server_is_refused(tls_broker: TlsBroker, tmp_path: Path) -> None:
    pki = tls_broker.pki
    settings = tls_settings(
        tmp_path,
        tls_broker.cert_port,
        {
            "tls": {
                "ca_file": str(pki / "other.pem"),
                "cert_file": str(pki / "client.pem"),
                "key_file": str(pki / "client.key"),
            }
        },
    )
    service = AgentService(settings, driver_factory=DriverPool())
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(service.run(stop))
        async with asyncio.timeout(20):
            while service.outbox is None or service.outbox.rows < 3:
                await asyncio.sleep(0.05)
        stop.set()
    # Never connected: observations stayed in the outbox, nothing was acknowledged.
    assert service.metrics.value("fernwart_mqtt_connects_total") == 0
    assert service.metrics.value("fernwart_published_total") == 0
    assert service.outbox is not None
    assert service.outbox.rows >= 3
