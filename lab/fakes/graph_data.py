"""The tenants a fake Graph serves: devices with Intune, detectedApp and teamworkDevice views.

Values are invented in the shapes of the reference fixtures (fixtures/intune, fixtures/graph);
:func:`fixture_tenant` reproduces those fixtures' devices, :func:`generated_tenant` makes any
number for the bench and the demo. Everything is deterministic (ids from the tenant and index).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

READ_ROLES = ("DeviceManagementManagedDevices.Read.All", "TeamworkDevice.Read.All")
OP_STEPS = {"queued": "inProgress"}  # then the device's update_outcome
ALL_ROLES = (
    "DeviceManagementManagedDevices.Read.All",
    "DeviceManagementManagedDevices.PrivilegedOperations.All",
    "TeamworkDevice.ReadWrite.All",
    "ServiceHealth.Read.All",
)


@dataclass
class FakeDevice:
    intune_id: str | None  # None: not enrolled in Intune (only the beta API knows it)
    name: str
    operating_system: str  # "Windows", "AndroidAOSP", "iOS"
    os_version: str
    manufacturer: str
    model: str
    serial: str
    compliance: str = "compliant"
    app_name: str | None = None  # Teams Rooms app display name as Intune reports it
    app_version: str | None = None
    teamwork_id: str | None = None
    device_type: str = "teamsRoom"
    health_status: str = "healthy"
    versions: dict[str, str] = field(default_factory=dict)  # teamwork softwareType → current version
    available: dict[str, str] = field(default_factory=dict)  # softwareType → availableVersion
    disconnected: set[str] = field(default_factory=set)  # peripheralsHealth keys reported disconnected
    reboot_outcome: str = "done"  # final actionState of a rebootNow: done | failed
    update_outcome: str = "successful"  # final status of an operation: successful | failed
    action_results: list[dict[str, Any]] = field(default_factory=list)

    def managed(self) -> dict[str, Any]:
        return {
            "id": self.intune_id,
            "deviceName": self.name,
            "operatingSystem": self.operating_system,
            "osVersion": self.os_version,
            "model": self.model,
            "manufacturer": self.manufacturer,
            "serialNumber": self.serial,
            "lastSyncDateTime": "2026-11-25T06:12:44Z",
            "complianceState": self.compliance,
            "managementAgent": "mdm",
            "azureADDeviceId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"aad/{self.intune_id}")),
            "ethernetMacAddress": "A4AE12" + self.serial[-6:].upper().rjust(6, "0")[:6],
            "wiFiMacAddress": None,
            "deviceActionResults": self.action_results,
        }


@dataclass
class FakeTenant:
    tenant_id: str
    client_id: str
    client_secret: str
    roles: tuple[str, ...] = ALL_ROLES
    devices: list[FakeDevice] = field(default_factory=list)
    operations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # teamwork id → ops

    def by_intune(self, intune_id: str) -> FakeDevice | None:
        return next((d for d in self.devices if d.intune_id == intune_id), None)

    def by_teamwork(self, teamwork_id: str) -> FakeDevice | None:
        return next((d for d in self.devices if d.teamwork_id == teamwork_id), None)


def _id(tenant: str, kind: str, n: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{tenant}.{kind}.{n}.fernwart.invalid"))


def fixture_tenant(
    tenant_id: str = "contoso.onmicrosoft.com",
    secret: str = "fixture-client-secret",  # noqa: S107 - a fake tenant's credentials
) -> FakeTenant:
    """The devices of the reference fixtures, plus a laptop and a phone that are no Teams devices."""
    lenovo = FakeDevice(
        "4b1f0c2e-7d3a-4e59-9a61-0c8d2f5e7a01",
        "MTR-BER-4OG-BOARDROOM",
        "Windows",
        "10.0.22631.4460",
        "LENOVO",
        "ThinkSmart Core",
        "PF3XQ7ZA",
        app_name="Microsoft Teams Rooms",
        app_version="5.4.88.0",
        teamwork_id="6c1a7e0b-2f44-4c1e-9d6a-1b2c3d4e5f01",
        versions={
            "teamsClient": "5.4.88.0",
            "adminAgent": "2024.12.4.1",
            "operatingSystem": "10.0.22631",
            "firmware": "1.0.33.0",
        },
        available={"teamsClient": "5.5.12.0"},
        action_results=[  # an earlier reboot, as in fixtures/intune/managed_devices_page1.json
            {
                "actionName": "rebootNow",
                "actionState": "done",
                "startDateTime": "2026-11-20T02:05:10Z",
                "lastUpdatedDateTime": "2026-11-20T02:09:37Z",
            }
        ],
        disconnected={"display2"},
    )
    logitech = FakeDevice(
        "8e2a6d71-1c4b-4f0a-b7e3-5d9c0a1f2b02",
        "MTR-MUC-2OG-HUDDLE3",
        "Windows",
        "10.0.22631.4317",
        "Logitech",
        "Tap Scheduler Room Kit",
        "2238LZ0Q7K19",
        compliance="noncompliant",
        app_name="Microsoft.SkypeRoomSystem",
        app_version="5.3.126.0",
    )
    yealink = FakeDevice(
        "c3d5e7f9-2a4b-4c6d-8e0f-1a3b5c7d9e03",
        "TEAMSPHONE-BER-EMPFANG",
        "AndroidAOSP",
        "12",
        "Yealink",
        "MP56",
        "8021A0B7C2E44",
        compliance="inGracePeriod",
        teamwork_id="6c1a7e0b-2f44-4c1e-9d6a-1b2c3d4e5f03",
        device_type="ipPhone",
        health_status="critical",
        versions={
            "teamsClient": "1449/1.0.94.2024101703",
            "firmware": "122.15.0.142",
            "operatingSystem": "Android 9",
        },
    )
    bar = FakeDevice(
        None,
        "Konferenz Raum 3.01",
        "AndroidAOSP",
        "10",
        "yealink",
        "MeetingBar A30",
        "8031A0000002",
        teamwork_id="6c1a7e0b-2f44-4c1e-9d6a-1b2c3d4e5f02",
        device_type="collaborationBar",
        health_status="nonUrgent",
        versions={"teamsClient": "1449/1.0.96.2024080804", "firmware": "133.15.0.20"},
    )
    laptop = FakeDevice(
        "11111111-0000-4000-8000-00000000a001",
        "NB-BER-0042",
        "Windows",
        "10.0.26100.2314",
        "Dell Inc.",
        "Latitude 7450",
        "DL7450X01",
    )
    iphone = FakeDevice(
        "11111111-0000-4000-8000-00000000a002", "iPhone-Anna", "iOS", "18.1", "Apple", "iPhone 15", "F2LX0001"
    )
    return FakeTenant(
        tenant_id,
        "9a1b2c3d-0000-4000-8000-00000000fe01",
        secret,
        devices=[lenovo, logitech, yealink, bar, laptop, iphone],
    )


def _room(tenant_id: str, n: int, *, teamwork: bool) -> FakeDevice:
    version = ("5.2.115.0", "5.1.28.0", "5.0.305.0")[n % 3]
    return FakeDevice(
        _id(tenant_id, "mtr", n),
        f"MTR-{n:04d}",
        "Windows",
        "10.0.22631.4460",
        "LENOVO",
        "ThinkSmart Core",
        f"PF{n:06d}",
        app_name=("Microsoft Teams Rooms", "Microsoft.SkypeRoomSystem")[n % 2],
        app_version=version,
        teamwork_id=_id(tenant_id, "tw-mtr", n) if teamwork else None,
        versions={"teamsClient": version, "adminAgent": "2024.12.4.1"},
    )


def _phone(tenant_id: str, n: int, *, teamwork: bool) -> FakeDevice:
    return FakeDevice(
        _id(tenant_id, "phone", n),
        f"PHONE-{n:04d}",
        "AndroidAOSP",
        "12",
        "Yealink",
        "MP56",
        f"80{n:08d}",
        teamwork_id=_id(tenant_id, "tw-phone", n) if teamwork else None,
        device_type="ipPhone",
        versions={"teamsClient": "1449/1.0.94.2024101703", "firmware": "122.15.0.142"},
    )


def _laptop(tenant_id: str, n: int) -> FakeDevice:
    return FakeDevice(
        _id(tenant_id, "nb", n),
        f"NB-{n:04d}",
        "Windows",
        "10.0.26100.2314",
        "Dell Inc.",
        "Latitude",
        f"DL{n:06d}",
    )


def generated_tenant(
    tenant_id: str,
    *,
    rooms: int,
    android: int,
    others: int = 0,
    teamwork: bool = True,
    secret: str = "s3cret",  # noqa: S107 - a fake tenant's credentials
) -> FakeTenant:
    """``rooms`` Teams Rooms on Windows, ``android`` Teams phones, ``others`` laptops."""
    devices = [_room(tenant_id, n, teamwork=teamwork) for n in range(rooms)]
    devices += [_phone(tenant_id, n, teamwork=teamwork) for n in range(android)]
    devices += [_laptop(tenant_id, n) for n in range(others)]
    return FakeTenant(tenant_id, str(uuid.uuid5(uuid.NAMESPACE_DNS, tenant_id)), secret, devices=devices)


def advance_operation(device: FakeDevice, op: dict[str, Any]) -> None:
    """One read, one step: queued → inProgress → successful|failed. A successful software update
    installs the requested version."""
    if op["status"] in OP_STEPS:
        op["status"] = OP_STEPS[op["status"]]
        op["startedDateTime"] = now_iso()
        return
    if op["status"] != "inProgress":
        return
    op["status"] = device.update_outcome
    op["completedDateTime"] = now_iso()
    if device.update_outcome == "failed":
        op["error"] = {"code": "SoftwareUpdateFailed", "message": "The device could not install the update."}
        return
    request = op.get("_request") or {}
    kind, version = request.get("softwareType"), request.get("softwareVersion")
    if kind and version:
        device.versions[kind] = version
        device.available.pop(kind, None)
        if kind == "teamsClient" and device.app_name:
            device.app_version = version


def detected_apps(tenant: FakeTenant) -> list[dict[str, Any]]:
    """One detectedApp per (displayName, version), with the devices that have it."""
    grouped: dict[tuple[str, str], list[FakeDevice]] = {}
    for device in tenant.devices:
        if device.intune_id and device.app_name and device.app_version:
            grouped.setdefault((device.app_name, device.app_version), []).append(device)
    apps = []
    for (name, version), devices in sorted(grouped.items()):
        app_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant.tenant_id}/{name}/{version}").hex.ljust(64, "0")
        apps.append(
            {
                "id": app_id,
                "displayName": name,
                "version": version,
                "sizeInByte": 0,
                "deviceCount": len(devices),
                "publisher": "Microsoft Corporation" if "." not in name else "",
                "platform": "windows",
                "_devices": devices,
            }
        )
    return apps


def now_iso() -> str:
    """UTC now, to the nanosecond: two operations started in one second stay apart."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{time.time_ns() % 1_000_000_000:09d}Z"
