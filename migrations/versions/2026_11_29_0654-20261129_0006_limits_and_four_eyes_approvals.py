"""limits and four-eyes approvals: limit_usage, award_approval

Revision ID: 20261129_0006
Revises: 20261129_0009
Create Date: 2026-11-29 06:54:19.900551+00:00

Two tables and no SQL function: the daily counters of the rules' `limits`
(limit_usage, written only by programs that set a daily limit) and the awards that
wait for a second key (award_approval). Self-contained: chaining it after another
revision changes only down_revision.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261129_0006"
down_revision: str | None = "20261129_0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "limit_usage",
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("limit_name", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("used >= 0", name=op.f("ck_limit_usage_used_not_negative")),
        sa.ForeignKeyConstraint(
            ["program_id"], ["program.id"], name=op.f("fk_limit_usage_program_id_program")
        ),
        sa.PrimaryKeyConstraint("program_id", "limit_name", "subject", "day", name=op.f("pk_limit_usage")),
    )
    op.create_table(
        "award_approval",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("request", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("requested_by_key_id", sa.Uuid(), nullable=True),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by_key_id", sa.Uuid(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("entry_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint(
            "(status = 'approved') = (entry_id IS NOT NULL)",
            name=op.f("ck_award_approval_approved_has_entry"),
        ),
        sa.CheckConstraint(
            "(status = 'pending') = (decided_at IS NULL)",
            name=op.f("ck_award_approval_decided_when_not_pending"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'rejected')", name=op.f("ck_award_approval_status_known")
        ),
        sa.CheckConstraint("points > 0", name=op.f("ck_award_approval_points_positive")),
        sa.ForeignKeyConstraint(
            ["program_id", "entry_id"],
            ["journal_entry.program_id", "journal_entry.id"],
            name=op.f("fk_award_approval_entry_id_journal_entry"),
        ),
        sa.ForeignKeyConstraint(
            ["program_id", "member_id"],
            ["member.program_id", "member.id"],
            name=op.f("fk_award_approval_member_id_member"),
        ),
        sa.PrimaryKeyConstraint("program_id", "id", name=op.f("pk_award_approval")),
    )
    op.create_index(
        op.f("ix_award_approval_program_id_status_id"),
        "award_approval",
        ["program_id", "status", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_award_approval_program_id_status_id"), table_name="award_approval")
    op.drop_table("award_approval")
    op.drop_table("limit_usage")
