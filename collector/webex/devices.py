"""A ``/v1/devices`` item (webex-device.json ``Device``) in our model. Pure functions, no I/O.

Our device id is ``webex-<uuid>`` from the Webex id (base64url of ``ciscospark://us/DEVICE/<uuid>``):
stable, short, and made of the characters a topic allows (the raw id has ``_`` and is ~100
characters). Unknown enum values are kept as the vendor's words, lower-cased (vendor-apis.md §2.2).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Any

from collector.model import Health, HealthReason, HealthStatus, Identity, Severity, SoftwareComponent
from collector.xapi.status import Firmware, mpp_firmware, roomos_firmware

_UUID = re.compile(r"/([0-9a-fA-F-]{36})$")
_CONNECTED = frozenset({"connected", "connected_with_issues"})
_DOWN = frozenset({"disconnected", "offline_expired", "offline_deep_sleep"})
PHONE_SCHEME = "cisco-phone"


def device_id(webex_id: str) -> str:
    """``webex-<uuid>`` from a Webex device id; a hash of the id when it does not decode."""
    try:
        decoded = base64.urlsafe_b64decode(webex_id + "=" * (-len(webex_id) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        decoded = ""
    found = _UUID.search(decoded)
    if found:
        return f"webex-{found[1].lower()}"
    return "webex-" + hashlib.sha256(webex_id.encode()).hexdigest()[:32]


def software(record: dict[str, Any]) -> Firmware | None:
    """RoomOS/CE (``RoomOS 11.17.1.7 …``), MPP (``sip8845_65.14-2-1MPP…``) or enterprise SIP
    firmware (``sip88xx.14-2-1-0001-14``, family ``sip``); ``None`` when absent or unknown."""
    raw = record.get("software")
    if not isinstance(raw, str) or not raw.strip():
        return None
    found = roomos_firmware(raw) or mpp_firmware(raw)
    if found is not None:
        return found
    if raw.lower().startswith("sip") and "." in raw:
        return Firmware(raw.split(".", 1)[1], PHONE_SCHEME, "sip")
    return Firmware(raw.strip(), None, "unknown")


def has_xapi(record: dict[str, Any], *, write: bool) -> bool:
    """The device speaks cloud xAPI and the caller may read (``xapi:readonly``) or run commands
    (``xapi:all``) on it."""
    if "xapi" not in (record.get("capabilities") or []):
        return False
    granted = set(record.get("permissions") or [])
    return "xapi:all" in granted if write else bool(granted & {"xapi:all", "xapi:readonly"})


def connection(record: dict[str, Any]) -> str:
    return str(record.get("connectionStatus") or "unknown").lower()


def is_connected(record: dict[str, Any]) -> bool:
    return connection(record) in _CONNECTED


def identity(record: dict[str, Any], found: Firmware | None) -> Identity:
    mac = record.get("mac")
    return Identity(
        vendor="cisco",
        family=found.family if found else "unknown",
        model=str(record.get("product") or "unknown")[:1024],
        serial=record.get("serial") or None,
        macs=[mac.lower()[:32]] if isinstance(mac, str) and mac else [],
        hostname=record.get("displayName") or None,
    )


def components(found: Firmware | None) -> list[SoftwareComponent]:
    if found is None:
        return []
    return [SoftwareComponent(name="firmware", version=found.version[:1024], scheme=found.scheme)]


def health(record: dict[str, Any]) -> Health:
    state = connection(record)
    reasons = [
        HealthReason(code=f"webex_{code}"[:64], message=f"Webex reports error code {code}"[:1024])
        for code in (record.get("errorCodes") or [])[:63]
        if isinstance(code, str)
    ]
    if state in _DOWN:
        reasons.insert(
            0,
            HealthReason(
                code="webex_offline", message=f"connectionStatus {state}", severity=Severity.CRITICAL
            ),
        )
        return Health(status=HealthStatus.DOWN, reasons=reasons)
    if state == "connected" and not reasons:
        return Health(status=HealthStatus.OK)
    if state in _CONNECTED:
        return Health(status=HealthStatus.DEGRADED, reasons=reasons)
    return Health(status=HealthStatus.UNKNOWN, reasons=reasons)


def raw_fields(record: dict[str, Any]) -> dict[str, str]:
    keep = ("id", "software", "type", "devicePlatform", "workspaceId", "callingDeviceId", "ip", "managedBy")
    return {f"webex_{k}"[:64]: str(record[k])[:8192] for k in keep if record.get(k)}
