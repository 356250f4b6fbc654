"""Point lifecycle: lots with expiry, holds, and the expire job's function.

- point_lot: what is left of each credit of available points, with its expiry;
  lot_use: what each debit took from which lot. Both are a projection of the
  ledger, kept by ledger_post() in the same statement as the postings:
  sum(remaining) of a member's lots is their available balance.
- point_hold: two-phase redemptions (hold, then capture or release).
- journal_entry: kinds hold, capture, release, expire; `source_entry_id` names the
  hold a capture or release closes, or the entry that holds a refunded order's
  points (its lots are taken back first).
- an `expiry` system account per program.
- ledger_post() gains p_source_entry_id and keeps the lots; ledger_expire() expires
  a batch of members. (ledger_post_order() gains the order's expiry in the next
  revision, with the order's tier.)
- ledger_rebuild_lots() rebuilds every lot by replaying the ledger in commit
  order; existing ledgers get their lots from it (and `points-ledger
  rebuild-lots` repairs with it).

Revision ID: 20261125_0002
Revises: 20261125_0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision: str = "20261125_0002"
down_revision: str | None = "20261125_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_LEDGER_POST = (
    "ledger_post(uuid, bigint, text, text, text, timestamptz, timestamptz, uuid, uuid, text, text,"
    " integer, timestamptz, timestamptz, jsonb, text[], text[], bigint[], jsonb, bytea)"
)

# The functions are long; they live beside this file, one per file, as reviewed SQL.
SQL = Path(__file__).resolve().parent.parent / "sql" / "20261125_0002"


def _sql(name: str) -> str:
    return (SQL / f"{name}.sql").read_text()


def upgrade() -> None:
    op.drop_constraint(op.f("ck_journal_entry_kind_known"), "journal_entry", type_="check")
    op.create_check_constraint(
        op.f("ck_journal_entry_kind_known"),
        "journal_entry",
        "kind IN ('award', 'redemption', 'transfer', 'reversal', 'earn', 'refund', 'activate', 'event',"
        " 'hold', 'capture', 'release', 'expire')",
    )
    op.add_column("journal_entry", sa.Column("source_entry_id", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        op.f("fk_journal_entry_source_entry_id_journal_entry"),
        "journal_entry",
        "journal_entry",
        ["source_entry_id"],
        ["id"],
    )
    op.execute("INSERT INTO account (program_id, kind) SELECT id, 'expiry' FROM program")

    op.create_table(
        "point_lot",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("entry_id", sa.Uuid(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("remaining", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("points > 0", name=op.f("ck_point_lot_points_positive")),
        sa.CheckConstraint(
            "remaining >= 0 AND remaining <= points", name=op.f("ck_point_lot_remaining_within_points")
        ),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_point_lot_member_id_member")),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["journal_entry.id"], name=op.f("fk_point_lot_entry_id_journal_entry")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_point_lot")),
    )
    op.create_index(
        "ix_point_lot_member_fifo",
        "point_lot",
        ["member_id", "expires_at", "id"],
        postgresql_where=sa.text("remaining > 0"),
    )
    op.create_table(
        "lot_use",
        sa.Column("entry_id", sa.Uuid(), nullable=False),
        sa.Column("lot_id", sa.BigInteger(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("points >= 0", name=op.f("ck_lot_use_points_not_negative")),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["journal_entry.id"], name=op.f("fk_lot_use_entry_id_journal_entry")
        ),
        sa.ForeignKeyConstraint(["lot_id"], ["point_lot.id"], name=op.f("fk_lot_use_lot_id_point_lot")),
        sa.PrimaryKeyConstraint("entry_id", "lot_id", name=op.f("pk_lot_use")),
    )
    op.create_index(op.f("ix_lot_use_lot_id"), "lot_use", ["lot_id"])

    op.create_table(
        "point_hold",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("captured_points", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("status", sa.Text(), server_default="active", nullable=False),
        sa.Column("order_id", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("close_entry_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint("points > 0", name=op.f("ck_point_hold_points_positive")),
        sa.CheckConstraint(
            "captured_points >= 0 AND captured_points <= points",
            name=op.f("ck_point_hold_captured_within_points"),
        ),
        sa.CheckConstraint(
            "status IN ('active', 'captured', 'released', 'expired')", name=op.f("ck_point_hold_status_known")
        ),
        sa.CheckConstraint(
            "(status = 'active') = (close_entry_id IS NULL)", name=op.f("ck_point_hold_closed_by_entry")
        ),
        sa.ForeignKeyConstraint(["id"], ["journal_entry.id"], name=op.f("fk_point_hold_id_journal_entry")),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_point_hold_member_id_member")),
        sa.ForeignKeyConstraint(
            ["close_entry_id"], ["journal_entry.id"], name=op.f("fk_point_hold_close_entry_id_journal_entry")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_point_hold")),
    )
    op.create_index(
        "ix_point_hold_due",
        "point_hold",
        ["expires_at", "id"],
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_index(op.f("ix_point_hold_member_id"), "point_hold", ["member_id"])

    op.execute(_sql("ledger_apply_lots"))
    op.execute(f"DROP FUNCTION {OLD_LEDGER_POST}")
    op.execute(_sql("ledger_post"))
    op.execute(_sql("ledger_expire"))
    op.execute(_sql("ledger_rebuild_lots"))
    op.execute("SELECT ledger_rebuild_lots()")


def downgrade() -> None:
    raise NotImplementedError("the ledger cannot be downgraded")
