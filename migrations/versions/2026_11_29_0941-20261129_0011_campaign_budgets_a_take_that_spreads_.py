"""Campaign budgets: a take that spreads gathers what is left in slices that can
cover it; an order waiting for a busy slice waits for one that holds its points.

Revision ID: 20261129_0011
Revises: 20261129_0012
Create Date: 2026-11-29 09:41:32.286370+00:00
"""

from collections.abc import Sequence

from alembic import op

from app.sql import frozen, install

revision: str = "20261129_0011"
down_revision: str | None = "20261129_0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The SQL objects this revision changes: frozen copies of app/sql/ written by
    # migrations/new_revision.py into migrations/sql/<revision>/ (rules_budget_take(),
    # rules_budget_spread() with p_at_least).
    install(op.get_bind(), frozen(revision))


def downgrade() -> None:
    op.execute("DROP FUNCTION rules_budget_spread(bigint, bigint, bigint, boolean, bigint)")
    install(
        op.get_bind(),
        frozen("20261129_0007"),
        only=["functions/rules_budget_spread", "functions/rules_budget_take"],
    )
