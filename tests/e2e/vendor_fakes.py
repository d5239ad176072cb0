"""The vendor side of tests/e2e/test_vendor_findings.py: the Graph fake (its fixture tenant), an
on-premises Room Kit Pro (the xAPI fake) and a Webex org (one Room Kit, one phone), served on
loopback from a thread's event loop, and what an operator does at the vendor (an update), as real
requests on the documented wire."""

from __future__ import annotations

import base64
import contextlib
import json
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from aiohttp import web

from lab.fakes.graph import FakeGraph
from lab.fakes.graph_data import FakeTenant, fixture_tenant
from lab.fakes.webex import FakeWebex
from lab.fakes.webex_org import FakeCloudDevice, make_org
from lab.fakes.xapi import FakeCodec, XapiFaults, default_tree
from tests.e2e.served import ServedApps

REPO = Path(__file__).resolve().parents[2]
ROOMOS_ADVISORY = "cisco-sa-tce-roomos-dos-9V9jrC2q"
ROOMOS_ADVISORY_FILE = REPO / "lab" / "catalog" / "csaf" / f"{ROOMOS_ADVISORY}.json"
ROOMOS_AFFECTED = "11.17.2.2"  # listed by cisco-sa-tce-roomos-dos-9V9jrC2q
ROOMOS_NEXT = "11.22.1.4"  # not listed
WEBEX_TOKEN = "e2e-webex-access-token"


class Vendors(ServedApps):
    """The Graph fake (the fixture tenant), a Room Kit Pro and a Webex org, served from a thread's
    event loop so that the test's own code can stay synchronous like the daemons it drives."""

    name = "vendor fakes"

    def __init__(self) -> None:
        self.tenant: FakeTenant = fixture_tenant()
        self.graph = FakeGraph([self.tenant])
        # Paced like a codec, but faster than RoomOS's one request per second: the pacing is
        # what the contract tests check, here it would only make the test slower.
        self.codec = FakeCodec(tree=default_tree(ROOMOS_AFFECTED), faults=XapiFaults(interval_s=0.05))
        # A Webex org: one cloud-registered Room Kit on the affected RoomOS (cloud xAPI), one phone.
        room, phone = make_org(1, 1, prefix="e2e")
        _set_roomos(room, f"RoomOS {ROOMOS_AFFECTED} 0a1b2c3d4e5")
        room.next_software = f"RoomOS {ROOMOS_NEXT} 77aa00bb11c"  # what the cloud dictates
        self.webex_room = room
        self.webex = FakeWebex([room, phone], access_token=WEBEX_TOKEN)
        super().__init__()

    def apps(self) -> list[web.Application]:
        return [self.codec.app(), self.webex.app()]

    def beside(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return self.graph.running()

    @property
    def codec_port(self) -> int:
        return self.ports[0]

    @property
    def webex_port(self) -> int:
        return self.ports[1]

    # --- the operator at the vendor: real requests on the documented wire ---------------------

    def _graph(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.graph.url + path, data, headers, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return (response.status, dict(response.headers), json.loads(raw) if raw.strip() else None)

    def graph_token(self) -> str:
        form = urllib.parse.urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": self.tenant.client_id,
                "client_secret": self.tenant.client_secret,
                "scope": "https://graph.microsoft.com/.default",
            }
        ).encode()
        url = f"{self.graph.url}/{self.tenant.tenant_id}/oauth2/v2.0/token"
        with urllib.request.urlopen(url, form, timeout=30) as response:
            return str(json.load(response)["access_token"])

    def update_teams_app(self, teamwork_id: str, version: str) -> list[str]:
        """teamworkDevice ``updateSoftware`` (vendor-update-paths.md §1), followed through the
        operation's ``Location`` to its end state, as Teams admin center would; its states."""
        token = self.graph_token()
        status, headers, _ = self._graph(
            "POST",
            f"/beta/teamwork/devices/{teamwork_id}/updateSoftware",
            {"softwareType": "teamsClient", "softwareVersion": version},
            token,
        )
        assert status == 202
        states: list[str] = []
        while not states or states[-1] in {"queued", "inProgress"}:
            _, _, body = self._graph("GET", "/beta" + headers["Location"], token=token)
            states.append(body["value"]["status"])
            assert len(states) < 20, states
        return states

    def upgrade_codec(self, version: str) -> None:
        """``xCommand SystemUnit SoftwareUpgrade URL: …`` through ``/putxml`` (HTTP XML API)."""
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

    def upgrade_webex_room(self) -> None:
        """Cloud xAPI ``Webex.Software.Upgrade`` (vendor-update-paths.md §3): the device installs
        what the cloud dictates for its channel."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.webex_port}/v1/xapi/command/Webex.Software.Upgrade",
            json.dumps({"deviceId": self.webex_room.id, "arguments": {}}).encode(),
            {"Content-Type": "application/json", "Authorization": f"Bearer {WEBEX_TOKEN}"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200


def _set_roomos(device: FakeCloudDevice, display_name: str) -> None:
    """The cloud record's ``software`` and the xAPI status tree, as a device running it reports."""
    number, build = display_name.split()[1:3]
    device.record["software"] = display_name
    device.status["SystemUnit"]["Software"].update(DisplayName=display_name, Version=f"ce{number}.{build}")
    device.status["Provisioning"]["Software"]["Current"]["VersionId"] = f"s53200-ce{number}"
    for peripheral in device.status["Peripherals"]["ConnectedDevice"]:
        peripheral["SoftwareInfo"] = display_name
