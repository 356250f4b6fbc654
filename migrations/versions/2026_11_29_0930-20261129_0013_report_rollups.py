"""report rollups: the days each program's reports have rolled up
(report_rollup) and the figures of each rolled day (report_day_figure), kept by
the rollup-reports job; the reports read a period's postings and orders by
recorded_at through an index

Revision ID: 20261129_0013
Revises: 20261129_0011
Create Date: 2026-11-29 09:30:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261129_0013"
down_revision: str | None = "20261129_0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "report_rollup",
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("rolled_through", sa.Date(), nullable=False),
        sa.Column("rolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id"], ["program.id"], name=op.f("fk_report_rollup_program_id_program")
        ),
        sa.PrimaryKeyConstraint("program_id", name=op.f("pk_report_rollup")),
    )
    op.create_table(
        "report_day_figure",
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("figure", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Numeric(), nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id"], ["program.id"], name=op.f("fk_report_day_figure_program_id_program")
        ),
        sa.PrimaryKeyConstraint("program_id", "day", "figure", "key", name=op.f("pk_report_day_figure")),
    )
    op.create_index(op.f("ix_posting_program_id_recorded_at"), "posting", ["program_id", "recorded_at"])
    op.create_index(op.f("ix_paid_order_program_id_recorded_at"), "paid_order", ["program_id", "recorded_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_paid_order_program_id_recorded_at"), table_name="paid_order")
    op.drop_index(op.f("ix_posting_program_id_recorded_at"), table_name="posting")
    op.drop_table("report_day_figure")
    op.drop_table("report_rollup")
