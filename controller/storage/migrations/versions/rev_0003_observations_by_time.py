"""Observations indexed by time, no longer by device.

The index on (site_id, device_id, observed_at) put every device's observations on leaf pages of
their own once the table had grown, so a flush dirtied one index page per device it saw, and
SQLite's WAL writes every dirty page whole at each commit: a flush of 4,000 devices wrote 75 MiB
into the WAL after a million observations (7 MiB at the start), and flush latency grew with the
file (bench/ingest.py at 20,000 observations/s: p99 623 ms after 100 s, 180 ms after 30 s).
Observations arrive in time order, so an index on observed_at grows at its right edge only.
Per-device state lives in ``devices`` and ``firmware_history``; per-device questions about the raw
log read a time range.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 16:05:00
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("observations", schema=None) as batch_op:
        batch_op.drop_index("ix_observations_device_time")
        batch_op.create_index("ix_observations_observed_at", ["observed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("observations", schema=None) as batch_op:
        batch_op.drop_index("ix_observations_observed_at")
        batch_op.create_index(
            "ix_observations_device_time", ["site_id", "device_id", "observed_at"], unique=False
        )
