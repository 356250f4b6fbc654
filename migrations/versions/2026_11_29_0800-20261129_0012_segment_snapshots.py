"""segment snapshots: RFM segments kept per program and `as_of` by the
snapshot-segments job (segment_snapshot, member_segment)

Revision ID: 20261129_0012
Revises: 20261129_0007
Create Date: 2026-11-29 08:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261129_0012"
down_revision: str | None = "20261129_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "segment_snapshot",
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("chain_sequence", sa.BigInteger(), nullable=False),
        sa.Column("members", sa.BigInteger(), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "window_days BETWEEN 1 AND 3660", name=op.f("ck_segment_snapshot_window_days_range")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["program.id"], name=op.f("fk_segment_snapshot_program_id_program")
        ),
        sa.PrimaryKeyConstraint("program_id", "as_of", name=op.f("pk_segment_snapshot")),
    )
    op.create_table(
        "member_segment",
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("segment", sa.Text(), nullable=False),
        sa.Column("recency_days", sa.Integer(), nullable=True),
        sa.Column("frequency", sa.Integer(), nullable=False),
        sa.Column("monetary", sa.Numeric(), nullable=False),
        sa.Column("r", sa.SmallInteger(), nullable=True),
        sa.Column("f", sa.SmallInteger(), nullable=True),
        sa.Column("m", sa.SmallInteger(), nullable=True),
        sa.CheckConstraint(
            "segment IN ('core', 'potential', 'regular', 'basic', 'lapsed')",
            name=op.f("ck_member_segment_segment_known"),
        ),
        sa.ForeignKeyConstraint(
            ["program_id", "as_of"],
            ["segment_snapshot.program_id", "segment_snapshot.as_of"],
            name=op.f("fk_member_segment_program_id_segment_snapshot"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("program_id", "as_of", "member_id", name=op.f("pk_member_segment")),
    )
    op.create_index(
        op.f("ix_member_segment_program_id_as_of_segment_member_id"),
        "member_segment",
        ["program_id", "as_of", "segment", "member_id"],
    )


def downgrade() -> None:
    op.drop_table("member_segment")
    op.drop_table("segment_snapshot")
