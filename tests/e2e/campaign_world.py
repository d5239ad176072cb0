"""The world of tests/e2e/test_campaign_e2e.py: the vendor side (a Webex org of RoomOS rooms and an
on-premises codec, lab/fakes), an SMTP server for the customer's notices (aiosmtpd), and the
configuration of the two daemons — the controller with its command key, the agent holding the
public key — as an operator writes them. The daemons themselves are real processes started by the
test; only the Cisco side is simulated, on the documented wire (vendor-apis.md)."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller as SmtpController

from lab.fakes.webex import FakeWebex
from lab.fakes.webex_org import FakeCloudDevice, make_org
from lab.fakes.xapi import FakeCodec, XapiFaults, default_tree
from tests.e2e.served import ServedApps
from tests.e2e.vendor_fakes import ROOMOS_AFFECTED, ROOMOS_NEXT, _set_roomos

SITE = "campaign-site"
AGENT = "campaign-agent"
CUSTOMER = "acme"
CODEC = "ber-konf-4-01"  # the on-premises codec's source id: its device id
WEBEX_TOKEN = "e2e-campaign-webex-token"
WEBEX_TOKEN_ENV = "FERNWART_E2E_CAMPAIGN_WEBEX_TOKEN"
CODEC_PASSWORD_ENV = "FERNWART_E2E_CAMPAIGN_CODEC_PASSWORD"
WAIT_S = 120.0
WINDOW_EVERY_S = 30  # generous: a bound for a hang, not a performance threshold


class CiscoSide(ServedApps):
    """``rooms`` cloud-registered Room Kits on the affected RoomOS (cloud xAPI; the cloud dictates
    ``ROOMOS_NEXT`` on ``Webex.Software.Upgrade``) and one on-premises Room Kit Pro (HTTP XML API,
    no package host: its update is a manual task), served from a thread's event loop."""

    name = "Cisco fakes"

    def __init__(self, rooms: int) -> None:
        self.rooms: list[FakeCloudDevice] = make_org(rooms, 0, prefix="campaign")
        for room in self.rooms:
            _set_roomos(room, f"RoomOS {ROOMOS_AFFECTED} 0a1b2c3d4e5")
            room.next_software = f"RoomOS {ROOMOS_NEXT} 77aa00bb11c"
        self.webex = FakeWebex(list(self.rooms), access_token=WEBEX_TOKEN)
        self.codec = FakeCodec(tree=default_tree(ROOMOS_AFFECTED), faults=XapiFaults(interval_s=0.05))
        super().__init__()

    def apps(self) -> list[web.Application]:
        return [self.webex.app(), self.codec.app()]

    @property
    def webex_port(self) -> int:
        return self.ports[0]

    @property
    def codec_port(self) -> int:
        return self.ports[1]

    def upgrade_codec(self, version: str) -> None:
        """The NOC's manual task done at the codec: ``xCommand SystemUnit SoftwareUpgrade URL: …``
        through ``/putxml`` (HTTP XML API), with a package from a host the codec reaches."""
        package = f"cmterm-s53200ce{version.replace('.', '_')}.k4.cop.sha512"
        url = f"http://127.0.0.1:{self.codec_port}/packages/{package}"
        body = (
            "<Command><SystemUnit><SoftwareUpgrade>"
            f"<URL>{url}</URL><Forced>True</Forced>"
            "</SoftwareUpgrade></SystemUnit></Command>"
        ).encode()
        auth = base64.b64encode(f"{self.codec.user}:{self.codec.password}".encode()).decode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.codec_port}/putxml",
            body,
            {"Content-Type": "text/xml", "Authorization": f"Basic {auth}"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = response.read().decode()
        assert 'status="OK"' in answer, answer


@dataclass
class Mailbox:
    """The customers' mail server: what the controller's notices delivered."""

    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


class Smtp:
    def __init__(self, port: int) -> None:
        self.mailbox = Mailbox()
        self.port = port
        self._server = SmtpController(self.mailbox, hostname="127.0.0.1", port=port)

    def __enter__(self) -> Self:
        self._server.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.stop()


def controller_config(database: str, broker_port: int, http_port: int, smtp_port: int, tmp: Path) -> str:
    return f"""\
[database]
url = "{database}"

[mqtt]
host = "127.0.0.1"
port = {broker_port}
client_id = "campaign-controller"
protocol = "5"
reconnect_max_s = 1.0

[http]
host = "127.0.0.1"
port = {http_port}

[commands]
key_file = "{tmp / "command-key.pem"}"

[notices]
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
smtp_starttls = false
sender = "noc@fernwart.example"

# A test window is seconds long: the runner steps often, and an update of the simulated devices
# takes seconds (the production defaults are 30 s and 30 min).
[campaigns]
tick_s = 0.5
expected_duration_s = 10.0

[sites.{SITE}]
tenant = "{CUSTOMER}"
"""


def agent_config(tmp: Path, broker_port: int, cisco: CiscoSide, command_key: str) -> str:
    return f"""\
site_id = "{SITE}"
agent_id = "{AGENT}"

[mqtt]
host = "127.0.0.1"
port = {broker_port}

[outbox]
path = "{tmp / "outbox.db"}"
linger_ms = 100.0

[poll]
default_interval_s = 1.0
timeout_s = 60.0
jitter_fraction = 0.0

# Whom this agent takes commands from: `fernwart controller key show`.
[controller]
command_key = "{command_key}"

# A Webex organisation: cloud-registered RoomOS devices, updated through the cloud xAPI.
[[sources]]
id = "webex-org"
kind = "webex"

[sources.options]
base_url = "http://127.0.0.1:{cisco.webex_port}/v1"
access_token = {{ env = "{WEBEX_TOKEN_ENV}" }}
follow_interval_s = 0.2
rate_per_s = 100.0
burst = 100

# An on-premises Room Kit Pro without a package host: its upgrade is a manual task.
[[sources]]
id = "{CODEC}"
kind = "xapi"

[sources.options]
host = "127.0.0.1"
port = {cisco.codec_port}
scheme = "http"
user = "{cisco.codec.user}"
password = {{ env = "{CODEC_PASSWORD_ENV}" }}
min_interval_s = 0.05
follow_interval_s = 0.2
"""


def contracts(window_start: datetime) -> dict[str, Any]:
    """The customer's contract: working hours every day (so the notice time is always inside
    them), a notice lead of two seconds, and windows of 25 seconds every 30 seconds from
    ``window_start`` (UTC, whole seconds), the first open a few seconds after the campaign is
    approved. Short windows, each its own: the planner puts the canary wave into the first and the
    rest into the first window after the canary's ends (the soak between them)."""
    local = window_start.astimezone(UTC).replace(tzinfo=None, microsecond=0)
    return {
        "policy": {
            "customers": {
                CUSTOMER: {
                    "name": "ACME Rooms",
                    "timezone": "UTC",
                    "working_hours": "Mon-Sun 00:00-23:59",
                    "notice_lead": "PT2S",
                    "sites": [SITE],
                    "contacts": [{"name": "Maria", "email": "maria@acme.example", "role": "IT"}],
                }
            }
        },
        "windows": {
            "windows": [
                {
                    "customer": CUSTOMER,
                    "start": local.isoformat(),
                    "rrule": f"FREQ=SECONDLY;INTERVAL={WINDOW_EVERY_S}",
                    "duration": "PT25S",
                    "timezone": "UTC",
                    "exclude_holidays": False,
                }
            ]
        },
    }


def next_window_start(lead_s: float) -> datetime:
    """A window start ``lead_s`` from now, on a whole second."""
    return (datetime.now(UTC) + timedelta(seconds=lead_s + 1)).replace(microsecond=0)


@dataclass
class Api:
    port: int
    token: str

    def __call__(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data,
            {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.load(response)
        except urllib.error.HTTPError as err:
            pytest.fail(f"{method} {path}: HTTP {err.code}: {err.read().decode(errors='replace')}")


def wait_until(
    predicate: Callable[[], object], what: str, logs: Callable[[], str], timeout_s: float = WAIT_S
) -> None:
    """Poll ``predicate`` until it holds; fail with the daemons' last log lines after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass  # the controller is not answering yet
        time.sleep(0.3)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}\n{logs()}")
