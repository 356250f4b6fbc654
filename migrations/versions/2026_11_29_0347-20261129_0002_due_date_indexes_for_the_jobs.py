"""due-date indexes for the jobs

Revision ID: 20261129_0002
Revises: 20261129_0001
Create Date: 2026-11-29 03:47:28.000533+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.sql import frozen, install

revision: str = "20261129_0002"
down_revision: str | None = "20261129_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The SQL objects this revision changes: frozen copies of app/sql/ written by
    # migrations/new_revision.py into migrations/sql/<revision>/ (none: nothing to do).
    install(op.get_bind(), frozen(revision))

    # reads on a large ledger (bench/growth.py)
    # ledger_post() (installed above) writes posting.recorded_at, the entry's; earlier
    # postings get theirs here, past the append-only trigger (no other session can
    # write to posting meanwhile: the ALTERs hold its lock until this commits).
    op.add_column("posting", sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("ALTER TABLE posting DISABLE TRIGGER posting_append_only")
    op.execute(
        "UPDATE posting p SET recorded_at = e.recorded_at FROM journal_entry e WHERE e.id = p.entry_id"
    )
    op.execute("ALTER TABLE posting ENABLE TRIGGER posting_append_only")
    op.alter_column("posting", "recorded_at", nullable=False)
    op.drop_index("ix_posting_member_id_id", table_name="posting")
    op.create_index(
        "ix_posting_member_id_id",
        "posting",
        ["member_id", "id"],
        unique=False,
        postgresql_include=[
            "entry_id",
            "account_id",
            "amount",
            "available_after",
            "pending_after",
            "held_after",
            "recorded_at",
        ],
        postgresql_where=sa.text("member_id IS NOT NULL"),
    )
    op.drop_index("ix_point_lot_member_fifo", table_name="point_lot")
    op.create_index(
        "ix_point_lot_member_fifo",
        "point_lot",
        ["member_id", "expires_at", "id"],
        unique=False,
        postgresql_include=["remaining"],
        postgresql_where=sa.text("remaining > 0"),
    )


def downgrade() -> None:
    pass
