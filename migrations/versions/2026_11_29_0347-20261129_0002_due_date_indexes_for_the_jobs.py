"""due-date indexes for the jobs

`expire` and `evaluate-tiers` read only the members that are due instead of every
member on every run:
- point_lot: the lots of a program by expiry date (`expire`, `notify-expiring`);
- member_tier: terms and overrides by their end, tiers in grace, and txid (the
  transaction that last wrote the row, stamped by tier_apply(), frozen here);
- member: by enrolment date (inactivity deadlines of members who never ordered;
  the member list, newest first);
- job_watermark: what a job's last complete run in a program settled;
- ledger_expire() takes the members of its batch from the caller (frozen here).

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
    op.create_index(
        "ix_point_lot_program_due",
        "point_lot",
        ["program_id", "expires_at"],
        unique=False,
        postgresql_where=sa.text("remaining > 0 AND expires_at IS NOT NULL"),
    )
    op.create_index(
        "ix_member_tier_term_due",
        "member_tier",
        ["program_id", "term_ends_at"],
        unique=False,
        postgresql_where=sa.text("term_ends_at IS NOT NULL"),
    )
    op.create_index(
        "ix_member_tier_override_due",
        "member_tier",
        ["program_id", "override_until"],
        unique=False,
        postgresql_where=sa.text("override_until IS NOT NULL"),
    )
    op.create_index(
        "ix_member_tier_in_grace",
        "member_tier",
        ["program_id", "grace_ends_at"],
        unique=False,
        postgresql_where=sa.text("grace_ends_at IS NOT NULL"),
    )
    # Existing rows get 0 (a constant default: no table rewrite), older than any
    # run's watermark; new writes stamp their transaction's id.
    op.add_column("member_tier", sa.Column("txid", sa.BigInteger(), server_default="0", nullable=False))
    op.alter_column("member_tier", "txid", server_default=sa.text("(pg_current_xact_id())::text::bigint"))
    op.create_index(
        op.f("ix_member_tier_program_id_txid"), "member_tier", ["program_id", "txid"], unique=False
    )
    op.create_index(
        op.f("ix_member_program_id_enrolled_at_id"),
        "member",
        ["program_id", "enrolled_at", "id"],
        unique=False,
    )
    op.create_table(
        "job_watermark",
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("job", sa.Text(), nullable=False),
        sa.Column("rules_version", sa.Integer(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ran_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("txid", sa.BigInteger(), nullable=False),
        sa.Column("inactive_through", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id"], ["program.id"], name=op.f("fk_job_watermark_program_id_program")
        ),
        sa.PrimaryKeyConstraint("program_id", "job", name=op.f("pk_job_watermark")),
    )
    # The SQL objects this revision changes: frozen copies of app/sql/ written by
    # migrations/new_revision.py into migrations/sql/<revision>/.
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
    raise NotImplementedError("the ledger cannot be downgraded")
