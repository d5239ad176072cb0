"""Graph answers → :class:`~collector.model.Observation`. Pure functions, no I/O.

Sources (vendor-update-paths.md §1, vendor-apis.md §1.5): Intune ``managedDevice`` (v1.0) for
identity, OS and compliance; ``detectedApp`` (v1.0) for the Teams Rooms app version; where the
tenant still answers it, the beta ``teamworkDevice`` and its ``health`` for peripherals, sign-in
and per-component versions. Enums are compared case-insensitively (the docs show both
``healthy`` and ``Healthy``) and unknown members map to ``unknown``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from collector.model import (
    Health,
    HealthReason,
    HealthStatus,
    Identity,
    Observation,
    Peripheral,
    Severity,
    SoftwareComponent,
)

TEAMS_ROOMS = "teams-rooms"  # Teams Rooms on Windows: the app's family and version scheme
TEAMS_ANDROID = "teams-android"  # Teams Android devices: the Teams app's family and scheme
INTUNE_CONSOLE = "https://intune.microsoft.com/#view/Microsoft_Intune_Devices/DeviceSettingsMenuBlade/~/overview/mdmDeviceId/{id}"
TAC_CONSOLE = "https://admin.teams.microsoft.com/devices"
_FIRMWARE_SCHEMES = {"yealink": "yealink", "poly": "poly", "polycom": "poly"}
_MAC = re.compile(r"^[0-9A-Fa-f]{12}$")

# teamworkSoftwareUpdateStatus members → (component name per family, scheme per family)
_SOFTWARE = {
    "adminAgent": ("admin_agent", "generic"),
    "companyPortal": ("company_portal", "generic"),
    "operatingSystem": ("os", "generic"),
    "partnerAgent": ("partner_agent", "generic"),
}


@dataclass(frozen=True)
class DeviceRef:
    """What the actions need to know about a device from the last collect."""

    device_id: str
    family: str
    name: str
    intune_id: str | None
    teamwork_id: str | None
    console_url: str | None


def text(value: Any, limit: int = 1024) -> str | None:
    return value[:limit] if isinstance(value, str) and value.strip() else None


def lower(value: Any) -> str:
    return value.lower() if isinstance(value, str) else ""


def unwrap(body: Any) -> Mapping[str, Any]:
    """The documented health and operation examples wrap the entity in ``{"value": {...}}``; real
    answers usually do not. Accept both."""
    if isinstance(body, Mapping):
        inner = body.get("value")
        return inner if isinstance(inner, Mapping) else body
    return {}


def family_of(managed: Mapping[str, Any], *, has_app: bool, android_makers: frozenset[str]) -> str | None:
    """``teams-rooms``, ``teams-android`` or None (an Intune device that is no Teams device)."""
    system = lower(managed.get("operatingSystem"))
    if system.startswith("windows"):
        return TEAMS_ROOMS if has_app else None
    if system.startswith("android") and lower(managed.get("manufacturer")) in android_makers:
        return TEAMS_ANDROID
    return None


def teams_app_component(family: str, version: str) -> SoftwareComponent:
    name = "teams_rooms_app" if family == TEAMS_ROOMS else "teams_android_app"
    return SoftwareComponent(name=name, version=version[:1024], scheme=family)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _macs(*values: Any) -> list[str]:
    found = []
    for value in values:
        raw = value.replace(":", "").replace("-", "") if isinstance(value, str) else ""
        if _MAC.match(raw):
            found.append(":".join(raw[i : i + 2] for i in range(0, 12, 2)).upper())
    return found


def _connection(obj: Any) -> str | None:
    if isinstance(obj, Mapping):
        conn = obj.get("connection", obj)
        if isinstance(conn, Mapping):
            return text(conn.get("connectionStatus"), 64)
    return None


def peripherals(health: Mapping[str, Any]) -> tuple[list[Peripheral], list[HealthReason]]:
    """``peripheralsHealth`` → peripherals, and a reason per required one that is disconnected."""
    found: list[Peripheral] = []
    reasons: list[HealthReason] = []
    section = health.get("peripheralsHealth")
    if not isinstance(section, Mapping):
        return found, reasons
    kinds = {
        "roomCameraHealth": "camera",
        "contentCameraHealth": "content_camera",
        "speakerHealth": "speaker",
        "communicationSpeakerHealth": "communication_speaker",
        "microphoneHealth": "microphone",
    }
    items: list[tuple[str, str, Any]] = [(kind, kind, section.get(key)) for key, kind in kinds.items()]
    displays = section.get("displayHealthCollection")
    if isinstance(displays, list):
        items += [("display", f"display {n}", d) for n, d in enumerate(displays, 1)]
    for kind, name, item in items:
        if not isinstance(item, Mapping):
            continue
        status = lower(_connection(item))
        connected = {"connected": True, "disconnected": False}.get(status)
        found.append(Peripheral(kind=kind, name=name, connected=connected))
        if connected is False and item.get("isOptional") is not True:
            reasons.append(HealthReason(code="peripheral_disconnected", message=f"{name} is disconnected"))
    return found, reasons


def teamwork_software(
    family: str, manufacturer: str, health: Mapping[str, Any]
) -> tuple[list[SoftwareComponent], dict[str, str]]:
    """Components from ``softwareUpdateHealth``, and ``available.<name>`` for each with an update."""
    components: list[SoftwareComponent] = []
    available: dict[str, str] = {}
    section = health.get("softwareUpdateHealth")
    if not isinstance(section, Mapping):
        return components, available
    for key, status in section.items():
        if not key.endswith("SoftwareUpdateStatus") or not isinstance(status, Mapping):
            continue
        kind = key.removesuffix("SoftwareUpdateStatus")
        current = text(status.get("currentVersion"))
        if current is None:
            continue
        if kind == "teamsClient":
            component = teams_app_component(family, current)
        elif kind == "firmware" and family == TEAMS_ANDROID:
            # The OEM firmware of a Teams phone or bar is the device's firmware (Yealink, Poly schemes).
            scheme = _FIRMWARE_SCHEMES.get(manufacturer, "generic")
            component = SoftwareComponent(name="firmware", version=current, scheme=scheme)
        elif kind == "firmware":
            # On a Teams Room PC it is the compute module's firmware, not what the catalog knows the
            # room by (the app): not "firmware", so it is never matched as the device's version.
            component = SoftwareComponent(name="device_firmware", version=current, scheme="generic")
        elif kind in _SOFTWARE:
            name, scheme = _SOFTWARE[kind]
            component = SoftwareComponent(name=name, version=current, scheme=scheme)
        else:
            continue  # a member added after this was written
        components.append(component)
        newer = text(status.get("availableVersion"))
        if newer and lower(status.get("softwareFreshness")) == "updateavailable":
            available[f"available.{component.name}"] = newer
    return components, available


_TEAMWORK_HEALTH = {
    "healthy": (HealthStatus.OK, None),
    "nonurgent": (HealthStatus.DEGRADED, Severity.WARNING),
    "critical": (HealthStatus.DEGRADED, Severity.CRITICAL),
    "offline": (HealthStatus.DOWN, Severity.CRITICAL),
}


@dataclass(frozen=True)
class Teamwork:
    """The beta teamworkDevice view of one device, where the tenant still answers it."""

    device: Mapping[str, Any]
    health: Mapping[str, Any]


def build_observation(
    ref: DeviceRef,
    managed: Mapping[str, Any] | None,
    *,
    app_version: str | None,
    teamwork: Teamwork | None,
    observed_at: datetime,
    errors: list[str],
) -> Observation:
    """One device: Intune's ``managedDevice`` (None for a device only the beta API knows)."""
    md = managed or {}
    hardware = teamwork.device.get("hardwareDetail") if teamwork else None
    hw: Mapping[str, Any] = hardware if isinstance(hardware, Mapping) else {}
    manufacturer = lower(md.get("manufacturer") or hw.get("manufacturer")) or "unknown"
    software: list[SoftwareComponent] = []
    raw: dict[str, str] = {}
    if text(md.get("osVersion")):
        software.append(SoftwareComponent(name="os", version=str(md["osVersion"])[:1024], scheme="generic"))
    if app_version:
        software.append(teams_app_component(ref.family, app_version))
    reasons: list[HealthReason] = []
    status = HealthStatus.UNKNOWN
    connection = sign_in = None
    found_peripherals: list[Peripheral] = []
    if teamwork is not None:
        extra, available = teamwork_software(ref.family, manufacturer, teamwork.health)
        have = {c.name for c in software}
        software += [c for c in extra if c.name not in have]
        raw.update(available)
        status, severity = _TEAMWORK_HEALTH.get(
            lower(teamwork.device.get("healthStatus")), (HealthStatus.UNKNOWN, None)
        )
        if severity is not None:
            reasons.append(
                HealthReason(
                    code="teams_health",
                    message=f"Teams device health: {teamwork.device.get('healthStatus')}",
                    severity=severity,
                )
            )
        connection = _connection(teamwork.health)
        login = teamwork.health.get("loginStatus")
        sign_in = _connection(login.get("teamsConnection")) if isinstance(login, Mapping) else None
        found_peripherals, peripheral_reasons = peripherals(teamwork.health)
        reasons += peripheral_reasons
    compliance = lower(md.get("complianceState"))
    if compliance in {"noncompliant", "error", "conflict"}:
        reasons.append(
            HealthReason(code="intune_noncompliant", message=f"Intune compliance: {md['complianceState']}")
        )
    if reasons and status in {HealthStatus.OK, HealthStatus.UNKNOWN}:
        status = HealthStatus.DEGRADED
    for key in (
        "complianceState",
        "managementAgent",
        "lastSyncDateTime",
        "operatingSystem",
        "azureADDeviceId",
    ):
        if text(md.get(key)):
            raw[key] = str(md[key])[:8192]
    return Observation(
        device_id=ref.device_id,
        driver="graph",
        observed_at=observed_at,
        reachable=lower(connection) != "disconnected",
        identity=Identity(
            vendor=manufacturer,
            family=ref.family,
            model=text(md.get("model") or hw.get("model")) or "unknown",
            serial=text(md.get("serialNumber") or hw.get("serialNumber")),
            macs=_macs(
                md.get("ethernetMacAddress"), md.get("wiFiMacAddress"), *_list(hw.get("macAddresses"))
            ),
            hostname=ref.name or None,
        ),
        software=software,
        health=Health(status=status, reasons=reasons[:64]),
        peripherals=found_peripherals,
        raw=raw,
        errors=[e[:1024] for e in errors[:64]],
        management="intune" if managed is not None else "teams",
        connection=connection,
        sign_in=sign_in,
        console_url=ref.console_url,
    )
