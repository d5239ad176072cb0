"""Retention: indexes by time on batches and dead letters, so pruning finds old rows in chunks
without scanning the table.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 10:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_batches_stored_at", "batches", ["stored_at"])
    op.create_index("ix_dead_letters_received_at", "dead_letters", ["received_at"])
    op.create_index("ix_firmware_history_first_seen", "firmware_history", ["first_seen"])


def downgrade() -> None:
    op.drop_index("ix_firmware_history_first_seen", table_name="firmware_history")
    op.drop_index("ix_dead_letters_received_at", table_name="dead_letters")
    op.drop_index("ix_batches_stored_at", table_name="batches")
