"""REST API shapes: queries in (strict), resources out."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DeviceStatus = Literal["unknown", "active", "stale"]
# Deeper pages are no use to anyone; the bound keeps an offset within every database's integer
# (2**63 and beyond gave 500: SQLite and asyncpg refuse it).
MAX_OFFSET = 1_000_000_000


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class DeviceQuery(_In):
    tenant: str | None = Field(None, min_length=1, max_length=128)
    site: str | None = Field(None, min_length=1, max_length=128)
    vendor: str | None = Field(None, min_length=1, max_length=1024)
    status: DeviceStatus | None = None
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)


class FirmwareChange(_Out):
    version: str
    first_seen: datetime


class ComponentOut(_Out):
    """A software component the device runs now: firmware, teams_app, windows, a peripheral's."""

    component: str
    version: str
    scheme: str | None


class ComponentChange(ComponentOut):
    first_seen: datetime


class DeviceOut(_Out):
    id: int
    tenant: str
    site_id: str
    device_id: str
    agent_id: str | None
    vendor: str
    family: str
    model: str
    serial: str | None
    hostname: str | None
    driver: str | None
    firmware_version: str | None
    health: str
    reachable: bool | None
    status: DeviceStatus
    interval_s: float | None
    first_seen: datetime
    last_seen: datetime | None


class DeviceDetail(DeviceOut):
    firmware_history: list[FirmwareChange]
    components: list[ComponentOut] = []
    component_history: list[ComponentChange] = []
    latest: LatestObservation | None = None


class DevicePage(_Out):
    items: list[DeviceOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class AgentOut(_Out):
    agent_id: str
    site_id: str
    state: str
    state_reason: str | None  # birth, last_will, heartbeat, heartbeat_overdue
    boot: int
    last_seq: int | None
    missing: list[tuple[int, int, int]]  # [boot, from_seq, to_seq] not received (newest first)
    version: str
    capabilities: list[str]
    intervals_s: dict[str, float]
    status_at: datetime | None
    last_seen: datetime
    heartbeat_at: datetime | None
    heartbeat_s: float | None
    outbox_rows: int | None
    outbox_bytes: int | None
    oldest_unsent_s: float | None
    dropped: int | None
    polls: dict[str, int] | None


class HealthReasonOut(_Out):
    code: str
    severity: str
    message: str | None = None


class IdentificationOut(_Out):
    """How the driver identified the device: the fingerprint that matched, or why none did
    (the fields it read, whose enterprise number the sysObjectID is under)."""

    vendor: str
    family: str
    model: str
    fingerprint: str | None = None
    reason: str | None = None
    sys_descr: str | None = None
    sys_object_id: str | None = None


class LatestObservation(_Out):
    """The device's newest observation: health with its reasons, and host health values."""

    observed_at: datetime
    health: str
    reasons: list[HealthReasonOut]
    reachable: bool | None
    metrics: dict[str, float]
    identification: IdentificationOut | None = None


class AgentList(_Out):
    items: list[AgentOut]
