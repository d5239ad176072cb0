"""Issue 14, end to end: a Teams Rooms app version and a RoomOS version, as the vendor drivers
report them, produce findings through the controller; an update made at the vendor clears them.

Real processes and servers throughout, on SQLite and on PostgreSQL: Mosquitto with the production
broker settings, ``fernwart-agent`` with a ``[[sources]]`` config (a Microsoft tenant read through
Graph, an on-premises Room Kit Pro read through its xAPI, a Webex org through the Webex cloud;
every secret an ``{ env = … }`` reference), ``fernwart-controller``. The only fakes are the vendor
side (lab/fakes: the Graph fake's fixture tenant, the xAPI codec, a Webex org of one Room Kit and
one phone), served on loopback from a thread of the test.

The catalog holds two small CSAF 2.0 documents written for this test (tests/e2e/data): the Teams
Rooms app below 5.5.12.0 affected, 5.5.12.0 fixed (the tenant's two rooms run 5.4.88.0 and
5.3.126.0, under the app's two Intune display names), and the Teams app on Android below 1.0.96
(its phone runs 1.0.94); and Cisco's real cisco-sa-tce-roomos-dos-9V9jrC2q (lab/catalog/csaf),
which lists RoomOS 11.17.2.2, the version both Cisco rooms start on. Then the test acts as an
operator at the vendor: teamworkDevice ``updateSoftware`` to 5.5.12.0 for one room, ``SystemUnit
SoftwareUpgrade`` to RoomOS 11.22.1.4 on the codec, the cloud xAPI ``Webex.Software.Upgrade`` for
the Webex room. The drivers report the new versions on their next polls and the findings change:
the room's to ``fixed``; the codecs' to ``unknown``, because Cisco's advisory lists affected
versions and names no fixed one. No finding disappears while a device reboots into its update.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from collector.webex.devices import device_id as webex_device_id
from fernwart_cli.main import main as fernwart
from tests.e2e.vendor_fakes import (
    ROOMOS_ADVISORY,
    ROOMOS_ADVISORY_FILE,
    ROOMOS_AFFECTED,
    ROOMOS_NEXT,
    WEBEX_TOKEN,
    Vendors,
)
from tests.fixtures.mqtt import MosquittoBroker
from tests.fixtures.net import free_port, terminate, wait_for_tcp
from tests.fixtures.postgres import PostgresServer

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
SITE = "vendor-site"
AGENT = "vendor-agent"

MTR_ADVISORY = "fernwart-test-msrc-teams-rooms-2026-0002"
MTR_ADVISORY_FILE = Path(__file__).parent / "data" / f"{MTR_ADVISORY}.json"
ANDROID_ADVISORY = "fernwart-test-msrc-teams-android-2026-0003"
ANDROID_ADVISORY_FILE = Path(__file__).parent / "data" / f"{ANDROID_ADVISORY}.json"

BOARDROOM = "intune-4b1f0c2e-7d3a-4e59-9a61-0c8d2f5e7a01"  # "Microsoft Teams Rooms" 5.4.88.0, teamwork
HUDDLE = "intune-8e2a6d71-1c4b-4f0a-b7e3-5d9c0a1f2b02"  # "Microsoft.SkypeRoomSystem" 5.3.126.0
PHONE = "intune-c3d5e7f9-2a4b-4c6d-8e0f-1a3b5c7d9e03"  # a Teams Android phone: Teams 1.0.94
BAR = "teams-6c1a7e0b-2f44-4c1e-9d6a-1b2c3d4e5f02"  # a MeetingBar only the beta API knows: 1.0.96
BOARDROOM_TEAMWORK = "6c1a7e0b-2f44-4c1e-9d6a-1b2c3d4e5f01"
CODEC = "ber-konf-3-01"
TEAMS_FIXED = "5.5.12.0"

GRAPH_SECRET_ENV = "FERNWART_E2E_GRAPH_SECRET"
CODEC_PASSWORD_ENV = "FERNWART_E2E_CODEC_PASSWORD"
WEBEX_TOKEN_ENV = "FERNWART_E2E_WEBEX_TOKEN"
WAIT_S = 180.0  # generous: a bound for a hang, not a performance threshold


@dataclass
class World:
    tmp: Path
    http_port: int
    controller_cfg: Path
    agent_cfg: Path
    agent_env: dict[str, str]
    token: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        with (self.tmp / f"{name}.log").open("ab") as log:
            self.procs.append(
                subprocess.Popen(
                    argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
                )
            )

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def api(self, path: str, body: bytes | None = None) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}{path}",
            body,
            {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            method="POST" if body is not None else "GET",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def findings(self) -> dict[str, dict[str, dict[str, Any]]]:
        """device id → advisory id → finding, from ``GET /api/v1/findings``, every page."""
        found: dict[str, dict[str, dict[str, Any]]] = {}
        offset: int | None = 0
        while offset is not None:
            page = self.api(f"/api/v1/findings?site={SITE}&limit=1000&offset={offset}")
            for item in page["items"]:
                found.setdefault(item["device_id"], {})[item["advisory_id"]] = item
            offset = page.get("next_offset")
        return found

    def devices(self) -> dict[str, dict[str, Any]]:
        page = self.api(f"/api/v1/devices?site={SITE}&limit=1000")
        return {item["device_id"]: item for item in page["items"]}


def wait_until(predicate: Callable[[], object], what: str, world: World, timeout_s: float = WAIT_S) -> None:
    """Poll ``predicate`` until it holds; fail with the daemons' last log lines after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass  # the controller is not answering yet
        time.sleep(0.5)
    tails = "\n".join(
        f"--- {n}:\n" + "\n".join(world.log(n).splitlines()[-15:]) for n in ("agent", "controller")
    )
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}\n{tails}")


