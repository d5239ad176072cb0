"""Issue 15, end to end: a campaign for the devices one catalog advisory affects, run by the real
daemons inside a short window of the customer's contract.

Real processes and servers throughout: Mosquitto with the production broker settings,
``fernwart-controller`` with its command key (``fernwart controller init`` creates it, ``key
show`` prints it) and the campaign runner, ``fernwart-agent`` holding the controller's public key
and a ``[[sources]]`` config (a Webex
org of RoomOS rooms, updated through the cloud xAPI; an on-premises Room Kit Pro without a
package host), an SMTP server for the customer's notices. Only the Cisco side is simulated
(lab/fakes), and its devices change version when an update is triggered.

The advisory is Cisco's real cisco-sa-tce-roomos-dos-9V9jrC2q, which lists RoomOS 11.17.2.2, the
version every device starts on; the campaign targets 11.22.1.4, which it does not list and which
the Webex cloud dictates to the rooms. The contract: working hours every day, a notice lead of two
seconds, a daily window that opens a few seconds after the campaign is approved.

1. The canary wave runs first and is verified before any job of the second wave is sent; every
   room ends on the target as its own driver reports it; every job ``verified``.
2. A room told to fail its upgrade: once the failure threshold is crossed the campaign halts and
   the second wave is never sent.
3. The on-premises codec (no package host) gives a ``manual`` job with the steps; it stays open
   until the codec, updated by hand at the vendor, reports the target.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from collector.webex.devices import device_id as webex_device_id
from fernwart_cli.main import main as fernwart
from tests.e2e.campaign_world import (
    AGENT,
    CODEC,
    CODEC_PASSWORD_ENV,
    CUSTOMER,
    SITE,
    WEBEX_TOKEN,
    WEBEX_TOKEN_ENV,
    WINDOW_EVERY_S,
    Api,
    CiscoSide,
    Smtp,
    agent_config,
    contracts,
    controller_config,
    next_window_start,
    wait_until,
)
from tests.e2e.vendor_fakes import ROOMOS_ADVISORY, ROOMOS_ADVISORY_FILE, ROOMOS_AFFECTED, ROOMOS_NEXT
from tests.fixtures.mqtt import MosquittoBroker
from tests.fixtures.net import free_port, terminate, wait_for_tcp
from tests.fixtures.postgres import PostgresServer

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
ROOMS = 4
WINDOW_LEAD_S = 12.0  # the window opens this long after the contract is stored: plan, approve, notify


@dataclass
class World:
    tmp: Path
    api: Api
    cisco: CiscoSide
    smtp: Smtp
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        with (self.tmp / f"{name}.log").open("ab") as log:
            self.procs.append(
                subprocess.Popen(
                    argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
                )
            )

    def logs(self) -> str:
        return "\n".join(
            f"--- {n}:\n" + "\n".join((self.tmp / f"{n}.log").read_text(errors="replace").splitlines()[-20:])
            for n in ("agent", "controller")
        )

    def wait(self, predicate: Any, what: str) -> None:
        wait_until(predicate, what, self.logs)

    @property
    def rooms(self) -> dict[str, Any]:
        """device id (as the Webex driver names it) → the fake cloud device."""
        return {webex_device_id(room.id): room for room in self.cisco.rooms}

    def devices(self) -> dict[str, dict[str, Any]]:
        page = self.api("GET", f"/api/v1/devices?site={SITE}&limit=1000")
        return {item["device_id"]: item for item in page["items"]}

    def affected(self) -> set[str]:
        page = self.api("GET", f"/api/v1/findings?site={SITE}&limit=1000")
        return {
            i["device_id"]
            for i in page["items"]
            if i["advisory_id"] == ROOMOS_ADVISORY and i["status"] == "affected"
        }

    def campaign(self, **spec: Any) -> tuple[int, dict[str, Any]]:
        """Store the contract (a window opening shortly), create the campaign, plan it, approve it."""
        window_start = next_window_start(WINDOW_LEAD_S)
        assert self.api("PUT", "/api/v1/contracts", contracts(window_start))["customers"] == 1
        body = {
            "name": "RoomOS DoS fix",
            "customer": CUSTOMER,
            "targets": {"roomos": ROOMOS_NEXT},
            "soak_s": 0,
            "retries": 0,
            **spec,
        }
        cid = int(self.api("POST", "/api/v1/campaigns", body)["id"])
        plan = self.api("POST", f"/api/v1/campaigns/{cid}/plan")
        # The canary wave in the first usable window (the one opening shortly, unless planning
        # came too late for its notice), the rest in the next window after the canary's ends.
        starts = {job["wave"]: datetime.fromisoformat(job["start"]) for job in plan["jobs"]}
        for job in plan["jobs"]:
            assert (job["action"], job["target"]) == ("update", ROOMOS_NEXT), job
            assert datetime.fromisoformat(job["start"]) == starts[job["wave"]], (plan["at"], job)
        assert starts[1] >= window_start, plan["at"]
        if 2 in starts:
            assert starts[2] == starts[1] + timedelta(seconds=WINDOW_EVERY_S)
        assert self.api("POST", f"/api/v1/campaigns/{cid}/approve")["state"] == "approved"
        return cid, plan

    def state(self, cid: int) -> str:
        return str(self.api("GET", f"/api/v1/campaigns/{cid}")["state"])

    def jobs(self, cid: int) -> dict[str, dict[str, Any]]:
        """device id → the job with its state history."""
        items = self.api("GET", f"/api/v1/campaigns/{cid}/jobs")["items"]
        return {j["device_id"]: self.api("GET", f"/api/v1/jobs/{j['id']}") for j in items}


def first(job: dict[str, Any], state: str) -> datetime | None:
    """When ``job`` first entered ``state`` (None: never)."""
    return next((datetime.fromisoformat(e["at"]) for e in job["history"] if e["state"] == state), None)


@pytest.fixture
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'controller.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    name = f"campaign_{os.getpid()}_{int(time.monotonic() * 1000)}"
    psql = shutil.which("psql") or "psql"
    subprocess.run(
        [psql, "-h", server.host, "-p", str(server.port), "-U", server.user, "-d", "postgres", "-c",
         f'CREATE DATABASE "{name}"'],
        check=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return server.url(name)


@pytest.fixture
def world(
    tmp_path: Path, database: str, mosquitto: MosquittoBroker, capsys: pytest.CaptureFixture[str]
) -> Iterator[World]:
    http_port = free_port()
    with Smtp(free_port()) as smtp, CiscoSide(ROOMS) as cisco:
        cfg = tmp_path / "controller.toml"
        cfg.write_text(controller_config(database, mosquitto.port, http_port, smtp.port, tmp_path))
        config = ["--config", str(cfg)]
        assert fernwart(["controller", "init", *config]) == 0
        assert fernwart(["controller", "enroll", "--site", SITE, "--agent", AGENT, *config]) == 0
        assert (
            fernwart(["controller", "token", "create", "--name", "e2e", "--role", "noc-admin", *config]) == 0
        )
        token = capsys.readouterr().out.strip().splitlines()[-1]
        # `controller init` created the command key; the agents get its public key.
        assert fernwart(["controller", "key", "show", *config]) == 0
        command_key = capsys.readouterr().out.strip().splitlines()[-1]
        assert command_key.startswith("ed25519:")
        agent_cfg = tmp_path / "agent.toml"
        agent_cfg.write_text(agent_config(tmp_path, mosquitto.port, cisco, command_key))
        env = {**os.environ, WEBEX_TOKEN_ENV: WEBEX_TOKEN, CODEC_PASSWORD_ENV: cisco.codec.password}
        w = World(tmp_path, Api(http_port, token), cisco, smtp)
        try:
            w.start("controller", [str(BIN / "fernwart-controller"), *config])
            wait_for_tcp("127.0.0.1", http_port, 60)
            answer = w.api("POST", "/api/v1/advisories", json_of(ROOMOS_ADVISORY_FILE))
            assert answer["advisory"]["id"] == ROOMOS_ADVISORY
            w.start("agent", [str(BIN / "fernwart-agent"), "--config", str(agent_cfg)], env)
            expected = {*w.rooms, CODEC}
            w.wait(lambda: w.affected() >= expected, f"every device affected by {ROOMOS_ADVISORY}")
            yield w
        finally:
            for proc in reversed(w.procs):
                terminate(proc, timeout_s=30)


def json_of(path: Path) -> Any:
    return json.loads(path.read_text())


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_canary_wave_then_the_rest_each_verified_by_its_reported_version(world: World) -> None:
    w = world
    rooms = sorted(w.rooms)
    selection = {"findings": [ROOMOS_ADVISORY], "devices": [f"{SITE}/{d}" for d in rooms]}
    cid, plan = w.campaign(selection=selection, canary=1, per_site_concurrency=5)
    waves = {job["device_id"]: job["wave"] for job in plan["jobs"]}
    assert sorted(waves.values()) == [1, 2, 2, 2]
    (canary,) = [d for d, wave in waves.items() if wave == 1]

    w.wait(lambda: w.state(cid) == "done", "the campaign done")
    jobs = w.jobs(cid)
    assert {d: j["state"] for d, j in jobs.items()} == dict.fromkeys(rooms, "verified")
    # The customer was told first (one e-mail per window, before it), and every job ran inside it.
    assert [rcpt for _, rcpt, _ in w.smtp.mailbox.messages] == [["maria@acme.example"]] * 2
    for job in jobs.values():
        sent, verified = first(job, "sent"), first(job, "verified")
        assert sent is not None, job["history"]
        assert verified is not None, job["history"]
        notified = first(job, "notified")
        assert notified is not None, job["history"]
        assert notified < datetime.fromisoformat(job["window_start"]) <= sent
        assert verified <= datetime.fromisoformat(job["window_end"])
        assert "device reports" in job["history"][-1]["detail"]
    # The canary was verified before any job of the second wave was sent.
    canary_done = first(jobs[canary], "verified")
    assert canary_done is not None
    assert all(canary_done <= (first(jobs[d], "sent") or canary_done) for d in rooms if d != canary)
    # Each room ends on the target as its own driver reports it, after one upgrade command each.
    devices = w.devices()
    for device in rooms:
        assert devices[device]["driver"] == "webex"
        assert devices[device]["firmware_version"] == f"RoomOS {ROOMOS_NEXT}"
        assert w.rooms[device].commands == ["Webex.Software.Upgrade"]
    assert w.cisco.codec.commands == []  # not selected: untouched
    assert not w.affected() & set(rooms)


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_failing_device_halts_the_campaign_once_the_threshold_is_crossed(world: World) -> None:
    w = world
    rooms = sorted(w.rooms)
    # Two canaries: one fails its upgrade. The threshold counts from two finished jobs, so the
    # first to finish never halts alone; 1 of 2 failed is above 40 %.
    spec = {
        "selection": {"devices": [f"{SITE}/{d}" for d in rooms]},
        "canary": 2,
        "per_site_concurrency": 2,
        "failure_threshold_pct": 40.0,
        "failure_min_finished": 2,
        "success_threshold_pct": 50.0,
    }
    window_plan = w.campaign(**spec)
    cid, plan = window_plan
    canaries = sorted(job["device_id"] for job in plan["jobs"] if job["wave"] == 1)
    assert len(canaries) == 2
    failing, healthy = canaries
    w.rooms[failing].upgrade_fails = True

    w.wait(lambda: w.state(cid) == "halted", "the campaign halted")
    campaign = w.api("GET", f"/api/v1/campaigns/{cid}")
    jobs = w.jobs(cid)
    assert jobs[failing]["state"] == "failed"
    assert jobs[healthy]["state"] == "verified"
    rest = [d for d in rooms if d not in canaries]
    for device in rest:  # the second wave was never sent
        assert jobs[device]["state"] in {"notified", "deferred"}
        assert first(jobs[device], "sent") is None
        assert w.rooms[device].commands == []
    assert "1 of 2 finished jobs failed" in str(campaign), campaign
    # The halt holds: nothing more is sent while the runner goes on stepping.
    time.sleep(2)
    assert w.state(cid) == "halted"
    assert all(w.rooms[d].commands == [] for d in rest)
    devices = w.devices()
    assert devices[failing]["firmware_version"] == f"RoomOS {ROOMOS_AFFECTED}"
    assert devices[healthy]["firmware_version"] == f"RoomOS {ROOMOS_NEXT}"


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_manual_task_stays_open_until_the_device_reports_the_target(world: World) -> None:
    w = world
    cid, plan = w.campaign(selection={"devices": [f"{SITE}/{CODEC}"]}, canary=0)
    assert [job["device_id"] for job in plan["jobs"]] == [CODEC]

    def job() -> dict[str, Any]:
        return w.jobs(cid)[CODEC]

    w.wait(lambda: job()["state"] == "manual", "the codec's job to become a manual task")
    detail = job()["history"][-1]["detail"]
    assert "manual task" in detail
    assert "package host" in detail
    assert "/web/software" in detail  # the codec's console link
    # It stays open while the codec keeps reporting the old version, poll after poll.
    seen = w.devices()[CODEC]["last_seen"]
    w.wait(lambda: w.devices()[CODEC]["last_seen"] != seen, "another poll of the codec")
    assert job()["state"] == "manual"
    assert w.state(cid) == "running"
    assert w.cisco.codec.commands == []  # the agent did not pretend: it sent nothing

    w.cisco.upgrade_codec(ROOMOS_NEXT)  # the NOC does the manual task at the codec
    w.wait(lambda: job()["state"] == "verified", "the manual job verified by the reported version")
    assert w.state(cid) == "done"
    assert w.devices()[CODEC]["firmware_version"] == f"RoomOS {ROOMOS_NEXT}"
