"""Campaign budgets: rules_budget, its slices and members' shares; paid_order.budget_charges,
order_refund.budget_returns;
ledger_post_order() takes an order's budget charges (rules_budget_take())

Revision ID: 20261129_0007
Revises: 20261129_0006
Create Date: 2026-11-29 06:49:21.652599+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from app.sql import frozen, install

revision: str = "20261129_0007"
down_revision: str | None = "20261129_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rules_budget",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("per_member", sa.BigInteger(), nullable=True),
        sa.Column("slices", sa.SmallInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id"], ["program.id"], name=op.f("fk_rules_budget_program_id_program")
        ),
        sa.PrimaryKeyConstraint("program_id", "id", name=op.f("pk_rules_budget")),
        sa.UniqueConstraint("program_id", "key", name=op.f("uq_rules_budget_program_id_key")),
    )
    op.create_table(
        "rules_budget_member",
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("budget_id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id", "budget_id"],
            ["rules_budget.program_id", "rules_budget.id"],
            name=op.f("fk_rules_budget_member_budget_id_rules_budget"),
        ),
        sa.ForeignKeyConstraint(
            ["program_id", "member_id"],
            ["member.program_id", "member.id"],
            name=op.f("fk_rules_budget_member_member_id_member"),
        ),
        sa.PrimaryKeyConstraint("program_id", "budget_id", "member_id", name=op.f("pk_rules_budget_member")),
    )
    op.create_table(
        "rules_budget_slice",
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("budget_id", sa.BigInteger(), nullable=False),
        sa.Column("slot", sa.SmallInteger(), nullable=False),
        sa.Column("remaining", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id", "budget_id"],
            ["rules_budget.program_id", "rules_budget.id"],
            name=op.f("fk_rules_budget_slice_budget_id_rules_budget"),
        ),
        sa.PrimaryKeyConstraint("program_id", "budget_id", "slot", name=op.f("pk_rules_budget_slice")),
    )
    op.add_column(
        "paid_order", sa.Column("budget_charges", postgresql.JSONB(astext_type=sa.Text()), nullable=True)
    )
    op.add_column(
        "order_refund", sa.Column("budget_returns", postgresql.JSONB(astext_type=sa.Text()), nullable=True)
    )
    # The SQL objects this revision changes: frozen copies of app/sql/ written by
    # migrations/new_revision.py into migrations/sql/<revision>/ (ledger_post_order() and
    # the four rules_budget_*() functions).
    install(op.get_bind(), frozen(revision))


def downgrade() -> None:
    # ledger_post_order() as frozen before this revision (its parameters differ, so
    # install() drops this revision's signature).
    install(op.get_bind(), frozen("20261129_0003"), only=["functions/ledger_post_order"])
    for function in (
        "rules_budget_take",
        "rules_budget_give_back",
        "rules_budget_set",
        "rules_budget_spread",
    ):
        op.execute(f"DROP FUNCTION {function}")
    op.drop_column("order_refund", "budget_returns")
    op.drop_column("paid_order", "budget_charges")
    op.drop_table("rules_budget_slice")
    op.drop_table("rules_budget_member")
    op.drop_table("rules_budget")
