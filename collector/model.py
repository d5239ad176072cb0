"""The normalized observation every driver fills.

A driver (SNMP, Graph, Intune, Webex cloud, xAPI, host) reads its device and fills one
:class:`Observation`. Everything downstream — the wire, the store, the catalog matcher and the
console — sees only this shape and never cares which driver spoke.

Pure pydantic, no I/O. Datetimes are aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# Identifiers appear in MQTT topics: no wildcards, no slashes, no whitespace.
IDENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
SiteId = Annotated[str, StringConstraints(pattern=IDENT_PATTERN)]
DeviceId = Annotated[str, StringConstraints(pattern=IDENT_PATTERN)]
AgentId = Annotated[str, StringConstraints(pattern=IDENT_PATTERN)]
ShortText = Annotated[str, StringConstraints(max_length=1024)]
LongText = Annotated[str, StringConstraints(max_length=8192)]


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HealthStatus(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    DOWN = "down"
    UNKNOWN = "unknown"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class HealthReason(_Model):
    """Why a device is not simply ``ok``: a stable code for machines, a message for people."""

    code: Annotated[str, StringConstraints(max_length=64)]
    message: ShortText
    severity: Severity = Severity.WARNING


class Health(_Model):
    status: HealthStatus = HealthStatus.UNKNOWN
    reasons: list[HealthReason] = Field(default_factory=list, max_length=64)


class Identity(_Model):
    """Who the device is. ``vendor``/``family``/``model`` are ``unknown`` when not recognised;
    the raw strings that failed to match stay in :attr:`Observation.raw`."""

    vendor: ShortText = "unknown"
    family: ShortText = "unknown"  # e.g. "roomos", "ce", "mpp", "yealink-teams", "poly-teams"
    model: ShortText = "unknown"
    serial: ShortText | None = None
    macs: list[Annotated[str, StringConstraints(max_length=32)]] = Field(default_factory=list, max_length=64)
    hostname: ShortText | None = None
    location: ShortText | None = None
    contact: ShortText | None = None


class SoftwareComponent(_Model):
    """One versioned piece of software. ``name`` says which (``firmware``, ``teams_app``, …);
    ``scheme`` names the version scheme the catalog should parse it with, when known."""

    name: Annotated[str, StringConstraints(max_length=64)]
    version: ShortText
    scheme: Annotated[str, StringConstraints(max_length=32)] | None = None


class Interface(_Model):
    index: int
    name: ShortText | None = None
    descr: ShortText | None = None
    type: int | None = None
    mtu: int | None = None
    speed_bps: int | None = None
    mac: Annotated[str, StringConstraints(max_length=32)] | None = None
    admin_up: bool | None = None
    oper_up: bool | None = None
    in_octets: int | None = None
    out_octets: int | None = None
    in_errors: int | None = None
    out_errors: int | None = None


class Peripheral(_Model):
    kind: Annotated[str, StringConstraints(max_length=64)]  # camera, microphone, touch_panel, display, …
    name: ShortText | None = None
    model: ShortText | None = None
    serial: ShortText | None = None
    software_version: ShortText | None = None
    connected: bool | None = None


class Observation(_Model):
    """One read of one device by one driver."""

    device_id: DeviceId
    driver: Annotated[str, StringConstraints(max_length=32)]
    observed_at: datetime
    reachable: bool = True
    identity: Identity = Field(default_factory=Identity)
    software: list[SoftwareComponent] = Field(default_factory=list, max_length=64)
    health: Health = Field(default_factory=Health)
    uptime_s: float | None = None
    interfaces: list[Interface] = Field(default_factory=list, max_length=1024)
    peripherals: list[Peripheral] = Field(default_factory=list, max_length=256)
    metrics: dict[Annotated[str, StringConstraints(max_length=64)], float] = Field(
        default_factory=dict, max_length=256
    )
    raw: dict[Annotated[str, StringConstraints(max_length=64)], LongText] = Field(
        default_factory=dict, max_length=64
    )
    errors: list[ShortText] = Field(default_factory=list, max_length=64)
    # What a vendor's management plane says (cloud and on-device API drivers); None where the
    # driver cannot know. Values are the vendor's own words, lower-cased where it has an enum.
    management: Annotated[str, StringConstraints(max_length=32)] | None = None  # intune, webex-cloud, xapi
    connection: ShortText | None = None  # the vendor's connection status: connected, disconnected, …
    sign_in: ShortText | None = None  # Teams devices: the signed-in account's state
    upgrade_channel: ShortText | None = None  # Webex: stable, beta, preview, …
    # The device in the vendor console (Intune, Control Hub), for the NOC.
    console_url: Annotated[str, StringConstraints(max_length=2048)] | None = None

    def firmware_version(self) -> str | None:
        """The device's main firmware version, if the driver found one."""
        for component in self.software:
            if component.name == "firmware":
                return component.version
        return None
