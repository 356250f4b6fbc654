"""Tiers: each member's tier state and its append-only history.

- member_tier: the member's tier, since when, when its term ends, grace and
  operator overrides (one row per member, written under the member's lock);
- tier_change: every change with its reason and the activity that decided it;
  append-only like the journal;
- paid_order.refunded_total: money refunded so far, so qualifying spend is net of
  refunds without summing refunds; indexes for activity in a window;
- journal_entry kind `tier_keep` (points spent to keep a tier);
- a trigger NOTIFYs `rules_activated` when a program's active rules version
  changes (processes cache active versions while they listen);
- tier_apply(): writes tier decisions (state and history) for a batch of members;
  ledger_post_order() takes an order's upgrade and applies it in the same
  statement, and the expiry of the order's lot (the lifecycle revision's lots).

Revision ID: 20261125_0003
Revises: 20261125_0002
Create Date: 2026-11-25
"""

from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261125_0003"
down_revision: str | None = "20261125_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_LEDGER_POST_ORDER = (
    "ledger_post_order(uuid, bigint, bigint, text, bigint, text, text, text, timestamptz, timestamptz,"
    " uuid, integer, date, text, numeric, text, jsonb, jsonb, jsonb, jsonb, bigint, timestamptz, text[],"
    " bigint[], bytea)"
)

SQL = Path(__file__).resolve().parent.parent / "sql" / "20261125_0003"


def _sql(name: str) -> str:
    return (SQL / f"{name}.sql").read_text()


def upgrade() -> None:
    op.drop_constraint(op.f("ck_journal_entry_kind_known"), "journal_entry", type_="check")
    op.create_check_constraint(
        op.f("ck_journal_entry_kind_known"),
        "journal_entry",
        "kind IN ('award', 'redemption', 'transfer', 'reversal', 'earn', 'refund', 'activate', 'event',"
        " 'hold', 'capture', 'release', 'expire', 'tier_keep')",
    )

    op.add_column("paid_order", sa.Column("refunded_total", sa.Numeric(), server_default="0", nullable=False))
    op.execute(
        "UPDATE paid_order o SET refunded_total = f.amount"
        " FROM (SELECT paid_order_id, sum(amount) AS amount FROM order_refund GROUP BY 1) f"
        " WHERE f.paid_order_id = o.id"
    )
    op.create_index(
        op.f("ix_member_event_member_id_occurred_at"), "member_event", ["member_id", "occurred_at"]
    )
    op.create_index(
        "ix_member_event_referrer_member_id_occurred_at",
        "member_event",
        ["referrer_member_id", "occurred_at"],
        postgresql_where=sa.text("referrer_member_id IS NOT NULL"),
    )
    op.create_index(op.f("ix_member_program_id_id"), "member", ["program_id", "id"])

    op.create_table(
        "member_tier",
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("tier_code", sa.Text(), nullable=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("term_ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("grace_ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("override_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pinned", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("rules_version", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(tier_code IS NULL) = (since IS NULL)", name=op.f("ck_member_tier_since_with_tier")
        ),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_member_tier_member_id_member")),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_member_tier")),
    )
    op.create_table(
        "tier_change",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("from_tier", sa.Text(), nullable=True),
        sa.Column("to_tier", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("term_ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("activity", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("rules_version", sa.Integer(), nullable=True),
        sa.Column("entry_id", sa.Uuid(), nullable=True),
        sa.Column("actor_key_id", sa.Uuid(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "reason IN ('qualified', 'retained', 'downgraded', 'kept_with_points', 'override')",
            name=op.f("ck_tier_change_reason_known"),
        ),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_tier_change_member_id_member")),
        # Deferred: keeping a tier with points writes the change, then the entry
        # whose stored answer shows it, in one transaction.
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["journal_entry.id"],
            name=op.f("fk_tier_change_entry_id_journal_entry"),
            deferrable=True,
            initially="DEFERRED",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tier_change")),
    )
    op.create_index(op.f("ix_tier_change_member_id_id"), "tier_change", ["member_id", "id"])
    op.execute(
        "CREATE TRIGGER tier_change_append_only BEFORE UPDATE OR DELETE ON tier_change"
        " FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER tier_change_no_truncate BEFORE TRUNCATE ON tier_change"
        " FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
    )

    # Processes cache each program's active rules version while they LISTEN here.
    op.execute(
        "CREATE FUNCTION rules_version_notify() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN PERFORM pg_notify('rules_activated', NEW.program_id::text); RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER rules_version_activated AFTER UPDATE OF active ON rules_version FOR EACH ROW"
        " WHEN (NEW.active IS DISTINCT FROM OLD.active) EXECUTE FUNCTION rules_version_notify()"
    )
    op.execute(_sql("tier_apply"))
    op.execute(f"DROP FUNCTION {OLD_LEDGER_POST_ORDER}")
    op.execute(_sql("ledger_post_order"))


def downgrade() -> None:
    raise NotImplementedError("the ledger cannot be downgraded")
