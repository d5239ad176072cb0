"""No secret in any log: both daemons as real subprocesses at debug level, taken through their
error paths with distinctive secret values, then every log line (stdout and stderr), the agents'
outboxes, every message published and the controllers' databases are searched for each value.

Error paths: the database down at start (nothing listens) and refusing the password at start; the
database stopped during ingest and started again; a broker refusing the password of an agent and
of a controller; SNMPv2c with a wrong community and SNMPv3 with wrong auth/priv keys against a
real snmpd; a driver crashing with secrets in its frame locals. ``SESSION_TOKEN`` is in no
configuration (the crashing driver reads it at poll time), so only a traceback's frame locals
could show it: this is the value that catches tracebacks rendered with their locals.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.mqtt import MosquittoBroker
from tests.fixtures.net import free_port, terminate
from tests.fixtures.postgres import PostgresCluster
from tests.fixtures.snmpd import SnmpdAgent

BIN = Path(sys.executable).parent
MOSQUITTO_SUB = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"

DB_PASSWORD = "S3cr3t-db-7f1c"
DB_WRONG_PASSWORD = "S3cr3t-dbwrong-91aa"
CONTROLLER_MQTT_PASSWORD = "S3cr3t-mqtt-ctl-3e5b"
AGENT_MQTT_PASSWORD = "S3cr3t-mqtt-agent-8c2d"
COMMUNITY = "S3cr3t-community-4a7e"
V3_AUTH_KEY = "S3cr3t-v3auth-6f0b"
V3_PRIV_KEY = "S3cr3t-v3priv-2d9c"
DRIVER_PASSWORD = "S3cr3t-driverpw-5e1a"
SESSION_TOKEN = "S3cr3t-session-0b7f"
SECRETS = (
    DB_PASSWORD,
    DB_WRONG_PASSWORD,
    CONTROLLER_MQTT_PASSWORD,
    AGENT_MQTT_PASSWORD,
    COMMUNITY,
    V3_AUTH_KEY,
    V3_PRIV_KEY,
    DRIVER_PASSWORD,
    SESSION_TOKEN,
)
# What the password-protected broker accepts; configured nowhere, so every login is refused.
BROKER_PASSWORD = "only-the-broker-knows"

# A driver that crashes with secrets in its frame locals and its message, installed for the agent
# subprocess as a real entry point (a .dist-info directory on PYTHONPATH).
CRASHING_DRIVER = """
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, SecretStr


class CrashingOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    api_password: SecretStr
    session_file: str


class CrashingDriver:
    kind: ClassVar[str] = "crashing"
    options_model: ClassVar[type[BaseModel]] = CrashingOptions
    example_options: ClassVar[dict[str, Any]] = {"api_password": "example", "session_file": "/dev/null"}

    def __init__(self, device_id: str, options: CrashingOptions) -> None:
        self.options = options

    async def collect(self) -> Any:
        password = self.options.api_password.get_secret_value()
        session_token = Path(self.options.session_file).read_text().strip()
        login = {"user": "admin", "password": password, "session": session_token}
        url = f"https://admin:{password}@127.0.0.1:9/api"
        raise RuntimeError(f"driver bug: {url} refused {password} ({len(login)} fields)")

    async def aclose(self) -> None:
        pass
