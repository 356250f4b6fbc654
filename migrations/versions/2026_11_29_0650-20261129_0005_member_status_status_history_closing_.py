"""Member status and closing: `frozen`, a status that lifts by itself, the status
history; the `forfeit` entry kind and each program's `forfeit` account;
ledger_post() checks the members' statuses under their balance-row locks

Revision ID: 20261129_0005
Revises: 20261129_0004
Create Date: 2026-11-29 06:50:08.379423+00:00

Self-contained: re-pointing down_revision is the only change another branch's
revision before it needs.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.sql import frozen, install

revision: str = "20261129_0005"
down_revision: str | None = "20261129_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "member_status_change",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("previous_status", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("actor_key_id", sa.Uuid(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("entry_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint(
            "status IN ('active', 'frozen', 'suspended', 'closed')",
            name=op.f("ck_member_status_change_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["program_id", "member_id"],
            ["member.program_id", "member.id"],
            name=op.f("fk_member_status_change_member_id_member"),
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["program.id"], name=op.f("fk_member_status_change_program_id_program")
        ),
        sa.PrimaryKeyConstraint("program_id", "id", name=op.f("pk_member_status_change")),
    )
    op.create_index(
        op.f("ix_member_status_change_program_id_member_id_id"),
        "member_status_change",
        ["program_id", "member_id", "id"],
        unique=False,
    )
    op.add_column("member", sa.Column("status_until", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_member_status_until",
        "member",
        ["status_until"],
        unique=False,
        postgresql_where=sa.text("status_until IS NOT NULL"),
    )
    op.drop_constraint(op.f("ck_member_status_known"), "member", type_="check")
    op.create_check_constraint(
        "status_known", "member", "status IN ('active', 'frozen', 'suspended', 'closed')"
    )
    op.create_check_constraint(
        "status_until_liftable", "member", "status_until IS NULL OR status IN ('frozen', 'suspended')"
    )
    op.drop_constraint(op.f("ck_journal_entry_kind_known"), "journal_entry", type_="check")
    op.create_check_constraint(
        "kind_known",
        "journal_entry",
        "kind IN ('award', 'redemption', 'transfer', 'reversal', 'earn', 'refund', 'activate', 'event',"
        " 'hold', 'capture', 'release', 'expire', 'tier_keep', 'funding', 'donation', 'conversion',"
        " 'forfeit')",
    )
    # Every program gets its forfeit account (new programs open it with the others).
    op.execute(
        "INSERT INTO account (program_id, kind) SELECT id, 'forfeit' FROM program ORDER BY id"
        " ON CONFLICT DO NOTHING"
    )
    # The SQL objects this revision changes: frozen copies of app/sql/ written by
    # migrations/new_revision.py into migrations/sql/<revision>/ (ledger_post(), the
    # status history's append-only triggers).
    install(op.get_bind(), frozen(revision))


def downgrade() -> None:
    raise NotImplementedError("the ledger cannot be downgraded")
