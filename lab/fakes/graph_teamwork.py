"""teamworkDevice and teamworkDeviceHealth bodies of a fake device (fixtures/graph shapes)."""

from __future__ import annotations

from typing import Any

from lab.fakes.graph_data import FakeDevice

_STAMP = "2026-12-05T06:40:12.004Z"
_PERIPHERALS = (
    "roomCameraHealth",
    "contentCameraHealth",
    "speakerHealth",
    "communicationSpeakerHealth",
    "microphoneHealth",
)


def _conn(status: str) -> dict[str, str]:
    return {"connectionStatus": status, "lastModifiedDateTime": _STAMP}


def teamwork_body(device: FakeDevice) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.teamworkDevice",
        "id": device.teamwork_id,
        "deviceType": device.device_type,
        "hardwareDetail": {
            "serialNumber": device.serial,
            "uniqueId": device.serial.lower() + "-uid",
            "macAddresses": [
                "24:9A:D8:" + ":".join(device.serial[-6:].upper().rjust(6, "0")[i : i + 2] for i in (0, 2, 4))
            ],
            "manufacturer": device.manufacturer.lower(),
            "model": device.model,
        },
        "notes": None,
        "companyAssetTag": None,
        "healthStatus": device.health_status,
        "activityState": "idle",
        "createdDateTime": "2024-03-11T08:15:02.113Z",
        "createdBy": None,
        "lastModifiedDateTime": _STAMP,
        "lastModifiedBy": None,
        "currentUser": {
            "id": "0b8f2c6e-1d2a-4b7c-9e11-2233aabbcc01",
            "displayName": device.name,
            "userIdentityType": "aadUser",
        },
    }


def health_body(device: FakeDevice) -> dict[str, Any]:
    def peripheral(key: str, optional: bool = False) -> dict[str, Any]:
        return {
            "isOptional": optional,
            "connection": _conn("disconnected" if key in device.disconnected else "connected"),
        }

    software = {}
    for kind in ("adminAgent", "companyPortal", "firmware", "operatingSystem", "partnerAgent", "teamsClient"):
        current = device.versions.get(kind)
        available = device.available.get(kind)
        software[f"{kind}SoftwareUpdateStatus"] = (
            None
            if current is None
            else {
                "softwareFreshness": "updateAvailable" if available else "latest",
                "currentVersion": current,
                "availableVersion": available,
            }
        )
    online = "disconnected" if device.health_status == "offline" else "connected"
    return {
        "@odata.type": "#microsoft.graph.teamworkDeviceHealth",
        "id": device.teamwork_id,
        "connection": _conn(online),
        "loginStatus": {
            "exchangeConnection": _conn("connected"),
            "teamsConnection": _conn(online),
            "skypeConnection": _conn("unknown"),
        },
        "peripheralsHealth": {
            **{key: peripheral(key, key == "contentCameraHealth") for key in _PERIPHERALS},
            "displayHealthCollection": [peripheral("display1"), peripheral("display2", optional=False)],
        },
        "softwareUpdateHealth": software,
        "hardwareHealth": {"computeHealth": peripheral("compute"), "hdmiIngestHealth": peripheral("hdmi")},
        "createdDateTime": "2024-03-11T08:15:02.113Z",
        "lastModifiedDateTime": _STAMP,
        "createdBy": None,
        "lastModifiedBy": None,
    }
