"""Nothing is lost when the broker loses it: the agent keeps a batch until the controller
confirmed its commit (BatchAck), and sends again what stays unconfirmed.

* Mosquitto **without persistence** (its default), SIGKILLed mid-stream and restarted empty,
  with the controller restarted too: every batch the agent made is stored exactly once.
* The demo's amqtt broker paused (SIGSTOP) for 45 s: the same.
* An agent stopped with SIGSTOP is shown ``offline`` by ``/api/v1/agents`` (its heartbeats are
  overdue), and ``online`` again after SIGCONT, with either broker.

Each test prints sent / stored / lost. Real processes throughout: ``fernwart-controller`` and
``fernwart-agent`` as the units start them, snmpsim serving the lab recordings.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from fernwart_cli.main import main as fernwart
from lab.devices import lab_devices
from lab.snmpsim import SnmpSim, start_snmpsim
from tests.fixtures.net import free_port, wait_for_tcp

pytestmark = pytest.mark.slow
SITE = "noloss-site"
AGENT = "noloss-agent"
BIN = Path(sys.executable).parent
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


@pytest.fixture
def snmpsim() -> Iterator[SnmpSim]:
    sim = start_snmpsim(None)
    try:
        yield sim
    finally:
        sim.stop()


@dataclass
class Broker:
    """Mosquitto with its defaults (no persistence) or the demo's amqtt, in a subprocess."""

    kind: str
    workdir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.kind == "mosquitto":
            conf = self.workdir / "mosquitto.conf"
            # Production's listener and Mosquitto's defaults otherwise: persistence false,
            # max_queued_messages 1000. Running as root, mosquitto would switch to its own user.
            conf.write_text(
                f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                f"user {getpass.getuser()}\nlog_dest none\n"
            )
            argv = [MOSQUITTO, "-c", str(conf)]
        else:
            argv = [sys.executable, "-m", "lab.broker", "--port", str(self.port)]
        log = (self.workdir / f"{self.kind}.log").open("ab")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        wait_for_tcp("127.0.0.1", self.port, 30)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