def _agent_config(tmp: Path, broker: MosquittoBroker, vendors: Vendors) -> str:
    tenant = vendors.tenant
    return f"""\
site_id = "{SITE}"
agent_id = "{AGENT}"

[mqtt]
host = "127.0.0.1"
port = {broker.port}

[outbox]
path = "{tmp / "outbox.db"}"
linger_ms = 100.0

[poll]
default_interval_s = 1.0
timeout_s = 60.0
jitter_fraction = 0.0

# The Microsoft tenant (Intune + detectedApps + the beta teamworkDevice tree where it answers).
[[sources]]
id = "ms-contoso"
kind = "graph"

[sources.options]
tenant_id = "{tenant.tenant_id}"
client_id = "{tenant.client_id}"
client_secret = {{ env = "{GRAPH_SECRET_ENV}" }}
graph_url = "{vendors.graph.url}"
login_url = "{vendors.graph.url}"

# An on-premises Room Kit Pro through its HTTP XML API.
[[sources]]
id = "{CODEC}"
kind = "xapi"

[sources.options]
host = "127.0.0.1"
port = {vendors.codec_port}
scheme = "http"
user = "{vendors.codec.user}"
password = {{ env = "{CODEC_PASSWORD_ENV}" }}
min_interval_s = 0.05

# A Webex organisation: cloud-registered RoomOS devices and Webex Calling phones.
[[sources]]
id = "webex-org"
kind = "webex"

[sources.options]
base_url = "http://127.0.0.1:{vendors.webex_port}/v1"
access_token = {{ env = "{WEBEX_TOKEN_ENV}" }}
"""


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'controller.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    name = f"vendor_{os.getpid()}_{int(time.monotonic() * 1000)}"
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
) -> Iterator[tuple[World, Vendors]]:
    http_port = free_port()
    controller_cfg = tmp_path / "controller.toml"
    controller_cfg.write_text(
        f'[database]\nurl = "{database}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\nclient_id = "vendor-controller"\n'
        'protocol = "5"\nreconnect_max_s = 1.0\n'
        f'[http]\nhost = "127.0.0.1"\nport = {http_port}\n'
    )
    config = ["--config", str(controller_cfg)]
    assert fernwart(["controller", "init", *config]) == 0
    assert fernwart(["controller", "enroll", "--site", SITE, "--agent", AGENT, *config]) == 0
    assert fernwart(["controller", "token", "create", "--name", "e2e", "--role", "noc-admin", *config]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    with Vendors() as vendors:
        agent_cfg = tmp_path / "agent.toml"
        agent_cfg.write_text(_agent_config(tmp_path, mosquitto, vendors))
        env = {
            **os.environ,
            GRAPH_SECRET_ENV: vendors.tenant.client_secret,
            CODEC_PASSWORD_ENV: vendors.codec.password,
            WEBEX_TOKEN_ENV: WEBEX_TOKEN,
        }
        world = World(tmp_path, http_port, controller_cfg, agent_cfg, env, token)
        try:
            yield world, vendors
        finally:
            for proc in reversed(world.procs):
                terminate(proc, timeout_s=30)


def test_vendor_versions_produce_findings_and_an_update_clears_them(world: tuple[World, Vendors]) -> None:
    w, vendors = world
    cloud_room = webex_device_id(vendors.webex_room.id)
    w.start("controller", [str(BIN / "fernwart-controller"), "--config", str(w.controller_cfg)])
    wait_for_tcp("127.0.0.1", w.http_port, 60)
    for document in (MTR_ADVISORY_FILE, ANDROID_ADVISORY_FILE, ROOMOS_ADVISORY_FILE):
        answer = w.api("/api/v1/advisories", document.read_bytes())
        assert (answer["result"], answer["advisory"]["id"]) == ("added", document.stem)
    w.start("agent", [str(BIN / "fernwart-agent"), "--config", str(w.agent_cfg)], w.agent_env)
    expected = (
        (BOARDROOM, MTR_ADVISORY),
        (HUDDLE, MTR_ADVISORY),
        (PHONE, ANDROID_ADVISORY),
        (CODEC, ROOMOS_ADVISORY),
        (cloud_room, ROOMOS_ADVISORY),
    )

    def affected() -> bool:
        found = w.findings()
        return all(
            found.get(device, {}).get(advisory, {}).get("status") == "affected"
            for device, advisory in expected
        )

    wait_until(affected, "findings for the Teams Rooms, the codec and the Webex room", w)
    found = w.findings()
    room, huddle = found[BOARDROOM][MTR_ADVISORY], found[HUDDLE][MTR_ADVISORY]
    codec, cloud = found[CODEC][ROOMOS_ADVISORY], found[cloud_room][ROOMOS_ADVISORY]
    # Each finding names the advisory, the component the driver reported and its version.
    assert (room["component"], room["version"], room["cves"]) == (
        "teams_rooms_app",
        "5.4.88.0",
        ["CVE-2026-49152"],
    )
    assert (huddle["component"], huddle["version"]) == (
        "teams_rooms_app",
        "5.3.126.0",
    )  # the app's other name
    for finding in (codec, cloud):
        assert (finding["component"], finding["version"]) == ("firmware", f"RoomOS {ROOMOS_AFFECTED}")
        assert finding["cves"] == ["CVE-2026-20119"]
    phone = found[PHONE][ANDROID_ADVISORY]  # the other matched component: Teams on Android
    assert (phone["component"], phone["version"]) == ("teams_android_app", "1449/1.0.94.2024101703")
    assert found[BAR][ANDROID_ADVISORY]["status"] == "fixed"
    assert MTR_ADVISORY not in found[PHONE]  # a Teams Android app is not the Rooms product
    assert ANDROID_ADVISORY not in found[BOARDROOM]
    assert MTR_ADVISORY not in found[CODEC]
    assert ROOMOS_ADVISORY not in found[BOARDROOM]
    devices = w.devices()
    assert {devices[d]["driver"] for d in (BOARDROOM, CODEC, cloud_room)} == {"graph", "xapi", "webex"}

    # The operator updates at the vendor; the drivers report the new versions on their next polls.
    assert vendors.update_teams_app(BOARDROOM_TEAMWORK, TEAMS_FIXED) == ["queued", "inProgress", "successful"]
    vendors.upgrade_codec(ROOMOS_NEXT)
    vendors.upgrade_webex_room()

    def updated() -> bool:
        found = w.findings()
        # Indexed, not .get(): each finding stays throughout, also while a codec reboots into the
        # new version (its agent reports it down then; see test_device_down_identity.py).
        versions = (
            found[BOARDROOM][MTR_ADVISORY]["version"],
            found[CODEC][ROOMOS_ADVISORY]["version"],
            found[cloud_room][ROOMOS_ADVISORY]["version"],
        )
        return versions == (TEAMS_FIXED, f"RoomOS {ROOMOS_NEXT}", f"RoomOS {ROOMOS_NEXT}")

    wait_until(updated, "the findings recomputed for the updated versions", w)
    found = w.findings()
    room, huddle = found[BOARDROOM][MTR_ADVISORY], found[HUDDLE][MTR_ADVISORY]
    assert (room["component"], room["status"]) == ("teams_rooms_app", "fixed")
    assert (huddle["version"], huddle["status"]) == ("5.3.126.0", "affected")  # not updated: still affected
    for device in (CODEC, cloud_room):
        finding = found[device][ROOMOS_ADVISORY]
        # No longer affected. "unknown", not "fixed": Cisco's advisory lists affected releases
        # and names no fixed one, and 11.22.1.4 is not listed.
        assert finding["status"] == "unknown"
        assert "states nothing about version RoomOS 11.22.1.4" in finding["reason"]
        assert w.devices()[device]["firmware_version"] == f"RoomOS {ROOMOS_NEXT}"
    assert vendors.codec.commands == ["SystemUnit.SoftwareUpgrade"]  # the agent only read
    assert vendors.webex_room.commands == ["Webex.Software.Upgrade"]
    events = [json.loads(line) for line in w.log("agent").splitlines() if line.startswith("{")]
    # The on-premises codec was away while it rebooted into the new version, reported down meanwhile.
    assert any(e["event"] == "device_unreachable" and e.get("device") == CODEC for e in events)

    # Both daemons stop cleanly; no vendor secret is in their logs or the agent's config.
    for proc in reversed(w.procs):
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    texts = [w.log("agent"), w.log("controller"), w.agent_cfg.read_text()]
    for secret in (vendors.tenant.client_secret, vendors.codec.password, WEBEX_TOKEN):
        assert not any(secret in text for text in texts)
