"""Contracts and campaigns: customers, sites, contacts, device scope, maintenance windows, approvals,
campaigns, jobs with their state history, and the append-only audit log.

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-05 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controller.storage.models

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_UTC = controller.storage.models.UtcDateTime()


def _id() -> sa.Column[int]:
    return sa.Column("id", _BIG, autoincrement=True, nullable=False)


def _str(name: str, length: int, *, nullable: bool = False) -> sa.Column[str]:
    return sa.Column(name, sa.String(length=length), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "customers",
        _str("customer_id", 128),
        _str("name", 256),
        _str("timezone", 64),
        _str("holidays", 16),
        _str("working_hours", 256),
        sa.Column("security_min_cvss", sa.Float(), nullable=False),
        _str("notice_lead", 64),
        sa.Column("package_host", sa.Boolean(), nullable=False),
        _str("webhook_url", 2048, nullable=True),
        sa.Column("updated_at", _UTC, nullable=False),
        _str("updated_by", 128),
        sa.PrimaryKeyConstraint("customer_id"),
    )
    op.create_table(
        "customer_sites",
        _str("customer_id", 128),
        _str("site_id", 128),
        sa.PrimaryKeyConstraint("customer_id", "site_id"),
    )
    op.create_table(
        "contacts",
        _id(),
        _str("customer_id", 128),
        _str("name", 256),
        _str("email", 320),
        _str("role", 128),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_contacts_customer_id", "contacts", ["customer_id"])
    op.create_table(
        "device_scope",
        _str("site_id", 128),
        _str("device_id", 128),
        sa.Column("in_scope", sa.Boolean(), nullable=False),
        _str("changed_by", 128),
        sa.Column("changed_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("site_id", "device_id"),
    )
    op.create_table(
        "maintenance_windows",
        _id(),
        _str("customer_id", 128),
        _str("name", 256),
        sa.Column("sites", sa.JSON(), nullable=True),
        _str("start", 32),
        _str("rrule", 1024),
        _str("duration", 64),
        _str("timezone", 64, nullable=True),
        sa.Column("exclude_holidays", sa.Boolean(), nullable=False),
        sa.Column("blackout", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_maintenance_windows_customer_id", "maintenance_windows", ["customer_id"])
    op.create_table(
        "approvals",
        _id(),
        _str("customer_id", 128),
        _str("family", 64),
        _str("version", 256),
        _str("approved_by", 256),
        sa.Column("approved_at", _UTC, nullable=False),
        _str("expires", 10, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_approvals_customer_id", "approvals", ["customer_id"])
    op.create_table(
        "campaigns",
        _id(),
        _str("name", 256),
        _str("customer_id", 128),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("selection", sa.JSON(), nullable=False),
        sa.Column("canary", sa.Integer(), nullable=False),
        sa.Column("soak_s", sa.Integer(), nullable=False),
        sa.Column("per_site_concurrency", sa.Integer(), nullable=False),
        sa.Column("failure_threshold_pct", sa.Float(), nullable=False),
        sa.Column("failure_min_finished", sa.Integer(), nullable=False),
        sa.Column("success_threshold_pct", sa.Float(), nullable=False),
        sa.Column("retries", sa.Integer(), nullable=False),
        _str("state", 16),
        sa.Column("state_reason", sa.Text(), nullable=False),
        _str("created_by", 128),
        sa.Column("created_at", _UTC, nullable=False),
        _str("approved_by", 128, nullable=True),
        sa.Column("approved_at", _UTC, nullable=True),
        sa.Column("updated_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_campaigns_customer_id", "campaigns", ["customer_id"])
    op.create_table(
        "jobs",
        _id(),
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        _str("customer_id", 128),
        _str("site_id", 128),
        _str("device_id", 128),
        sa.Column("wave", sa.Integer(), nullable=False),
        _str("update_class", 16, nullable=True),
        _str("execution", 16, nullable=True),
        _str("target", 256, nullable=True),
        _str("from_version", 1024, nullable=True),
        _str("reason_code", 32),
        sa.Column("reason", sa.Text(), nullable=False),
        _str("state", 16),
        sa.Column("window_start", _UTC, nullable=True),
        sa.Column("window_end", _UTC, nullable=True),
        sa.Column("notice_at", _UTC, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _str("command_id", 64, nullable=True),
        sa.Column("updated_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("campaign_id", "site_id", "device_id", name="uq_jobs_device"),
    )
    op.create_index("ix_jobs_campaign_id", "jobs", ["campaign_id"])
    op.create_index("ix_jobs_state", "jobs", ["state"])
    op.create_table(
        "job_events",
        _id(),
        sa.Column("job_id", sa.BigInteger(), nullable=False),
        _str("state", 16),
        sa.Column("at", _UTC, nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_job_events_job_id", "job_events", ["job_id"])
    op.create_table(
        "audit_log",
        _id(),
        sa.Column("at", _UTC, nullable=False),
        _str("kind", 16),
        _str("actor", 128),
        _str("customer_id", 128, nullable=True),
        _str("subject", 512),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_kind", "audit_log", ["kind"])
    op.create_index("ix_audit_log_customer_id", "audit_log", ["customer_id"])


def downgrade() -> None:
    for table in (
        "audit_log",
        "job_events",
        "jobs",
        "campaigns",
        "approvals",
        "maintenance_windows",
        "device_scope",
        "contacts",
        "customer_sites",
        "customers",
    ):
        op.drop_table(table)
