"""posting's member index includes program_id, for index-only statement reads

Revision ID: 20261129_0022
Revises: 20261129_0021
Create Date: 2026-11-29 15:54:39.870429+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.sql import frozen, install

revision: str = "20261129_0022"
down_revision: str | None = "20261129_0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A member's statement and balance as of an instant name the program: with
    # program_id in the index they read it alone (an index-only scan), instead of
    # each posting's heap page too. Rebuilt in place: the DROP INDEX locks posting
    # against reads and writes until the migration commits, the whole build
    # included (nothing is deployed yet: 0.1.0).
    install(op.get_bind(), frozen(revision))
    _member_index(with_program=True)


def downgrade() -> None:
    _member_index(with_program=False)


def _member_index(*, with_program: bool) -> None:
    include = [
        "entry_id",
        "account_id",
        "amount",
        "available_after",
        "pending_after",
        "held_after",
        "recorded_at",
    ]
    op.drop_index("ix_posting_member_id_id", table_name="posting")
    op.create_index(
        "ix_posting_member_id_id",
        "posting",
        ["member_id", "id"],
        unique=False,
        postgresql_include=(["program_id"] if with_program else []) + include,
        postgresql_where=sa.text("member_id IS NOT NULL"),
    )