@dataclass
class World:
    broker: Broker
    tmp: Path
    http_port: int
    controller_cfg: Path
    agent_cfg: Path
    db: Path
    token: str
    controller: subprocess.Popen[bytes] | None = None
    agent: subprocess.Popen[bytes] | None = None

    def start_controller(self) -> None:
        log = (self.tmp / "controller.log").open("ab")
        self.controller = subprocess.Popen(
            [str(BIN / "fernwart-controller"), "--config", str(self.controller_cfg)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for_tcp("127.0.0.1", self.http_port, 30)

    def stop_controller(self) -> None:
        assert self.controller is not None
        self.controller.send_signal(signal.SIGTERM)
        assert self.controller.wait(30) == 0
        self.controller = None

    def start_agent(self) -> None:
        log = (self.tmp / "agent.log").open("ab")
        self.agent = subprocess.Popen(
            [str(BIN / "fernwart-agent"), "--config", str(self.agent_cfg)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def stop_agent(self) -> dict[str, object]:
        """SIGTERM (the agent drains, then stops); its ``agent_stopped`` event."""
        assert self.agent is not None
        self.agent.send_signal(signal.SIGTERM)
        assert self.agent.wait(30) == 0
        self.agent = None
        lines = (self.tmp / "agent.log").read_text().splitlines()
        events = [json.loads(line) for line in lines if line[:1] == "{"]
        return next(e for e in reversed(events) if e.get("event") == "agent_stopped")

    def batches(self, where: str = "") -> int:
        with sqlite3.connect(self.db, timeout=10) as conn:
            return int(conn.execute(f"select count(*) from batches {where}").fetchone()[0])

    def agents(self) -> list[dict[str, object]]:
        url = f"http://127.0.0.1:{self.http_port}/api/v1/agents"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            items: list[dict[str, object]] = json.load(response)["items"]
            return items


def _wait(predicate: object, timeout_s: float, what: str) -> float:
    """Seconds until ``predicate()`` held; fails the test after ``timeout_s``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            if predicate():  # type: ignore[operator]
                return time.monotonic() - started
        except OSError:
            pass  # the controller is restarting
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}")


@pytest.fixture
def world(
    request: pytest.FixtureRequest, tmp_path: Path, snmpsim: SnmpSim, capsys: pytest.CaptureFixture[str]
) -> Iterator[World]:
    kind = request.param
    broker = Broker(kind, tmp_path, free_port())
    broker.start()
    http_port = free_port()
    db = tmp_path / "controller.db"
    v5 = kind == "mosquitto"
    controller_cfg = tmp_path / "controller.toml"
    controller_cfg.write_text(
        f'stale_check_s = 0.5\n[database]\nurl = "sqlite+aiosqlite:///{db}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nclient_id = "noloss-controller"\n'
        f'protocol = "{"5" if v5 else "3.1.1"}"\nreconnect_max_s = 1.0\n'
        f'[http]\nhost = "127.0.0.1"\nport = {http_port}\n'
    )
    lines = [
        f'site_id = "{SITE}"',
        f'agent_id = "{AGENT}"',
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}',
        "confirm_timeout_s = 3.0\nheartbeat_s = 2.0\nkeepalive_s = 60",
        "[mqtt.backoff]\nmin_s = 0.2\nmax_s = 1.0",
        f'[outbox]\npath = "{tmp_path / "outbox.db"}"\nlinger_ms = 100.0\nmax_batch = 10',
        "[poll]\ndefault_interval_s = 0.5\ntimeout_s = 3.0\njitter_fraction = 0.0",
        "[shutdown]\ndrain_s = 8.0",
    ]
    for device in lab_devices()[:4]:
        lines.append(
            f'[[devices]]\nid = "{device.id}"\nkind = "snmp"\n'
            f'[devices.options]\nhost = "127.0.0.1"\nport = {snmpsim.port}\ncommunity = "{device.community}"'
        )
    agent_cfg = tmp_path / "agent.toml"
    agent_cfg.write_text("\n".join(lines) + "\n")
    config = ["--config", str(controller_cfg)]
    assert fernwart(["controller", "init", *config]) == 0  # as an operator sets up a controller
    assert fernwart(["controller", "enroll", "--site", SITE, "--agent", AGENT, *config]) == 0
    assert fernwart(["controller", "token", "create", "--name", "t", "--role", "noc-viewer", *config]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    world = World(broker, tmp_path, http_port, controller_cfg, agent_cfg, db, token)
    try:
        yield world
    finally:
        for proc in (world.agent, world.controller):
            if proc is not None and proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
                proc.wait(10)
        broker.stop()


def _account(world: World, stopped: dict[str, object]) -> None:
    """Every batch the agent made in this boot is stored exactly once; print the accounting."""
    boot, made = stopped["boot"], stopped["seqs"]
    assert isinstance(made, int)
    _wait(lambda: world.batches(f"where boot = {boot}") >= made, 60, f"all {made} batches stored")
    with sqlite3.connect(world.db, timeout=10) as conn:
        seqs = [row[0] for row in conn.execute(f"select seq from batches where boot = {boot} order by seq")]
        dupes = conn.execute(
            "select device_id, observed_at, count(*) from observations group by device_id, observed_at"
            " having count(*) > 1"
        ).fetchall()
    stored = len(seqs)
    lost = len(set(range(made)) - set(seqs))
    print(
        f"\n{world.broker.kind}: sent {made} batches, stored {stored}, lost {lost}, "
        f"left in the outbox {stopped['outbox_rows']}"
    )
    assert seqs == list(range(made)), "every batch exactly once"
    assert dupes == []
    assert stopped["outbox_rows"] == 0  # everything confirmed before the agent stopped


@pytest.mark.parametrize("world", ["mosquitto"], indirect=True)
def test_broker_killed_and_restarted_empty_with_the_controller_loses_nothing(world: World) -> None:
    world.start_controller()
    world.start_agent()
    _wait(lambda: world.batches() >= 5, 60, "first batches stored")
    world.broker.kill()  # mid-stream: whatever it held and had not delivered is gone
    world.stop_controller()
    time.sleep(3)  # the agent keeps polling into its outbox
    world.broker.start()  # empty: no persistence
    world.start_controller()
    time.sleep(5)  # batches flow again, the unconfirmed ones are sent again
    _account(world, world.stop_agent())


@pytest.mark.parametrize("world", ["amqtt"], indirect=True)
def test_broker_paused_for_45s_loses_nothing(world: World) -> None:
    world.start_controller()
    world.start_agent()
    _wait(lambda: world.batches() >= 5, 60, "first batches stored")
    assert world.broker.proc is not None
    os.kill(world.broker.proc.pid, signal.SIGSTOP)
    time.sleep(45)
    os.kill(world.broker.proc.pid, signal.SIGCONT)
    time.sleep(5)
    _account(world, world.stop_agent())


@pytest.mark.parametrize("world", ["mosquitto", "amqtt"], indirect=True)
def test_a_stopped_agent_goes_offline_and_comes_back(world: World) -> None:
    world.start_controller()
    world.start_agent()

    def state() -> object:
        found = [a for a in world.agents() if a["agent_id"] == AGENT]
        return found[0]["state"] if found else None

    _wait(lambda: state() == "online" and world.agents()[0]["heartbeat_at"], 60, "the agent heartbeating")
    assert world.agent is not None
    os.kill(world.agent.pid, signal.SIGSTOP)
    took = _wait(lambda: state() == "offline", 30, "the stopped agent shown offline")
    agent = next(a for a in world.agents() if a["agent_id"] == AGENT)
    print(f"\n{world.broker.kind}: offline {took:.1f} s after SIGSTOP (heartbeat every 2 s)")
    assert agent["state_reason"] == "heartbeat_overdue"
    # Not before two intervals passed since the last heartbeat (counted from it, not from the
    # SIGSTOP, which comes a moment after that heartbeat).
    marked, last_beat = (datetime.fromisoformat(str(agent[key])) for key in ("status_at", "heartbeat_at"))
    assert (marked - last_beat).total_seconds() > 2 * 2.0
    os.kill(world.agent.pid, signal.SIGCONT)
    _wait(lambda: state() == "online", 30, "the agent online again")
    assert world.stop_agent()["event"] == "agent_stopped"
