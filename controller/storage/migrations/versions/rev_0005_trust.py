"""Trust: API tokens, console sessions, sites enrolled by an admin with a broker identity.

Sites were claimed by the first message that named them; from this revision on a site exists
only when an admin enrolled it. Sites claimed before keep their agent (they were accepted until
now) but have no broker password yet: ``fernwart controller enroll --rotate`` gives them one.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 17:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controller.storage.models

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_UTC = controller.storage.models.UtcDateTime()


def upgrade() -> None:
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.add_column(sa.Column("password_hash", sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column("enrolled_by", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("revoked_at", _UTC, nullable=True))
    op.create_table(
        "api_tokens",
        sa.Column("id", _BIG, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("tenant", sa.String(length=128), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("expires_at", _UTC, nullable=True),
        sa.Column("last_used_at", _UTC, nullable=True),
        sa.Column("revoked_at", _UTC, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "web_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("token_id", sa.BigInteger(), nullable=False),
        sa.Column("csrf_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("expires_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("id_hash"),
    )
    op.create_index("ix_web_sessions_token_id", "web_sessions", ["token_id"])


def downgrade() -> None:
    op.drop_index("ix_web_sessions_token_id", table_name="web_sessions")
    op.drop_table("web_sessions")
    op.drop_table("api_tokens")
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_column("revoked_at")
        batch_op.drop_column("enrolled_by")
        batch_op.drop_column("password_hash")