"""

pytestmark = pytest.mark.skipif(
    not (BIN / "fernwart-agent").exists() or not Path(MOSQUITTO_SUB).exists(),
    reason="needs the installed daemons and mosquitto_sub",
)


@dataclass
class Daemon:
    """A daemon subprocess, its stdout and stderr in files of their own."""

    name: str
    argv: list[str]
    workdir: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    files: list[Path] = field(default_factory=list)

    def start(self) -> None:
        out, err = self.workdir / f"{self.name}.stdout", self.workdir / f"{self.name}.stderr"
        self.files = [out, err]
        with out.open("wb") as stdout, err.open("wb") as stderr:
            self.proc = subprocess.Popen(
                self.argv, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, env=self.env
            )

    def events(self) -> list[dict[str, Any]]:
        found = []
        for line in self.files[0].read_text(errors="replace").splitlines():
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
        return found

    def output(self) -> str:
        return "".join(path.read_text(errors="replace") for path in self.files)

    def wait_for(self, accept: Callable[[dict[str, Any]], bool], what: str, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(accept(event) for event in self.events()):
            if time.monotonic() > deadline:
                pytest.fail(f"{self.name}: no {what} within {timeout_s} s; output:\n{self.output()[-4000:]}")
            time.sleep(0.1)

    def wait_for_event(self, name: str, timeout_s: float = 30, **fields: Any) -> None:
        self.wait_for(
            lambda e: e.get("event") == name and all(e.get(k) == v for k, v in fields.items()),
            f"{name} {fields or ''}",
            timeout_s,
        )

    def exit_code(self, timeout_s: float = 30) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.name} did not exit within {timeout_s} s:\n{self.output()[-4000:]}")

    def stop(self) -> None:
        terminate(self.proc, signal.SIGTERM, timeout_s=15)


def _install_crashing_driver(root: Path) -> Path:
    plugins = root / "plugins"
    info = plugins / "fw_crashing_driver-0.dist-info"
    info.mkdir(parents=True)
    (plugins / "fw_crashing_driver.py").write_text(CRASHING_DRIVER)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fw-crashing-driver\nVersion: 0\n")
    (info / "entry_points.txt").write_text(
        "[fernwart.collectors]\ncrashing = fw_crashing_driver:CrashingDriver\n"
    )
    return plugins


def _toml(value: Any) -> str:
    return (
        json.dumps(value)
        if isinstance(value, str)
        else str(value).lower()
        if isinstance(value, bool)
        else str(value)
    )


def _write_toml(path: Path, top: dict[str, Any], tables: list[tuple[str, dict[str, Any]]]) -> Path:
    lines = [f"{key} = {_toml(value)}" for key, value in top.items()]
    for name, table in tables:
        lines.append(name)
        lines += [f"{key} = {_toml(value)}" for key, value in table.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def controller_config(path: Path, database_url: str, broker: MosquittoBroker, prefix: str) -> Path:
    return _write_toml(
        path,
        {"log_level": "debug", "stale_check_s": 1},
        [
            ("[database]", {"url": database_url}),
            (
                "[mqtt]",
                {
                    "host": broker.host,
                    "port": broker.port,
                    "username": "controller",
                    "password": CONTROLLER_MQTT_PASSWORD,
                    "client_id": f"fw-ctl-{uuid.uuid4().hex[:8]}",
                    "prefix": prefix,
                    "reconnect_max_s": 0.5,
                },
            ),
            ("[http]", {"port": 0}),
            ("[ingest]", {"decode_workers": 0}),
        ],
    )


def agent_config(path: Path, site: str, broker: MosquittoBroker, prefix: str, devices: list[Any]) -> Path:
    tables: list[tuple[str, dict[str, Any]]] = [
        (
            "[mqtt]",
            {
                "host": broker.host,
                "port": broker.port,
                "prefix": prefix,
                "username": "agent",
                "password": AGENT_MQTT_PASSWORD,
                "connect_timeout_s": 2,
                "keepalive_s": 5,
            },
        ),
        ("[mqtt.backoff]", {"min_s": 0.1, "max_s": 0.5}),
        ("[outbox]", {"path": str(path.parent / f"{site}-state" / "outbox.db"), "linger_ms": 50}),
        ("[poll]", {"timeout_s": 3, "jitter_fraction": 0}),
    ]
    for device_id, kind, options in devices:
        tables += [
            ("[[devices]]", {"id": device_id, "kind": kind, "interval_s": 0.5}),
            ("[devices.options]", options),
        ]
    return _write_toml(path, {"site_id": site, "agent_id": f"{site}-agent", "log_level": "debug"}, tables)


@pytest.fixture
def password_postgres() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster(DB_PASSWORD)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def strict_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    workdir = tmp_path / "strict-broker"
    workdir.mkdir()
    broker = MosquittoBroker(workdir, users={"agent": BROKER_PASSWORD, "controller": BROKER_PASSWORD})
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def _files_under(path: Path) -> Iterator[Path]:
    yield from (p for p in sorted(path.rglob("*")) if p.is_file())


def test_no_secret_reaches_logs_outbox_wire_or_database(
    tmp_path: Path,
    password_postgres: PostgresCluster,
    mosquitto: MosquittoBroker,
    strict_broker: MosquittoBroker,
    snmpd: SnmpdAgent,
    topic_prefix: str,
) -> None:
    pg = password_postgres
    env = {**os.environ, "PYTHONPATH": str(_install_crashing_driver(tmp_path))}
    session_file = tmp_path / "session-token"
    session_file.write_text(SESSION_TOKEN + "\n")
    crashing = ("crash-1", "crashing", {"api_password": DRIVER_PASSWORD, "session_file": str(session_file)})
    snmp = {"host": snmpd.host, "port": snmpd.port, "timeout_s": 0.3, "retries": 0}
    v2c = ("snmp-v2c", "snmp", {**snmp, "community": COMMUNITY})
    v3 = ("snmp-v3", "snmp", {**snmp, "user": "fw-priv", "auth_key": V3_AUTH_KEY, "priv_key": V3_PRIV_KEY})

    def controller(name: str, database_url: str, broker: MosquittoBroker) -> Daemon:
        config = controller_config(tmp_path / f"{name}.toml", database_url, broker, topic_prefix)
        return Daemon(name, [str(BIN / "fernwart-controller"), "--config", str(config)], tmp_path, env)

    def agent(name: str, broker: MosquittoBroker, devices: list[Any]) -> Daemon:
        config = agent_config(tmp_path / f"{name}.toml", name, broker, topic_prefix, devices)
        return Daemon(name, [str(BIN / "fernwart-agent"), "--config", str(config)], tmp_path, env)

    nothing_listens = f"postgresql+asyncpg://postgres:{DB_PASSWORD}@127.0.0.1:{free_port()}/postgres"
    ctl_db_down = controller("ctl-db-down", nothing_listens, mosquitto)
    ctl_db_refused = controller("ctl-db-refused", pg.url(DB_WRONG_PASSWORD), mosquitto)
    ctl_main = controller("ctl-main", pg.url(DB_PASSWORD), mosquitto)
    sqlite_dir = tmp_path / "ctl-mqtt-refused-db"
    ctl_mqtt_refused = controller(
        "ctl-mqtt-refused", f"sqlite+aiosqlite:///{sqlite_dir}/fw.db", strict_broker
    )
    agent_main = agent("site-main", mosquitto, [v2c, v3, crashing])
    agent_refused = agent("site-refused", strict_broker, [crashing])
    daemons = [ctl_db_down, ctl_db_refused, ctl_main, ctl_mqtt_refused, agent_main, agent_refused]

    wire_file = tmp_path / "published.txt"
    with wire_file.open("wb") as wire_out:
        subscriber = subprocess.Popen(
            [MOSQUITTO_SUB, "-h", mosquitto.host, "-p", str(mosquitto.port), "-t", "#", "-v", "-q", "1"],
            stdout=wire_out,
            stderr=subprocess.STDOUT,
        )
    # The daemon never creates its database: an operator runs `fernwart controller init` first.
    for name in ("ctl-main", "ctl-mqtt-refused"):
        subprocess.run(
            [str(BIN / "fernwart"), "controller", "init", "--config", str(tmp_path / f"{name}.toml")],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
            env=env,
        )
    # Sites exist only once enrolled: the main agent's, as an operator would, with the CLI. The
    # broker password it prints is one more secret that must appear nowhere.
    enrolled = subprocess.run(
        [
            str(BIN / "fernwart"),
            "controller",
            "enroll",
            "--site",
            "site-main",
            "--agent",
            "site-main-agent",
            "--config",
            str(tmp_path / "ctl-main.toml"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env=env,
    )
    broker_password = enrolled.stdout.strip().splitlines()[-1]
    assert len(broker_password) >= 16
    try:
        for daemon in daemons:
            daemon.start()

        # The database at start: nothing listening, then a wrong password. Both are failed starts.
        for daemon, error in (
            (ctl_db_down, "ConnectionRefusedError"),
            (ctl_db_refused, "InvalidPasswordError"),
        ):
            assert daemon.exit_code() == 1, daemon.output()[-4000:]
            failed = [e for e in daemon.events() if e.get("event") == "controller_failed"]
            assert failed, daemon.output()[-4000:]
            assert error in json.dumps(failed)

        # The broker refuses both daemons' passwords.
        ctl_mqtt_refused.wait_for_event("mqtt_disconnected")
        agent_refused.wait_for(
            lambda e: e.get("event") in {"broker_unavailable", "broker_connect_failed"},
            "a refused broker login",
        )
        # SNMP: v2c with a wrong community gets no answer; v3 with wrong keys is refused; the
        # crashing driver's traceback is logged.
        agent_main.wait_for_event("device_unreachable", device="snmp-v2c")
        agent_main.wait_for_event("device_failed", device="snmp-v3", reason="auth_failed")
        agent_main.wait_for(
            lambda e: e.get("device") == "crash-1" and e.get("reason") == "driver_error" and "exception" in e,
            "the crashing driver's traceback",
        )
        agent_refused.wait_for(
            lambda e: e.get("device") == "crash-1" and "exception" in e, "a driver traceback"
        )

        # The database stops during ingest, and comes back.
        ctl_main.wait_for_event("controller_ready")
        stored = _wait_for_rows(pg, 1)
        pg.stop()
        ctl_main.wait_for(lambda e: e.get("event") == "flush_failed" and "exception" in e, "flush_failed")
        pg.start()
        _wait_for_rows(pg, stored + 1)

        for daemon in (agent_main, agent_refused, ctl_main, ctl_mqtt_refused):
            assert daemon.proc is not None
            assert daemon.proc.poll() is None, f"{daemon.name} exited early:\n{daemon.output()[-4000:]}"
            daemon.stop()
    finally:
        for daemon in daemons:
            daemon.stop()
        terminate(subscriber)

    published = wire_file.read_bytes()
    assert b"crash-1" in published  # the subscriber saw the agent's observations
    sources: dict[str, bytes] = {str(path): path.read_bytes() for d in daemons for path in d.files}
    sources |= {
        str(path): path.read_bytes() for path in _files_under(tmp_path) if "-state" in path.parent.name
    }
    sources |= {str(path): path.read_bytes() for path in _files_under(sqlite_dir)}
    sources["published messages"] = published
    sources["controller database (pg_dump)"] = pg.dump().encode()
    assert any("outbox.db" in name for name in sources)
    assert b"crash-1" in sources["controller database (pg_dump)"]

    leaks = [
        f"{secret} in {name}: …{_context(data, secret)}…"
        for name, data in sources.items()
        for secret in (*SECRETS, broker_password)
        if secret.encode() in data
    ]
    assert not leaks, "\n".join(leaks)


def _wait_for_rows(pg: PostgresCluster, at_least: int, timeout_s: float = 30) -> int:
    """Observations stored by the controller, once there are ``at_least``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            count = int(pg.psql("SELECT count(*) FROM observations").strip() or 0)
        except subprocess.CalledProcessError:  # the schema is not there yet
            count = 0
        if count >= at_least:
            return count
        if time.monotonic() > deadline:
            pytest.fail(f"the controller stored {count} observations, expected at least {at_least}")
        time.sleep(0.2)


def _context(data: bytes, secret: str) -> str:
    at = data.find(secret.encode())
    return data[max(0, at - 150) : at + len(secret) + 50].decode(errors="replace")
