"""report lots and member days: each member's lots and lot uses as the reports'
lot replay holds them at the end of the last rolled day (report_lot,
report_lot_use), kept by the rollup-reports job so that it and the reports replay
only what was recorded since; each member's activity by rolled day
(report_member_day) for the reports' distinct member counts. Rollups rolled
before this revision have neither: they are dropped, and the job's next run
rolls the days again from the ledger.

Revision ID: 20261129_0020
Revises: 20261129_0013
Create Date: 2026-11-29 13:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261129_0020"
down_revision: str | None = "20261129_0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DELETE FROM report_day_figure")
    op.execute("DELETE FROM report_rollup")
    op.create_table(
        "report_lot",
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("entry_id", sa.Uuid(), nullable=False),
        sa.Column("cohort", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("remaining", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id"], ["program.id"], name=op.f("fk_report_lot_program_id_program")
        ),
        sa.PrimaryKeyConstraint("program_id", "member_id", "seq", name=op.f("pk_report_lot")),
    )
    op.create_table(
        "report_lot_use",
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("entry_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("taking", sa.Text(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id"], ["program.id"], name=op.f("fk_report_lot_use_program_id_program")
        ),
        sa.PrimaryKeyConstraint("program_id", "member_id", "entry_id", "seq", name=op.f("pk_report_lot_use")),
    )
    op.create_table(
        "report_member_day",
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("fact", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("previous_day", sa.Date(), nullable=True),
        sa.Column("previous_count", sa.BigInteger(), nullable=True),
        sa.Column("previous2_day", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["program_id"], ["program.id"], name=op.f("fk_report_member_day_program_id_program")
        ),
        sa.PrimaryKeyConstraint("program_id", "fact", "day", "member_id", name=op.f("pk_report_member_day")),
    )
    op.create_index(
        op.f("ix_report_member_day_program_id_fact_member_id_day"),
        "report_member_day",
        ["program_id", "fact", "member_id", "day"],
    )


def downgrade() -> None:
    op.drop_table("report_member_day")
    op.drop_table("report_lot_use")
    op.drop_table("report_lot")
