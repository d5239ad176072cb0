"""The devices of a simulated Webex organisation, built from the documented fixture shapes.

Every device record is a copy of a ``/v1/devices`` item from ``data/webex/devices_list_page*.json``
(webex-device.json ``Device`` schema) with its identifiers made unique. Room devices also carry
the cloud xAPI status tree (``xapi_status_software.json`` + ``xapi_status_upgrade.json``) that
``GET /v1/xapi/status`` answers from, and the behaviour the fake needs: what version the cloud
"dictates" for an upgrade, whether that upgrade or a restart fails, how many status reads a reboot
keeps the device away. Progress advances per status read, not per second, so the tests that follow
an operation need no clock.
"""

from __future__ import annotations

import base64
import copy
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data" / "webex"
ORG_ID = "Y2lzY29zcGFyazovL3VzL09SR0FOSVpBVElPTi8wZjBlMGQwYy0xMTExLTQyMjItODMzMy05NDQ0NTU1NTY2NjY"

# Upgrade phases a device walks through, one per status read (schema 26.4.1 value sets).
UPGRADE_PHASES = ("DownloadPending", "Downloading", "DownloadDone", "AboutToInstallUpgrade", "Installing")


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def _webex_id(kind: str, value: uuid.UUID) -> str:
    """Webex ids are base64url of ``ciscospark://us/<KIND>/<uuid>``, padding stripped."""
    raw = f"ciscospark://us/{kind}/{value}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass
class FakeCloudDevice:
    record: dict[str, Any]
    status: dict[str, Any] = field(default_factory=dict)  # the xAPI status tree, rooms only
    next_software: str | None = None  # what "the cloud dictates" for Webex.Software.Upgrade
    upgrade_fails: bool = False
    restart_fails: bool = False  # Boot is accepted but the device never comes back
    reboot_reads: int = 2  # status reads answered 503 while the device reboots
    away: int = 0  # status reads left before it answers again
    phases: list[str] = field(default_factory=list)  # upgrade phases still to come
    commands: list[str] = field(default_factory=list)  # every xAPI command it received

    @property
    def id(self) -> str:
        return str(self.record["id"])

    @property
    def has_xapi(self) -> bool:
        return "xapi" in self.record.get("capabilities", [])

    def software(self) -> dict[str, Any]:
        unit: dict[str, Any] = self.status["SystemUnit"]
        return dict(unit["Software"])

    def upgrade_status(self) -> dict[str, Any]:
        software: dict[str, Any] = self.status["Provisioning"]["Software"]
        return dict(software["UpgradeStatus"])

    # --- behaviour ---------------------------------------------------------------------------

    def boot(self) -> None:
        self.away = 10**9 if self.restart_fails else self.reboot_reads
        self.record["connectionStatus"] = "disconnected"
        if not self.restart_fails:
            self.status["SystemUnit"]["Uptime"] = 0

    def start_upgrade(self) -> None:
        target = self.next_software
        state = self.status["Provisioning"]["Software"]["UpgradeStatus"]
        state.update(Status="InProgress", Phase=UPGRADE_PHASES[0], Message="", SessionId=str(uuid.uuid4()))
        if target is not None:
            state["VersionId"] = _version_id(target)
        self.phases = list(UPGRADE_PHASES[1:])

    def tick(self) -> None:
        """One status read went by: a rebooting device comes back, an upgrade moves one phase."""
        if self.away:
            self.away -= 1
            if not self.away:
                self.record["connectionStatus"] = "connected"
            return
        state = self.status["Provisioning"]["Software"]["UpgradeStatus"]
        if state.get("Status") != "InProgress":
            return
        if self.phases:
            state["Phase"] = self.phases.pop(0)
            return
        if self.upgrade_fails or self.next_software is None:
            state.update(Status="InstallationFailed", Phase="None", Message="Package verification failed")
            return
        self._install(self.next_software)
        state.update(Status="Succeeded", Phase="None", Message="")
        self.boot()

    def _install(self, display_name: str) -> None:
        number = display_name.split()[1] if " " in display_name else display_name
        build = display_name.split()[2] if display_name.count(" ") >= 2 else "0000000000a"
        software = self.status["SystemUnit"]["Software"]
        software.update(DisplayName=display_name, Version=f"ce{number}.{build}")
        self.status["Provisioning"]["Software"]["Current"]["VersionId"] = _version_id(display_name)
        self.record["software"] = display_name
        self.next_software = None


def _version_id(display_name: str) -> str:
    number = display_name.split()[1] if " " in display_name else display_name
    return f"s53200-ce{number}"


def make_org(rooms: int, phones: int = 0, *, prefix: str = "d") -> list[FakeCloudDevice]:
    """``rooms`` RoomOS devices (Room Kit shape, cloud xAPI) and ``phones`` MPP phones (8845
    shape, no xAPI, with a ``callingDeviceId``), with unique ids, serials and MACs."""
    room_template = load("devices_list_page1.json")["items"][0]
    phone_template = load("devices_list_page2.json")["items"][0]
    software = load("xapi_status_software.json")["result"]
    upgrade = load("xapi_status_upgrade.json")["result"]
    devices: list[FakeCloudDevice] = []
    for n in range(rooms + phones):
        is_room = n < rooms
        record = copy.deepcopy(room_template if is_room else phone_template)
        key = uuid.uuid5(uuid.NAMESPACE_URL, f"fernwart-fake/{prefix}/{n}")
        record["id"] = _webex_id("DEVICE", key)
        record["displayName"] = f"{'Raum' if is_room else 'Telefon'} {prefix}-{n:05d}"
        record["serial"] = f"FOC{n:08d}"[:11]
        record["mac"] = ":".join(
            f"{b:02X}" for b in (0x5C, 0xA6, 0x2D, (n >> 16) & 255, (n >> 8) & 255, n & 255)
        )
        device = FakeCloudDevice(record)
        if is_room:
            device.status = copy.deepcopy(software) | copy.deepcopy(upgrade)
            device.status["SystemUnit"]["Hardware"]["Module"]["SerialNumber"] = record["serial"]
            # [I] values; names from the RoomOS xAPI (Peripherals ConnectedDevice[n], Diagnostics Message[n]).
            device.status["Peripherals"] = {
                "ConnectedDevice": [
                    {
                        "Name": "Cisco Room Navigator",
                        "Type": "TouchPanel",
                        "SerialNumber": f"FOC{n:08d}N"[:12],
                        "SoftwareInfo": software["SystemUnit"]["Software"]["DisplayName"],
                        "Status": "Connected",
                    }
                ]
            }
            device.status["Diagnostics"] = {"Message": []}
        else:
            record["callingDeviceId"] = _webex_id("CALLING_DEVICE", key)
            record["webexDeviceId"] = record["id"]
        devices.append(device)
    return devices
