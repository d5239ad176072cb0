"""Components: every software component a device reports (firmware, Teams Rooms app, Windows
build, peripheral firmware) as its own row, with a history on change; findings name the
component they are about.

Findings of revisions before this one are all about the firmware: they get ``component =
'firmware'``, and the matcher rewrites every device's findings at start anyway.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 08:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controller.storage.models

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_UTC = controller.storage.models.UtcDateTime()


def upgrade() -> None:
    op.create_table(
        "device_components",
        sa.Column("id", _BIG, autoincrement=True, nullable=False),
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("component", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=1024), nullable=False),
        sa.Column("scheme", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("site_id", "device_id", "component", name="uq_device_components"),
    )
    op.create_table(
        "device_software",
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("software", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "device_id"),
    )
    op.create_table(
        "component_history",
        sa.Column("id", _BIG, autoincrement=True, nullable=False),
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("component", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=1024), nullable=False),
        sa.Column("scheme", sa.String(length=32), nullable=True),
        sa.Column("first_seen", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_component_history_device", "component_history", ["site_id", "device_id"])
    op.create_index("ix_component_history_first_seen", "component_history", ["first_seen"])
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("component", sa.String(length=64), nullable=False, server_default="firmware")
        )
        batch_op.add_column(sa.Column("version", sa.String(length=1024), nullable=True))
        batch_op.drop_constraint("uq_findings_device_advisory", type_="unique")
        batch_op.create_unique_constraint(
            "uq_findings_device_component_advisory", ["site_id", "device_id", "component", "advisory_id"]
        )


def downgrade() -> None:
    # Component findings have no place in the older schema: only the firmware's stay.
    op.execute("DELETE FROM findings WHERE component <> 'firmware'")
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.drop_constraint("uq_findings_device_component_advisory", type_="unique")
        batch_op.create_unique_constraint(
            "uq_findings_device_advisory", ["site_id", "device_id", "advisory_id"]
        )
        batch_op.drop_column("version")
        batch_op.drop_column("component")
    op.drop_index("ix_component_history_first_seen", table_name="component_history")
    op.drop_index("ix_component_history_device", table_name="component_history")
    op.drop_table("component_history")
    op.drop_table("device_software")
    op.drop_table("device_components")
