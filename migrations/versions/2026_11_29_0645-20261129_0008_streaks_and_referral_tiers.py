"""streaks and referral tiers: member_event.streak_position, referrers index, tier_activity(p_referrals)

Revision ID: 20261129_0008
Revises: 20261129_0004
Create Date: 2026-11-29 06:45:29.540772+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.sql import frozen, install

revision: str = "20261129_0008"
down_revision: str | None = "20261129_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A check-in's place in the member's streak (null: not counted towards one).
    op.add_column("member_event", sa.Column("streak_position", sa.Integer(), nullable=True))
    # A member's referees, for tiers that count referrals.
    op.create_index(
        "ix_member_program_id_referred_by_member_id",
        "member",
        ["program_id", "referred_by_member_id"],
        unique=False,
        postgresql_where=sa.text("referred_by_member_id IS NOT NULL"),
    )
    # The SQL objects this revision changes: frozen copies of app/sql/ written by
    # migrations/new_revision.py into migrations/sql/<revision>/ (tier_activity(),
    # with p_referrals and the referrals column).
    install(op.get_bind(), frozen(revision))


def downgrade() -> None:
    op.execute("DROP FUNCTION tier_activity(bigint, bigint[], timestamptz[], timestamptz[], boolean)")
    install(op.get_bind(), frozen("20261129_0004"), only=["functions/tier_activity"])
    op.drop_index(
        "ix_member_program_id_referred_by_member_id",
        table_name="member",
        postgresql_where=sa.text("referred_by_member_id IS NOT NULL"),
    )
    op.drop_column("member_event", "streak_position")
