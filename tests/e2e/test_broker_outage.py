"""The whole path under a broker outage: snmpsim lab → agent → Mosquitto → controller → SQLite.

The broker is stopped for 30 s while the agent keeps polling. Afterwards every batch the agent
made is in the store exactly once, in the order it was made, and the controller recorded no gap.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fernwart_cli.main import main as fernwart
from lab.devices import lab_devices
from lab.snmpsim import SnmpSim, start_snmpsim
from tests.fixtures.mqtt import MosquittoBroker
from tests.fixtures.net import free_port, wait_for_tcp

pytestmark = pytest.mark.slow
SITE = "outage-site"


@pytest.fixture
def snmpsim() -> Iterator[SnmpSim]:
    sim = start_snmpsim(None)
    try:
        yield sim
    finally:
        sim.stop()


def _write_configs(
    tmp_path: Path, broker: MosquittoBroker, prefix: str, sim: SnmpSim, http_port: int
) -> tuple[Path, Path, Path]:
    db = tmp_path / "controller.db"
    controller = tmp_path / "controller.toml"
    controller.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{db}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nprefix = "{prefix}"\n'
        f'client_id = "ctl-{prefix.split("/", maxsplit=1)[0]}"\nreconnect_max_s = 1.0\n'
        f'[http]\nhost = "127.0.0.1"\nport = {http_port}\n'
    )
    lines = [
        f'site_id = "{SITE}"',
        'agent_id = "outage-agent"',
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nprefix = "{prefix}"',
        "[mqtt.backoff]\nmin_s = 0.2\nmax_s = 1.0",
        f'[outbox]\npath = "{tmp_path / "outbox.db"}"\nlinger_ms = 100.0\nmax_batch = 10',
        "[poll]\ndefault_interval_s = 0.5\ntimeout_s = 3.0\njitter_fraction = 0.0",
    ]
    for device in lab_devices()[:4]:
        lines.append(
            f'[[devices]]\nid = "{device.id}"\nkind = "snmp"\n'
            f'[devices.options]\nhost = "127.0.0.1"\nport = {sim.port}\ncommunity = "{device.community}"'
        )
    agent = tmp_path / "agent.toml"
    agent.write_text("\n".join(lines) + "\n")
    return controller, agent, db


def _query(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db, timeout=10) as conn:
        return conn.execute(sql).fetchall()


def _wait(predicate: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}")


def _settled(read: Callable[[], object], quiet_s: float = 2.0, timeout_s: float = 30) -> object:
    """``read()`` once it returned the same value for ``quiet_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    value, since = read(), time.monotonic()
    while time.monotonic() - since < quiet_s:
        if time.monotonic() > deadline:
            pytest.fail(f"still changing after {timeout_s}s: {value!r}")
        time.sleep(0.25)
        current = read()
        if current != value:
            value, since = current, time.monotonic()
    return value


def _stop(proc: subprocess.Popen[bytes], timeout_s: float = 15) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout_s)


def test_broker_outage_loses_nothing(
    tmp_path: Path, mosquitto: MosquittoBroker, topic_prefix: str, snmpsim: SnmpSim
) -> None:
    http_port = free_port()
    controller_cfg, agent_cfg, db = _write_configs(tmp_path, mosquitto, topic_prefix, snmpsim, http_port)
    enroll = [
        "controller",
        "enroll",
        "--site",
        SITE,
        "--agent",
        "outage-agent",
        "--config",
        str(controller_cfg),
    ]
    assert fernwart(["controller", "init", "--config", str(controller_cfg)]) == 0  # never created unasked
    assert fernwart(enroll) == 0  # the controller accepts messages for enrolled sites only
    controller_log = (tmp_path / "controller.log").open("wb")
    agent_log_path = tmp_path / "agent.log"
    agent_log = agent_log_path.open("wb")
    controller = subprocess.Popen(
        [sys.executable, "-m", "controller", "--config", str(controller_cfg)],
        stdout=controller_log,
        stderr=subprocess.STDOUT,
    )
    agent = None
    try:
        wait_for_tcp("127.0.0.1", http_port, 30)
        agent = subprocess.Popen(
            [sys.executable, "-m", "agent", "--config", str(agent_cfg)],
            stdout=agent_log,
            stderr=subprocess.STDOUT,
        )
        _wait(lambda: _query(db, "select count(*) from batches")[0][0] >= 3, 60, "first batches stored")

        mosquitto.stop()
        # What the controller received before the stop may still be decoding or committing:
        # count once that has settled, then nothing more may arrive while the broker is away.
        before_outage = _settled(lambda: _query(db, "select count(*) from batches")[0][0])
        time.sleep(30)  # the agent keeps polling into its outbox
        assert agent.poll() is None, "the agent must survive a broker outage"
        assert _query(db, "select count(*) from batches")[0][0] == before_outage
        mosquitto.start()

        # Let the agent drain what it buffered, then stop it and learn how many batches it made.
        time.sleep(3)
        assert _stop(agent) == 0
        lines = agent_log_path.read_text().splitlines()
        events = [json.loads(line) for line in lines if line.startswith("{")]
        stopped = next(event for event in events if event.get("event") == "agent_stopped")
        boot, made = stopped["boot"], stopped["seqs"]
        assert stopped["outbox_rows"] == 0
        assert made > before_outage + 10  # polling went on during the outage

        _wait(
            lambda: _query(db, f"select count(*) from batches where boot = {boot}")[0][0] >= made,
            30,
            f"all {made} batches stored",
        )
        seqs = [row[0] for row in _query(db, f"select seq from batches where boot = {boot} order by seq")]
        assert seqs == list(range(made)), "every batch exactly once"
        assert _query(db, "select count(*) from gaps") == [(0,)]
        # In order: observations were stored in the order the agent made them.
        rows = _query(
            db,
            "select b.seq from observations o join batches b on b.batch_id = o.batch_id order by o.id",
        )
        stored_seqs = [row[0] for row in rows]
        assert stored_seqs == sorted(stored_seqs)
        dupes = _query(
            db,
            "select device_id, observed_at, count(*) from observations "
            "group by device_id, observed_at having count(*) > 1",
        )
        assert dupes == []
    finally:
        if agent is not None and agent.poll() is None:
            agent.kill()
        assert _stop(controller) == 0
        controller_log.close()
        agent_log.close()
