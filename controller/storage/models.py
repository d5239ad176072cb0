"""Tables of the controller database (SQLAlchemy 2 declarative models).

Devices are keyed by ``(site_id, device_id)`` (a device id is unique within its site) and carry
an integer surrogate ``id`` for the REST API. Observations, firmware history and batches refer
to devices by ``(site_id, device_id)`` so that a flush never waits for generated keys.
Every datetime is stored and returned as aware UTC. Later features (advisories, findings) add
their own models on :class:`Base` and an Alembic revision in ``migrations/versions``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER only


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC in, aware UTC out, also on SQLite (which forgets the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        del dialect
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: store aware UTC only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        del dialect
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: dict[Any, Any] = {datetime: UtcDateTime()}  # noqa: RUF012 (SQLAlchemy API)


class Site(Base):
    """An enrolled site and the one agent that speaks for it (revision 0005: enrolled by an
    admin, never claimed by a message). ``password_hash`` is the agent's broker password in
    Mosquitto's PBKDF2-SHA512 format (``$7$…``), from which ``broker-config`` writes the password
    file; the password itself is shown once at enrollment and stored nowhere."""

    __tablename__ = "sites"
    site_id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    agent_id: Mapped[str] = mapped_column(sa.String(128))
    registered_at: Mapped[datetime]
    password_hash: Mapped[str | None] = mapped_column(sa.String(512))
    enrolled_by: Mapped[str | None] = mapped_column(sa.String(128))
    revoked_at: Mapped[datetime | None]


class Agent(Base):
    __tablename__ = "agents"
    agent_id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    site_id: Mapped[str] = mapped_column(sa.String(128), index=True)
    state: Mapped[str] = mapped_column(sa.String(16))  # online | offline
    boot: Mapped[int] = mapped_column(sa.BigInteger())
    # None: no baseline yet (first batch sets it); -1: a birth announced a new boot.
    last_seq: Mapped[int | None] = mapped_column(sa.BigInteger())
    version: Mapped[str] = mapped_column(sa.String(1024), default="")
    capabilities: Mapped[list[str]] = mapped_column(sa.JSON(), default=list)
    intervals_s: Mapped[dict[str, float]] = mapped_column(sa.JSON(), default=dict)
    status_at: Mapped[datetime | None]
    last_seen: Mapped[datetime]
    # Why the state is what it is: "birth", "last_will", "heartbeat", "heartbeat_overdue".
    state_reason: Mapped[str | None] = mapped_column(sa.String(32))
    # The newest heartbeat (revision 0006): when, its interval, and what it reported.
    heartbeat_at: Mapped[datetime | None]
    heartbeat_s: Mapped[float | None]
    outbox_rows: Mapped[int | None] = mapped_column(sa.BigInteger())
    outbox_bytes: Mapped[int | None] = mapped_column(sa.BigInteger())
    oldest_unsent_s: Mapped[float | None]
    dropped: Mapped[int | None] = mapped_column(sa.BigInteger())
    polls: Mapped[dict[str, int] | None] = mapped_column(sa.JSON())


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (
        sa.UniqueConstraint("site_id", "device_id", name="uq_devices_site_device"),
        sa.Index("ix_devices_tenant_site", "tenant", "site_id"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(sa.String(128))
    device_id: Mapped[str] = mapped_column(sa.String(128))
    tenant: Mapped[str] = mapped_column(sa.String(128))
    agent_id: Mapped[str | None] = mapped_column(sa.String(128))
    vendor: Mapped[str] = mapped_column(sa.String(1024), default="unknown", index=True)
    family: Mapped[str] = mapped_column(sa.String(1024), default="unknown")
    model: Mapped[str] = mapped_column(sa.String(1024), default="unknown")
    serial: Mapped[str | None] = mapped_column(sa.String(1024))
    hostname: Mapped[str | None] = mapped_column(sa.String(1024))
    driver: Mapped[str | None] = mapped_column(sa.String(32))
    firmware_version: Mapped[str | None] = mapped_column(sa.String(1024))
    health: Mapped[str] = mapped_column(sa.String(16), default="unknown")
    reachable: Mapped[bool | None]
    # unknown (announced, never observed) | active | stale
    status: Mapped[str] = mapped_column(sa.String(16), index=True)
    interval_s: Mapped[float | None]
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime | None]
    # observed_at of the newest observation as UNIX seconds: portable arithmetic for staleness.
    last_seen_epoch: Mapped[float | None]


class Observation(Base):
    __tablename__ = "observations"
    # By time only: an index by device dirtied one page per device in every flush (revision 0003).
    __table_args__ = (sa.Index("ix_observations_observed_at", "observed_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(sa.String(128))
    device_id: Mapped[str] = mapped_column(sa.String(128))
    batch_id: Mapped[str] = mapped_column(sa.String(36))
    observed_at: Mapped[datetime]
    # Where the observation's JSON is: observation ``position`` (0-based) of its batch's payload
    # (batches.payload). Rows stored before revision 0004 carry it in ``body`` instead.
    position: Mapped[int | None]
    body: Mapped[str | None] = mapped_column(sa.Text())


class Batch(Base):
    """One row per stored ObservationBatch: the idempotency key across restarts and instances."""

    __tablename__ = "batches"
    __table_args__ = (sa.Index("ix_batches_stored_at", "stored_at"),)  # retention (revision 0007)
    batch_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    site_id: Mapped[str] = mapped_column(sa.String(128))
    agent_id: Mapped[str] = mapped_column(sa.String(128))
    boot: Mapped[int] = mapped_column(sa.BigInteger())
    seq: Mapped[int] = mapped_column(sa.BigInteger())
    sent_at: Mapped[datetime]
    stored_at: Mapped[datetime]
    observations: Mapped[int]
    # The message as received (valid JSON of an ObservationBatch): its observations' bodies, kept
    # once per batch instead of re-serialized per observation (revision 0004). NULL before 0004.
    payload: Mapped[bytes | None] = mapped_column(sa.LargeBinary())


class FirmwareHistory(Base):
    __tablename__ = "firmware_history"
    __table_args__ = (
        sa.Index("ix_firmware_history_device", "site_id", "device_id"),
        sa.Index("ix_firmware_history_first_seen", "first_seen"),  # retention (revision 0007)
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(sa.String(128))
    device_id: Mapped[str] = mapped_column(sa.String(128))
    version: Mapped[str] = mapped_column(sa.String(1024))
    first_seen: Mapped[datetime]


class DeviceComponent(Base):
    """One software component a device runs now (its firmware, the Teams Rooms app, the Windows
    build, a peripheral's firmware), as the newest observation reported it (revision 0008). A
    component an observation leaves out stays as it was, as the firmware does."""

    __tablename__ = "device_components"
    __table_args__ = (sa.UniqueConstraint("site_id", "device_id", "component", name="uq_device_components"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(sa.String(128))
    device_id: Mapped[str] = mapped_column(sa.String(128))
    component: Mapped[str] = mapped_column(sa.String(64))
    version: Mapped[str] = mapped_column(sa.String(1024))
    scheme: Mapped[str | None] = mapped_column(sa.String(32))


class DeviceSoftware(Base):
    """The components of a device's newest observation, as one text (controller.shapes.
    software_text): the PostgreSQL writer's filter, which skips in one comparison the devices
    whose components did not change (nearly all of them). The SQLite writer keeps the stored
    components in memory instead (sqlite_writer._DeviceStates) and leaves this table empty
    (revision 0008)."""

    __tablename__ = "device_software"
    site_id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    device_id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    software: Mapped[str] = mapped_column(sa.Text())


class ComponentHistory(Base):
    """A row each time a component's version differs from the one before it (revision 0008)."""

    __tablename__ = "component_history"
    __table_args__ = (
        sa.Index("ix_component_history_device", "site_id", "device_id"),
        sa.Index("ix_component_history_first_seen", "first_seen"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(sa.String(128))
    device_id: Mapped[str] = mapped_column(sa.String(128))
    component: Mapped[str] = mapped_column(sa.String(64))
    version: Mapped[str] = mapped_column(sa.String(1024))
    scheme: Mapped[str | None] = mapped_column(sa.String(32))
    first_seen: Mapped[datetime]


class Gap(Base):
    __tablename__ = "gaps"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    agent_id: Mapped[str] = mapped_column(sa.String(128), index=True)
    site_id: Mapped[str] = mapped_column(sa.String(128))
    boot: Mapped[int] = mapped_column(sa.BigInteger())
    from_seq: Mapped[int] = mapped_column(sa.BigInteger())
    to_seq: Mapped[int] = mapped_column(sa.BigInteger())
    detected_at: Mapped[datetime]


class DeadLetter(Base):
    __tablename__ = "dead_letters"
    __table_args__ = (sa.Index("ix_dead_letters_received_at", "received_at"),)  # retention (revision 0007)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(sa.String(1024))
    payload: Mapped[bytes] = mapped_column(sa.LargeBinary())  # truncated, see size
    size: Mapped[int]
    reason_code: Mapped[str] = mapped_column(sa.String(32), index=True)
    reason: Mapped[str] = mapped_column(sa.Text())
    received_at: Mapped[datetime]


class CommandResultRow(Base):
    __tablename__ = "command_results"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    command_id: Mapped[str] = mapped_column(sa.String(36), index=True)
    site_id: Mapped[str] = mapped_column(sa.String(128))
    agent_id: Mapped[str] = mapped_column(sa.String(128))
    device_id: Mapped[str] = mapped_column(sa.String(128))
    ok: Mapped[bool]
    detail: Mapped[str] = mapped_column(sa.String(1024))
    received_at: Mapped[datetime]


class ApiToken(Base):
    """A REST API token: only its SHA-256 is stored (the token is 256 random bits, shown once)."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(128))
    role: Mapped[str] = mapped_column(sa.String(32))
    tenant: Mapped[str | None] = mapped_column(sa.String(128))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(sa.String(128))
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class WebSession(Base):
    """A console session opened with a token (later: a password or OIDC login); hashed id."""

    __tablename__ = "web_sessions"
    id_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    token_id: Mapped[int] = mapped_column(sa.BigInteger(), index=True)
    csrf_hash: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


def _table(model: type[Base]) -> sa.Table:
    return cast("sa.Table", model.__table__)


# The Core tables, for bulk statements.
SITES = _table(Site)
AGENTS = _table(Agent)
DEVICES = _table(Device)
OBSERVATIONS = _table(Observation)
BATCHES = _table(Batch)
FIRMWARE_HISTORY = _table(FirmwareHistory)
DEVICE_COMPONENTS = _table(DeviceComponent)
COMPONENT_HISTORY = _table(ComponentHistory)
DEVICE_SOFTWARE = _table(DeviceSoftware)
GAPS = _table(Gap)
DEAD_LETTERS = _table(DeadLetter)
COMMAND_RESULTS = _table(CommandResultRow)
API_TOKENS = _table(ApiToken)
WEB_SESSIONS = _table(WebSession)


# --- advisory catalog (controller.matching) --------------------------------------------------


class AdvisoryRow(Base):
    """One CSAF advisory as imported (the newest revision); ``document`` is the raw JSON text."""

    __tablename__ = "advisories"
    id: Mapped[str] = mapped_column(sa.String(512), primary_key=True)  # document.tracking.id
    title: Mapped[str] = mapped_column(sa.Text())
    publisher: Mapped[str] = mapped_column(sa.String(1024))
    tracking_version: Mapped[str] = mapped_column(sa.String(256))
    initial_release_date: Mapped[str] = mapped_column(sa.String(64))
    current_release_date: Mapped[str] = mapped_column(sa.String(64))
    url: Mapped[str | None] = mapped_column(sa.Text())
    max_cvss: Mapped[float | None]
    cves: Mapped[list[str]] = mapped_column(sa.JSON(), default=list)
    products: Mapped[int]
    kev: Mapped[bool]  # one of its CVEs is in the KEV catalog (as of the last KEV import)
    source: Mapped[str] = mapped_column(sa.Text())
    document: Mapped[str] = mapped_column(sa.Text())
    imported_at: Mapped[datetime]


class KevEntryRow(Base):
    """The CISA KEV catalog as last imported (replaced as a whole by each import)."""

    __tablename__ = "kev_entries"
    cve: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    date_added: Mapped[str] = mapped_column(sa.String(16))
    due_date: Mapped[str | None] = mapped_column(sa.String(16))
    ransomware: Mapped[bool]
    vendor: Mapped[str] = mapped_column(sa.String(256))
    product: Mapped[str] = mapped_column(sa.String(256))
    name: Mapped[str] = mapped_column(sa.String(1024))
    catalog_version: Mapped[str] = mapped_column(sa.String(64))
    imported_at: Mapped[datetime]


class FindingRow(Base):
    """What one advisory says about one device; a device's rows are replaced together."""

    __tablename__ = "findings"
    __table_args__ = (
        # One row per advisory and component of a device (revision 0008 added the component).
        sa.UniqueConstraint(
            "site_id", "device_id", "component", "advisory_id", name="uq_findings_device_component_advisory"
        ),
        sa.Index("ix_findings_tenant_status", "tenant", "status"),
        sa.Index("ix_findings_advisory", "advisory_id"),
        sa.Index("ix_findings_rank", "kev", "cvss"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(sa.String(128))
    device_id: Mapped[str] = mapped_column(sa.String(128))
    device_pk: Mapped[int] = mapped_column(sa.BigInteger())  # devices.id, for links to the device
    tenant: Mapped[str] = mapped_column(sa.String(128))
    advisory_id: Mapped[str] = mapped_column(sa.String(512))
    # What was matched: "firmware" (the device's firmware), or a component (teams_app, …).
    component: Mapped[str] = mapped_column(sa.String(64), default="firmware", server_default="firmware")
    version: Mapped[str | None] = mapped_column(sa.String(1024))  # the version matched (0008)
    cves: Mapped[list[str]] = mapped_column(sa.JSON(), default=list)
    status: Mapped[str] = mapped_column(sa.String(16))  # affected | fixed | not_affected | unknown
    first_fixed: Mapped[str | None] = mapped_column(sa.String(256))
    kev: Mapped[bool]
    kev_due_date: Mapped[str | None] = mapped_column(sa.String(16))
    kev_ransomware: Mapped[bool]
    cvss: Mapped[float | None]
    severity: Mapped[str] = mapped_column(sa.String(16), index=True)
    reason: Mapped[str | None] = mapped_column(sa.Text())
    products: Mapped[list[str]] = mapped_column(sa.JSON(), default=list)
    fix_url: Mapped[str | None] = mapped_column(sa.Text())
    updated_at: Mapped[datetime]


class RecommendationRow(Base):
    """Per device: the recommended target version (or why there is none) and why it cannot be matched."""

    __tablename__ = "device_recommendations"
    site_id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    device_id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    current: Mapped[str] = mapped_column(sa.String(1024))
    target: Mapped[str | None] = mapped_column(sa.String(256))
    reason: Mapped[str | None] = mapped_column(sa.Text())
    advisories: Mapped[list[str]] = mapped_column(sa.JSON(), default=list)
    # Set when the device cannot be matched at all (unknown product, unparsable version).
    match_problem: Mapped[str | None] = mapped_column(sa.Text())
    updated_at: Mapped[datetime]


ADVISORIES = _table(AdvisoryRow)
KEV_ENTRIES = _table(KevEntryRow)
FINDINGS = _table(FindingRow)
RECOMMENDATIONS = _table(RecommendationRow)
