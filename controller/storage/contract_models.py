"""Tables of contract-aware updates (revision 0009): customers, windows, approvals, campaigns, jobs,
the audit log.

The contract is stored in the fields of the policy and windows TOML files
(controller.scheduler.schema) and read back through the same parser, so the controller and the
offline planner cannot disagree about what a row means. A customer's id is its tenant.
Every datetime is aware UTC; a window's ``start`` is a local date-time (text, no offset) as in
the file, because it is the RRULE's DTSTART in the window's zone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from controller.storage.models import Base, BigId


class CustomerRow(Base):
    __tablename__ = "customers"
    customer_id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)  # the tenant
    name: Mapped[str] = mapped_column(sa.String(256), default="")
    timezone: Mapped[str] = mapped_column(sa.String(64))
    holidays: Mapped[str] = mapped_column(sa.String(16))
    working_hours: Mapped[str] = mapped_column(sa.String(256))
    security_min_cvss: Mapped[float]
    notice_lead: Mapped[str] = mapped_column(sa.String(64))
    package_host: Mapped[bool]
    webhook_url: Mapped[str | None] = mapped_column(sa.String(2048))
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(sa.String(128))


class CustomerSiteRow(Base):
    __tablename__ = "customer_sites"
    customer_id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    site_id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)


class ContactRow(Base):
    __tablename__ = "contacts"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(sa.String(128), index=True)
    name: Mapped[str] = mapped_column(sa.String(256))
    email: Mapped[str] = mapped_column(sa.String(320))
    role: Mapped[str] = mapped_column(sa.String(128), default="")


class DeviceScopeRow(Base):
    """Only devices taken out of (or explicitly put into) the contract scope have a row; no row: in scope."""

    __tablename__ = "device_scope"
    site_id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    device_id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    in_scope: Mapped[bool]
    changed_by: Mapped[str] = mapped_column(sa.String(128))
    changed_at: Mapped[datetime]


class WindowRow(Base):
    __tablename__ = "maintenance_windows"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(sa.String(128), index=True)
    name: Mapped[str] = mapped_column(sa.String(256), default="")
    sites: Mapped[list[str] | None] = mapped_column(sa.JSON())
    start: Mapped[str] = mapped_column(sa.String(32))  # local date-time, ISO 8601 without offset
    rrule: Mapped[str] = mapped_column(sa.String(1024))
    duration: Mapped[str] = mapped_column(sa.String(64))
    timezone: Mapped[str | None] = mapped_column(sa.String(64))
    exclude_holidays: Mapped[bool]
    blackout: Mapped[list[str]] = mapped_column(sa.JSON(), default=list)


class ApprovalRow(Base):
    __tablename__ = "approvals"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(sa.String(128), index=True)
    family: Mapped[str] = mapped_column(sa.String(64))
    version: Mapped[str] = mapped_column(sa.String(256))
    approved_by: Mapped[str] = mapped_column(sa.String(256))
    approved_at: Mapped[datetime]
    expires: Mapped[str | None] = mapped_column(sa.String(10))  # a date, valid through that day


class CampaignRow(Base):
    __tablename__ = "campaigns"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(256))
    customer_id: Mapped[str] = mapped_column(sa.String(128), index=True)
    targets: Mapped[dict[str, str]] = mapped_column(sa.JSON(), default=dict)  # family → version
    # {"sites": [...], "models": [...], "findings": [...]}; empty lists select everything
    selection: Mapped[dict[str, list[str]]] = mapped_column(sa.JSON(), default=dict)
    canary: Mapped[int]
    soak_s: Mapped[int]
    per_site_concurrency: Mapped[int]
    failure_threshold_pct: Mapped[float]
    failure_min_finished: Mapped[int]
    success_threshold_pct: Mapped[float]
    retries: Mapped[int]
    state: Mapped[str] = mapped_column(sa.String(16))
    state_reason: Mapped[str] = mapped_column(sa.Text(), default="")
    created_by: Mapped[str] = mapped_column(sa.String(128))
    created_at: Mapped[datetime]
    approved_by: Mapped[str | None] = mapped_column(sa.String(128))
    approved_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class JobRow(Base):
    __tablename__ = "jobs"
    __table_args__ = (sa.UniqueConstraint("campaign_id", "site_id", "device_id", name="uq_jobs_device"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(sa.BigInteger(), index=True)
    customer_id: Mapped[str] = mapped_column(sa.String(128))
    site_id: Mapped[str] = mapped_column(sa.String(128))
    device_id: Mapped[str] = mapped_column(sa.String(128))
    wave: Mapped[int]
    update_class: Mapped[str | None] = mapped_column(sa.String(16))
    execution: Mapped[str | None] = mapped_column(sa.String(16))
    target: Mapped[str | None] = mapped_column(sa.String(256))
    from_version: Mapped[str | None] = mapped_column(sa.String(1024))
    reason_code: Mapped[str] = mapped_column(sa.String(32))
    reason: Mapped[str] = mapped_column(sa.Text())
    state: Mapped[str] = mapped_column(sa.String(16), index=True)
    window_start: Mapped[datetime | None]
    window_end: Mapped[datetime | None]
    notice_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    command_id: Mapped[str | None] = mapped_column(sa.String(64))
    updated_at: Mapped[datetime]


class JobEventRow(Base):
    """A job's state history: one row per transition, never updated."""

    __tablename__ = "job_events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(sa.BigInteger(), index=True)
    state: Mapped[str] = mapped_column(sa.String(16))
    at: Mapped[datetime]
    detail: Mapped[str] = mapped_column(sa.Text(), default="")


class AuditRow(Base):
    """Append-only: every decision (policy, approval, plan, notice, command, outcome)."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(sa.String(16), index=True)
    actor: Mapped[str] = mapped_column(sa.String(128))
    customer_id: Mapped[str | None] = mapped_column(sa.String(128), index=True)
    subject: Mapped[str] = mapped_column(sa.String(512))
    detail: Mapped[dict[str, Any]] = mapped_column(sa.JSON(), default=dict)


def _table(model: type[Base]) -> sa.Table:
    return cast("sa.Table", model.__table__)


CUSTOMERS = _table(CustomerRow)
CUSTOMER_SITES = _table(CustomerSiteRow)
CONTACTS = _table(ContactRow)
DEVICE_SCOPE = _table(DeviceScopeRow)
WINDOWS = _table(WindowRow)
APPROVALS = _table(ApprovalRow)
CAMPAIGNS = _table(CampaignRow)
JOBS = _table(JobRow)
JOB_EVENTS = _table(JobEventRow)
AUDIT = _table(AuditRow)
