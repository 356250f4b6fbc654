"""tier_activity(): one home for tier activity, read with an order's facts

Revision ID: 20261129_0004
Revises: 20261129_0003
Create Date: 2026-11-29 04:08:26.969351+00:00
"""

from collections.abc import Sequence

from alembic import op

from app.sql import frozen, install

revision: str = "20261129_0004"
down_revision: str | None = "20261129_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The SQL objects this revision changes: frozen copies of app/sql/ written by
    # migrations/new_revision.py into migrations/sql/<revision>/ (tier_activity()).
    install(op.get_bind(), frozen(revision))


def downgrade() -> None:
    op.execute("DROP FUNCTION tier_activity(bigint, bigint[], timestamptz[], timestamptz[])")
