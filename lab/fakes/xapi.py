"""A fake on-premises RoomOS codec: the HTTP XML API on loopback, for tests and ``make demo``.

Routes (cisco-ce/roomos.cisco.com ``doc/TechDocs/HttpApi.md``; vendor-update-paths.md §4):
``GET /status.xml`` (the whole status tree, root ``<Status product="Cisco Codec" version="ce…"
apiVersion="4">``), ``GET /getxml?location=/Status/…`` (a subtree) and ``POST /putxml`` with a
``<Command>…</Command>`` body, all behind HTTP Basic auth. Multi-instance nodes carry ``item="n"``.

Like the device (RoomOS 26 release notes, "HTTP Rate limiting"), requests with Basic auth are
served one per ``interval_s`` from a queue of ``queue_size``; past the queue it answers 503. A
restart drops the next ``reboot_requests`` connections (the device is away), then answers with a
reset uptime. An upgrade (``SystemUnit SoftwareUpgrade URL:``) moves one phase per status read and
ends ``Succeeded`` with the new version installed, or ``Failed`` when told to fail.
[I] The result element of a command (``<BootResult status="OK"/>``) follows the pattern the XML
API uses for every command; the exact names are not in the reference.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

UPGRADE_PHASES = ("Downloading", "DownloadDone", "Installing")
_PACKAGE_VERSION = re.compile(r"ce(\d+)_(\d+)_(\d+)_(\d+)", re.IGNORECASE)


def default_tree(version: str = "11.17.1.7", serial: str = "FOC2433P1DK") -> dict[str, Any]:
    return {
        "SystemUnit": {
            "ProductId": "Cisco Room Kit Pro",
            "ProductPlatform": "Room Kit Pro",
            "ProductType": "Cisco Codec",
            "Uptime": 482113,
            "Software": {
                "DisplayName": f"RoomOS {version} 2c3f1a9b0e4",
                "Name": "s53200",
                "ReleaseDate": "2024-07-15",
                "Version": f"ce{version}.2c3f1a9b0e4",
            },
            "Hardware": {"Module": {"SerialNumber": serial}},
        },
        "Provisioning": {
            "Software": {
                "Current": {
                    "VersionId": f"s53200-ce{version}",
                    "URL": "",
                    "CompletedAt": "2025-09-20T01:14:33Z",
                },
                "UpgradeStatus": {
                    "LastChange": "2025-09-20T01:14:33Z",
                    "Message": "",
                    "Phase": "None",
                    "SessionId": "",
                    "Status": "Succeeded",
                    "URL": "",
                    "VersionId": f"s53200-ce{version}",
                },
            }
        },
        "Peripherals": {
            "ConnectedDevice": [
                {
                    "ID": "00:50:60:83:A1:0B",
                    "Name": "Cisco Room Navigator",
                    "Type": "TouchPanel",
                    "SerialNumber": "FOC2447N1RN",
                    "SoftwareInfo": f"RoomOS {version} 2c3f1a9b0e4",
                    "Status": "Connected",
                    "UpgradeStatus": "None",
                },
                {
                    "ID": "5C:A6:2D:00:11:22",
                    "Name": "Cisco Quad Camera",
                    "Type": "Camera",
                    "SerialNumber": "FOC2344Q1CA",
                    "SoftwareInfo": "HC11.17.1.7",
                    "Status": "Connected",
                    "UpgradeStatus": "None",
                },
            ]
        },
        "Diagnostics": {
            "Message": [
                {
                    "Type": "NetworkQuality",
                    "Level": "Warning",
                    "Description": "Packet loss on the main video stream",
                }
            ]
        },
    }


def to_xml(tree: dict[str, Any], root: str = "Status", **attrs: str) -> bytes:
    element = ET.Element(root, attrs)
    _fill(element, tree)
    return b'<?xml version="1.0"?>\n' + ET.tostring(element)


def _fill(element: ET.Element, tree: dict[str, Any]) -> None:
    for key, value in tree.items():
        items = value if isinstance(value, list) else [value]
        for n, item in enumerate(items, 1):
            child = ET.SubElement(element, key, {"item": str(n)} if isinstance(value, list) else {})
            if isinstance(item, dict):
                _fill(child, item)
            else:
                child.text = str(item)


@dataclass
class XapiFaults:
    interval_s: float = 1.0  # one authenticated request per interval (RoomOS 26: 1/s)
    queue_size: int = 30  # queued requests past this answer 503
    reboot_requests: int = 2  # connections dropped after a restart
    upgrade_fails: bool = False
    restart_fails: bool = False  # Boot answers status="Error"
    malformed: bool = False  # status answers are truncated XML
    slow_s: float = 0.0


@dataclass
class FakeCodec:
    user: str = "admin"
    password: str = "fake-codec-password"  # noqa: S105 - a fake's fixed credential
    tree: dict[str, Any] = field(default_factory=default_tree)
    faults: XapiFaults = field(default_factory=XapiFaults)
    requests: Counter[str] = field(default_factory=Counter)
    rejected_503: int = 0
    commands: list[str] = field(default_factory=list)
    _next_slot: float = 0.0
    _away: int = 0
    _phases: list[str] = field(default_factory=list)
    _target: str | None = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/status.xml", self._status_xml)
        app.router.add_get("/getxml", self._getxml)
        app.router.add_post("/putxml", self._putxml)
        return app

    @property
    def version(self) -> str:
        return str(self.tree["SystemUnit"]["Software"]["Version"])

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests[f"{request.method} {request.path}"] += 1
        if self._away:
            self._away -= 1
            if request.transport is not None:
                request.transport.close()  # the codec is rebooting: nothing answers
            raise web.HTTPServiceUnavailable
        expected = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="codec"'})
        now = time.monotonic()
        slot = max(now, self._next_slot)
        if (slot - now) / self.faults.interval_s > self.faults.queue_size:
            self.rejected_503 += 1
            return web.Response(status=503, text="Service Unavailable: request queue full")
        self._next_slot = slot + self.faults.interval_s
        await asyncio.sleep(slot - now + self.faults.slow_s)
        response: web.StreamResponse = await handler(request)
        return response

    def _status_response(self, tree: dict[str, Any]) -> web.Response:
        # Rendered before the state moves on: the read that ends an upgrade still shows its last
        # phase, and the codec reboots into the new version after it.
        body = to_xml(tree, product="Cisco Codec", version=self.version, apiVersion="4")
        self._tick()
        if self.faults.malformed:
            body = body[: len(body) // 2]
        return web.Response(body=body, content_type="text/xml")

    async def _status_xml(self, _request: web.Request) -> web.Response:
        return self._status_response(self.tree)

    async def _getxml(self, request: web.Request) -> web.Response:
        parts = [p for p in request.query.get("location", "").split("/") if p]
        if not parts or parts[0] != "Status":
            return _command_error("getxml", "No match on address expression")
        tree: Any = self.tree
        for part in parts[1:]:
            if not isinstance(tree, dict) or part not in tree:
                return _command_error("getxml", "No match on address expression")
            tree = tree[part]
        wrapped = tree
        for part in reversed(parts[1:]):
            wrapped = {part: wrapped}
        return self._status_response(wrapped)

    async def _putxml(self, request: web.Request) -> web.Response:  # noqa: PLR0911 - one per command
        try:
            root = ET.fromstring(await request.read())  # noqa: S314 - loopback fake, our own client
        except ET.ParseError:
            return web.Response(status=400, text="Malformed XML")
        # Command words are elements with children or no text; arguments are leaves with text.
        path: list[str] = []
        node = root
        while len(node) and (len(node[0]) or not (node[0].text or "").strip()):
            node = node[0]
            path.append(node.tag)
        name = ".".join(path)
        self.commands.append(name)
        arguments = {child.tag: (child.text or "") for child in node}
        if name == "SystemUnit.Boot":
            if self.faults.restart_fails:
                return _command_error("Boot", "Restart refused: a call is in progress")
            self._reboot()
            return _command_ok("Boot")
        if name == "SystemUnit.SoftwareUpgrade":
            url = arguments.get("URL", "")
            if not url:
                return _command_error("SoftwareUpgrade", "Invalid or missing parameters: URL")
            self._start_upgrade(url)
            return _command_ok("SoftwareUpgrade")
        if name == "Logging.SendLogs":
            return _command_ok("SendLogs", LogId=f"fake-log-{len(self.commands):04d}")
        return _command_error(node.tag, "Unknown command")

    # --- behaviour ---------------------------------------------------------------------------

    def _reboot(self) -> None:
        self._away = self.faults.reboot_requests
        self.tree["SystemUnit"]["Uptime"] = 0

    def _start_upgrade(self, url: str) -> None:
        found = _PACKAGE_VERSION.search(url)
        self._target = ".".join(found.groups()) if found else None
        state = self.tree["Provisioning"]["Software"]["UpgradeStatus"]
        state.update(Status="InProgress", Phase="DownloadPending", URL=url, Message="")
        self._phases = list(UPGRADE_PHASES)

    def _tick(self) -> None:
        state = self.tree["Provisioning"]["Software"]["UpgradeStatus"]
        if state["Status"] != "InProgress":
            return
        if self._phases:
            state["Phase"] = self._phases.pop(0)
            return
        if self.faults.upgrade_fails or self._target is None:
            state.update(Status="Failed", Phase="None", Message="Download failed: HTTP 404 from package host")
            return
        version = self._target
        software = self.tree["SystemUnit"]["Software"]
        software.update(DisplayName=f"RoomOS {version} 5e1d2c3b4a0", Version=f"ce{version}.5e1d2c3b4a0")
        self.tree["Provisioning"]["Software"]["Current"]["VersionId"] = f"s53200-ce{version}"
        state.update(Status="Succeeded", Phase="None", VersionId=f"s53200-ce{version}")
        self._reboot()


def _command_ok(name: str, **values: str) -> web.Response:
    return _command_result(name, "OK", values)


def _command_error(name: str, reason: str) -> web.Response:
    return _command_result(name, "Error", {"Reason": reason})


def _command_result(name: str, status: str, values: dict[str, str]) -> web.Response:
    root = ET.Element("Command")
    result = ET.SubElement(root, f"{name}Result", {"status": status})
    for key, value in values.items():
        ET.SubElement(result, key).text = value
    return web.Response(body=b'<?xml version="1.0"?>\n' + ET.tostring(root), content_type="text/xml")
