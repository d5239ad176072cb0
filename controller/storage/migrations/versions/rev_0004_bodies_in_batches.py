"""Observation bodies kept once per batch: batches.payload, observations.position.

The controller re-serialized every observation to store its JSON (pydantic's model_dump_json,
17 µs per observation here: more than validating it), shipped it from the decode worker to the
writer and wrote it row by row. The batch's payload as received holds the same observations,
already valid: it is stored once with the batch, and each observation row says which element of
it is its own. Rows stored before this revision keep their ``body``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 16:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("payload", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("observations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("position", sa.Integer(), nullable=True))
        batch_op.alter_column("body", existing_type=sa.Text(), nullable=True)
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # PostgreSQL compresses values above 2 KiB, with pglz by default: the payloads of one
        # flush (7 MiB at 20,000 observations/s) took the server longer to compress than the
        # rest of the flush (bench/ingest.py: flushes of 590 ms, p99 3 s). lz4 compresses them
        # at memory speed where the server has it (Debian's does); else they stay uncompressed.
        lz4 = bind.execute(
            sa.text(
                "SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)"
            )
        ).first()
        if lz4 is not None:
            op.execute("ALTER TABLE batches ALTER COLUMN payload SET COMPRESSION lz4")
        else:
            op.execute("ALTER TABLE batches ALTER COLUMN payload SET STORAGE EXTERNAL")
        # Every flush updates each device it saw, and each batch once more (stored_at): room on
        # the page lets PostgreSQL keep the new row version there without touching the indexes
        # (a HOT update; none of the updated columns is indexed in the common case).
        op.execute("ALTER TABLE devices SET (fillfactor = 70)")
        op.execute("ALTER TABLE batches SET (fillfactor = 80)")


def downgrade() -> None:
    # Bodies that live only in a batch payload are copied back before the columns go.
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(
            "UPDATE observations AS o SET body = (convert_from(b.payload, 'UTF8')::jsonb "
            "-> 'observations' -> o.position)::text FROM batches AS b "
            "WHERE o.body IS NULL AND b.batch_id = o.batch_id"
        )
    else:
        op.execute(
            "UPDATE observations SET body = (SELECT json_extract(CAST(b.payload AS TEXT), "
            "'$.observations[' || observations.position || ']') FROM batches AS b "
            "WHERE b.batch_id = observations.batch_id) WHERE body IS NULL"
        )
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE devices RESET (fillfactor)")
        op.execute("ALTER TABLE batches RESET (fillfactor)")
    with op.batch_alter_table("observations", schema=None) as batch_op:
        batch_op.alter_column("body", existing_type=sa.Text(), nullable=False)
        batch_op.drop_column("position")
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_column("payload")
