"""Agents seen: each agent's newest heartbeat and why its state is what it is.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controller.storage.models

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_UTC = controller.storage.models.UtcDateTime()


def upgrade() -> None:
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("state_reason", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("heartbeat_at", _UTC, nullable=True))
        batch_op.add_column(sa.Column("heartbeat_s", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("outbox_rows", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("outbox_bytes", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("oldest_unsent_s", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("dropped", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("polls", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agents", schema=None) as batch_op:
        for column in (
            "polls",
            "dropped",
            "oldest_unsent_s",
            "outbox_bytes",
            "outbox_rows",
            "heartbeat_s",
            "heartbeat_at",
            "state_reason",
        ):
            batch_op.drop_column(column)
