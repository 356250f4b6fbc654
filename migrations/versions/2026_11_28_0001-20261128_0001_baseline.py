"""Baseline: the whole schema of 0.1.0 in one reviewed revision.

Nothing was deployed before 0.1.0, so the four revisions of its development
(ledger core; rules and orders; point lifecycle; tiers) are squashed here.

- Tables: programs, API keys, members, accounts (a member's available, pending,
  held and debt; a program's issuance, redemption and expiry), the journal
  (journal_entry, posting), cached balances, idempotency records; rules versions
  and activations; paid orders, refunds, member events; the service's own
  secrets (service_secret: the key that signs list cursors); the projections kept
  beside the ledger (pending_credit, point_lot, lot_use, point_hold, member_tier,
  tier_change). Column comments live on the models (app/*/models.py).
- The database's own code, installed from frozen copies of app/sql/ in
  migrations/sql/20261128_0001/: ledger_post() and the functions built on it,
  the append-only and balanced-entry triggers, the NOTIFY triggers.
- The `default` program with its system accounts and rules version 1 (the
  default document: 1 point per 1 unit, nothing pending, no expiry).

Revision ID: 20261128_0001
Revises:
Create Date: 2026-11-28
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from app.sql import frozen, install

revision: str = "20261128_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEED_DEFAULT_PROGRAM = """
WITH p AS (
    INSERT INTO program (code, name, created_at) VALUES ('default', 'Default program', now())
    RETURNING id
)
INSERT INTO account (program_id, kind)
SELECT p.id, k.kind FROM p, (VALUES ('issuance'), ('redemption'), ('expiry')) AS k(kind)
"""

# The rules document a program starts with, as it was when this revision was written.
DEFAULT_DOCUMENT = (
    '{"timezone": "UTC", "currency": null, "earn": {"base": {"points": 1, "per": "1", "rounding": "floor"},'
    ' "exclude_categories": [], "multipliers": [], "stacking": "multiply", "bonuses": [],'
    ' "caps": {"per_order": null, "per_member_per_day": null}, "pending_days": 0}, "events": {},'
    ' "redeem": {"min_points": null, "increment": null, "point_value": null, "max_share_of_order": null},'
    ' "expiry": {"policy": "none", "months": null, "round_to": null, "warn_days": 30}, "tiers": [],'
    ' "tier_policy": {"window": "rolling_12_months", "term_months": 12, "downgrade": "one_down",'
    ' "grace_days": 0, "keep_with_points": {}}, "refunds": {"shortfall": "record"}}'
)

SEED_DEFAULT_RULES = f"""
WITH v AS (
    INSERT INTO rules_version (program_id, version, document, created_at, active, activated_at)
    SELECT id, 1, '{DEFAULT_DOCUMENT}'::jsonb, now(), true, now() FROM program WHERE code = 'default'
    RETURNING program_id
)
INSERT INTO rules_activation (program_id, version, activated_at) SELECT program_id, 1, now() FROM v
"""


def upgrade() -> None:
    op.create_table(
        "journal_entry",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("request_fingerprint", sa.Text(), nullable=False),
        sa.Column("reverses_entry_id", sa.Uuid(), nullable=True),
        sa.Column("actor_key_id", sa.Uuid(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("order_id", sa.Text(), nullable=True),
        sa.Column("rules_version", sa.Integer(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pending_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("explanation", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("source_entry_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('award', 'redemption', 'transfer', 'reversal', 'earn', 'refund', 'activate', 'event',"
            " 'hold', 'capture', 'release', 'expire', 'tier_keep')",
            name=op.f("ck_journal_entry_kind_known"),
        ),
        sa.ForeignKeyConstraint(
            ["reverses_entry_id"],
            ["journal_entry.id"],
            name=op.f("fk_journal_entry_reverses_entry_id_journal_entry"),
        ),
        sa.ForeignKeyConstraint(
            ["source_entry_id"],
            ["journal_entry.id"],
            name=op.f("fk_journal_entry_source_entry_id_journal_entry"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journal_entry")),
        sa.UniqueConstraint(
            "program_id", "idempotency_key", name=op.f("uq_journal_entry_program_id_idempotency_key")
        ),
    )
    op.create_index(
        "uq_journal_entry_reverses_entry_id",
        "journal_entry",
        ["reverses_entry_id"],
        unique=True,
        postgresql_where=sa.text("reverses_entry_id IS NOT NULL"),
    )
    op.create_table(
        "program",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("point_name", sa.Text(), server_default="points", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("code ~ '^[a-z0-9][a-z0-9_-]{0,63}$'", name=op.f("ck_program_code_format")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_program")),
        sa.UniqueConstraint("code", name=op.f("uq_program_code")),
    )
    op.create_table(
        "api_key",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("key_prefix", sa.Text(), nullable=False),
        sa.Column("key_hash", sa.Text(), nullable=False),
        sa.Column("scopes", sa.ARRAY(sa.Text()), nullable=False),
        sa.Column("partner_code", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["program_id"], ["program.id"], name=op.f("fk_api_key_program_id_program")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_key_key_hash")),
    )
    op.create_index(
        op.f("ix_api_key_program_id_created_at"), "api_key", ["program_id", "created_at"], unique=False
    )
    op.create_table(
        "idempotency_record",
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("request_fingerprint", sa.Text(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response_body", sa.LargeBinary(), nullable=False),
        sa.Column("entry_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["journal_entry.id"], name=op.f("fk_idempotency_record_entry_id_journal_entry")
        ),
        sa.PrimaryKeyConstraint("program_id", "key", name=op.f("pk_idempotency_record")),
    )
    op.create_table(
        "member",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="active", nullable=False),
        sa.Column("birthday", sa.Date(), nullable=True),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("referred_by_member_id", sa.BigInteger(), nullable=True),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'suspended', 'closed')", name=op.f("ck_member_status_known")
        ),
        sa.ForeignKeyConstraint(["program_id"], ["program.id"], name=op.f("fk_member_program_id_program")),
        sa.ForeignKeyConstraint(
            ["referred_by_member_id"], ["member.id"], name=op.f("fk_member_referred_by_member_id_member")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member")),
        sa.UniqueConstraint("program_id", "external_id", name=op.f("uq_member_program_id_external_id")),
    )
    op.create_index(op.f("ix_member_program_id_id"), "member", ["program_id", "id"], unique=False)
    op.create_table(
        "posting",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("entry_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("available_after", sa.BigInteger(), nullable=True),
        sa.Column("pending_after", sa.BigInteger(), nullable=True),
        sa.Column("held_after", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "(member_id IS NULL) = (available_after IS NULL)"
            " AND (member_id IS NULL) = (pending_after IS NULL)"
            " AND (member_id IS NULL) = (held_after IS NULL)",
            name=op.f("ck_posting_member_balances_after"),
        ),
        sa.CheckConstraint("amount <> 0", name=op.f("ck_posting_amount_not_zero")),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["journal_entry.id"], name=op.f("fk_posting_entry_id_journal_entry")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_posting")),
    )
    op.create_index(op.f("ix_posting_entry_id"), "posting", ["entry_id"], unique=False)
    op.create_index(
        "ix_posting_member_id_id",
        "posting",
        ["member_id", "id"],
        unique=False,
        postgresql_where=sa.text("member_id IS NOT NULL"),
    )
    op.create_table(
        "rules_activation",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_key_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["program_id"], ["program.id"], name=op.f("fk_rules_activation_program_id_program")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rules_activation")),
    )
    op.create_index(
        op.f("ix_rules_activation_program_id_activated_at"),
        "rules_activation",
        ["program_id", "activated_at"],
        unique=False,
    )
    op.create_table(
        "rules_version",
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_key_id", sa.Uuid(), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["program_id"], ["program.id"], name=op.f("fk_rules_version_program_id_program")
        ),
        sa.PrimaryKeyConstraint("program_id", "version", name=op.f("pk_rules_version")),
    )
    op.create_index(
        "uq_rules_version_program_id_active",
        "rules_version",
        ["program_id"],
        unique=True,
        postgresql_where=sa.text("active"),
    )
    op.create_table(
        "account",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "(member_id IS NOT NULL) = (kind IN ('available', 'pending', 'held', 'debt'))",
            name=op.f("ck_account_member_kinds"),
        ),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_account_member_id_member")),
        sa.ForeignKeyConstraint(["program_id"], ["program.id"], name=op.f("fk_account_program_id_program")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account")),
        sa.UniqueConstraint("member_id", "kind", name=op.f("uq_account_member_id_kind")),
    )
    op.create_index(
        "uq_account_program_id_kind_system",
        "account",
        ["program_id", "kind"],
        unique=True,
        postgresql_where=sa.text("member_id IS NULL"),
    )
    op.create_table(
        "member_balance",
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("available", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("pending", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("held", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("debt", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("version", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("available >= 0", name=op.f("ck_member_balance_available_not_negative")),
        sa.CheckConstraint("debt <= 0", name=op.f("ck_member_balance_debt_not_positive")),
        sa.CheckConstraint("held >= 0", name=op.f("ck_member_balance_held_not_negative")),
        sa.CheckConstraint("pending >= 0", name=op.f("ck_member_balance_pending_not_negative")),
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name=op.f("fk_member_balance_member_id_member")
        ),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_member_balance")),
    )
    op.create_table(
        "member_event",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("local_day", sa.Date(), nullable=False),
        sa.Column("entry_id", sa.Uuid(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("referrer_member_id", sa.BigInteger(), nullable=True),
        sa.Column("referrer_points", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("attributes", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["journal_entry.id"], name=op.f("fk_member_event_entry_id_journal_entry")
        ),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_member_event_member_id_member")),
        sa.ForeignKeyConstraint(
            ["referrer_member_id"], ["member.id"], name=op.f("fk_member_event_referrer_member_id_member")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_event")),
    )
    op.create_index(
        op.f("ix_member_event_member_id_occurred_at"),
        "member_event",
        ["member_id", "occurred_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_member_event_member_id_type_local_day"),
        "member_event",
        ["member_id", "type", "local_day"],
        unique=False,
    )
    op.create_index(
        "ix_member_event_referrer_member_id_occurred_at",
        "member_event",
        ["referrer_member_id", "occurred_at"],
        unique=False,
        postgresql_where=sa.text("referrer_member_id IS NOT NULL"),
    )
    op.create_table(
        "member_tier",
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("tier_code", sa.Text(), nullable=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("term_ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("grace_ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("override_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pinned", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("rules_version", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(tier_code IS NULL) = (since IS NULL)", name=op.f("ck_member_tier_since_with_tier")
        ),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_member_tier_member_id_member")),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_member_tier")),
    )
    op.create_table(
        "paid_order",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("order_id", sa.Text(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("request_fingerprint", sa.Text(), nullable=False),
        sa.Column("entry_id", sa.Uuid(), nullable=True),
        sa.Column("rules_version", sa.Integer(), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("local_day", sa.Date(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("total", sa.Numeric(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=True),
        sa.Column("lines", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("facts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("segments", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "refund_state", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("points_taken_back", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("refunded_total", sa.Numeric(), server_default="0", nullable=False),
        sa.CheckConstraint("points >= 0", name=op.f("ck_paid_order_points_not_negative")),
        sa.CheckConstraint(
            "points_taken_back >= 0 AND points_taken_back <= points",
            name=op.f("ck_paid_order_taken_back_within"),
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["journal_entry.id"],
            name=op.f("fk_paid_order_entry_id_journal_entry"),
            initially="DEFERRED",
            deferrable=True,
        ),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_paid_order_member_id_member")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paid_order")),
        sa.UniqueConstraint("program_id", "order_id", name=op.f("uq_paid_order_program_id_order_id")),
    )
    op.create_index(
        op.f("ix_paid_order_member_id_local_day"), "paid_order", ["member_id", "local_day"], unique=False
    )
    op.create_index(
        op.f("ix_paid_order_program_id_paid_at"), "paid_order", ["program_id", "paid_at"], unique=False
    )
    op.create_table(
        "pending_credit",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("entry_id", sa.Uuid(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("remaining", sa.BigInteger(), nullable=False),
        sa.Column("pending_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("activation_entry_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint("points > 0", name=op.f("ck_pending_credit_points_positive")),
        sa.CheckConstraint(
            "remaining >= 0 AND remaining <= points", name=op.f("ck_pending_credit_remaining_within_points")
        ),
        sa.ForeignKeyConstraint(
            ["activation_entry_id"],
            ["journal_entry.id"],
            name=op.f("fk_pending_credit_activation_entry_id_journal_entry"),
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["journal_entry.id"], name=op.f("fk_pending_credit_entry_id_journal_entry")
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name=op.f("fk_pending_credit_member_id_member")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_credit")),
        sa.UniqueConstraint("entry_id", "member_id", name=op.f("uq_pending_credit_entry_id_member_id")),
    )
    op.create_index(
        "ix_pending_credit_due",
        "pending_credit",
        ["pending_until", "id"],
        unique=False,
        postgresql_where=sa.text("remaining > 0"),
    )
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
        sa.CheckConstraint(
            "(status = 'active') = (close_entry_id IS NULL)", name=op.f("ck_point_hold_closed_by_entry")
        ),
        sa.CheckConstraint(
            "status IN ('active', 'captured', 'released', 'expired')", name=op.f("ck_point_hold_status_known")
        ),
        sa.CheckConstraint(
            "captured_points >= 0 AND captured_points <= points",
            name=op.f("ck_point_hold_captured_within_points"),
        ),
        sa.CheckConstraint("points > 0", name=op.f("ck_point_hold_points_positive")),
        sa.ForeignKeyConstraint(
            ["close_entry_id"], ["journal_entry.id"], name=op.f("fk_point_hold_close_entry_id_journal_entry")
        ),
        sa.ForeignKeyConstraint(["id"], ["journal_entry.id"], name=op.f("fk_point_hold_id_journal_entry")),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_point_hold_member_id_member")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_point_hold")),
    )
    op.create_index(
        "ix_point_hold_due",
        "point_hold",
        ["expires_at", "id"],
        unique=False,
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_index(op.f("ix_point_hold_member_id"), "point_hold", ["member_id"], unique=False)
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
        sa.ForeignKeyConstraint(
            ["entry_id"], ["journal_entry.id"], name=op.f("fk_point_lot_entry_id_journal_entry")
        ),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_point_lot_member_id_member")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_point_lot")),
    )
    op.create_index(
        "ix_point_lot_member_fifo",
        "point_lot",
        ["member_id", "expires_at", "id"],
        unique=False,
        postgresql_where=sa.text("remaining > 0"),
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
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["journal_entry.id"],
            name=op.f("fk_tier_change_entry_id_journal_entry"),
            initially="DEFERRED",
            deferrable=True,
        ),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_tier_change_member_id_member")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tier_change")),
    )
    op.create_index(op.f("ix_tier_change_member_id_id"), "tier_change", ["member_id", "id"], unique=False)
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
    op.create_index(op.f("ix_lot_use_lot_id"), "lot_use", ["lot_id"], unique=False)
    op.create_table(
        "order_refund",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("paid_order_id", sa.BigInteger(), nullable=False),
        sa.Column("refund_id", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("request_fingerprint", sa.Text(), nullable=False),
        sa.Column("entry_id", sa.Uuid(), nullable=True),
        sa.Column("amount", sa.Numeric(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("from_pending", sa.BigInteger(), nullable=False),
        sa.Column("from_available", sa.BigInteger(), nullable=False),
        sa.Column("shortfall", sa.BigInteger(), nullable=False),
        sa.Column("debt", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "points = from_pending + from_available + shortfall + debt",
            name=op.f("ck_order_refund_points_accounted_for"),
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["journal_entry.id"], name=op.f("fk_order_refund_entry_id_journal_entry")
        ),
        sa.ForeignKeyConstraint(
            ["paid_order_id"], ["paid_order.id"], name=op.f("fk_order_refund_paid_order_id_paid_order")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_refund")),
        sa.UniqueConstraint(
            "paid_order_id", "refund_id", name=op.f("uq_order_refund_paid_order_id_refund_id")
        ),
    )
    op.create_table(
        "service_secret",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_service_secret")),
    )
    # The key that signs list cursors: one per deployment, shared by every replica.
    op.get_bind().execute(
        sa.text("INSERT INTO service_secret (name, value, created_at) VALUES ('cursor', :value, now())"),
        {"value": secrets.token_bytes(32)},
    )
    # The database guards the ledger itself: the posting functions, the append-only
    # and balance triggers, the notifications (frozen copies of app/sql/).
    install(op.get_bind(), frozen(revision))
    op.execute(SEED_DEFAULT_PROGRAM)
    op.execute(SEED_DEFAULT_RULES)


def downgrade() -> None:
    # The ledger is append-only; dropping it is not a migration step.
    raise NotImplementedError("the ledger cannot be downgraded")
