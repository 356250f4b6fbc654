"""program_id leads every key

A program (tenant) is the unit the schema can be distributed by (Citus, or any
engine that shards PostgreSQL by a key): every primary key, unique constraint and
unique index of a per-program table now leads with program_id, and every foreign
key between two per-program tables includes it, so each program's rows and joins
stay on one node. tests/test_distribution_keys.py checks the catalog.

- program_id added (backfilled from the parent row, NOT NULL) to posting,
  member_balance, lot_use, expiry_notice, order_refund, partner_balance,
  partner_rate, partner_line, partner_payment, webhook_delivery, webhook_attempt.
- Primary keys (program_id, ...) on every per-program table; unique keys and
  unique indexes led by program_id (their names follow their columns).
- Foreign keys between per-program tables are (program_id, ...) composites; a key
  is named after its first column other than program_id (app/db.py), so most keep
  their names; api_key's key to partner is renamed fk_api_key_partner_code_partner.
- ix_member_program_id_id goes: the primary key (program_id, id) is the same index.
- api_key_lookup (new, global): a key's digest to its program, read before the
  program is known; api_key is per program and references it.
- Every SQL function that reads or writes these tables by key passes program_id.

Revision ID: 20261129_0003
Revises: 20261129_0002
Create Date: 2026-11-29 03:47:29.716866+00:00
"""

from collections.abc import Sequence

from alembic import op

from app.sql import frozen, install

revision: str = "20261129_0003"
down_revision: str | None = "20261129_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Foreign keys between per-program tables: (table, column, referenced table,
# referenced column, options). Each becomes (program_id, column) -> (program_id,
# referenced column), named fk_<table>_<column>_<referenced table>.
PROGRAM_FKS: list[tuple[str, str, str, str, str]] = [
    ("account", "member_id", "member", "id", ""),
    ("account", "partner_id", "partner", "id", ""),
    ("conversion", "close_entry_id", "journal_entry", "id", ""),
    ("conversion", "id", "journal_entry", "id", ""),
    ("conversion", "member_id", "member", "id", ""),
    ("entry_chain", "entry_id", "journal_entry", "id", ""),
    ("event_log", "entry_id", "journal_entry", "id", ""),
    ("expiry_notice", "member_id", "member", "id", ""),
    ("idempotency_record", "entry_id", "journal_entry", "id", ""),
    ("journal_entry", "reverses_entry_id", "journal_entry", "id", ""),
    ("journal_entry", "source_entry_id", "journal_entry", "id", ""),
    ("lot_use", "entry_id", "journal_entry", "id", ""),
    ("lot_use", "lot_id", "point_lot", "id", ""),
    ("member", "referred_by_member_id", "member", "id", ""),
    ("member_balance", "member_id", "member", "id", ""),
    ("member_event", "entry_id", "journal_entry", "id", ""),
    ("member_event", "member_id", "member", "id", ""),
    ("member_event", "referrer_member_id", "member", "id", ""),
    ("member_tier", "member_id", "member", "id", ""),
    ("order_refund", "entry_id", "journal_entry", "id", ""),
    ("order_refund", "paid_order_id", "paid_order", "id", ""),
    ("paid_order", "entry_id", "journal_entry", "id", "DEFERRABLE INITIALLY DEFERRED"),
    ("paid_order", "member_id", "member", "id", ""),
    ("partner_balance", "partner_id", "partner", "id", ""),
    ("partner_line", "entry_id", "journal_entry", "id", ""),
    ("partner_line", "statement_id", "partner_statement", "id", "DEFERRABLE INITIALLY DEFERRED"),
    ("partner_payment", "partner_id", "partner", "id", ""),
    ("partner_payment", "statement_id", "partner_statement", "id", ""),
    ("partner_rate", "partner_id", "partner", "id", ""),
    ("partner_redemption", "id", "journal_entry", "id", ""),
    ("partner_redemption", "member_id", "member", "id", ""),
    ("partner_redemption", "reversal_entry_id", "journal_entry", "id", ""),
    ("partner_statement", "partner_id", "partner", "id", ""),
    ("pending_credit", "activation_entry_id", "journal_entry", "id", ""),
    ("pending_credit", "entry_id", "journal_entry", "id", ""),
    ("pending_credit", "member_id", "member", "id", ""),
    ("point_hold", "close_entry_id", "journal_entry", "id", ""),
    ("point_hold", "id", "journal_entry", "id", ""),
    ("point_hold", "member_id", "member", "id", ""),
    ("point_lot", "entry_id", "journal_entry", "id", ""),
    ("point_lot", "member_id", "member", "id", ""),
    ("posting", "entry_id", "journal_entry", "id", ""),
    ("tier_change", "entry_id", "journal_entry", "id", "DEFERRABLE INITIALLY DEFERRED"),
    ("tier_change", "member_id", "member", "id", ""),
    ("webhook_attempt", "delivery_id", "webhook_delivery", "id", ""),
    ("webhook_delivery", "endpoint_id", "webhook_endpoint", "id", ""),
    ("webhook_delivery", "event_id", "event_log", "id", ""),
]

# Tables that gain program_id, in an order where each parent is filled first:
# (table, how to fill it from its parent, append-only triggers to step around).
NEW_PROGRAM_IDS: list[tuple[str, str, tuple[str, ...]]] = [
    (
        "posting",
        "UPDATE posting t SET program_id = e.program_id FROM journal_entry e WHERE e.id = t.entry_id",
        ("posting_append_only",),
    ),
    (
        "member_balance",
        "UPDATE member_balance t SET program_id = m.program_id FROM member m WHERE m.id = t.member_id",
        (),
    ),
    (
        "lot_use",
        "UPDATE lot_use t SET program_id = l.program_id FROM point_lot l WHERE l.id = t.lot_id",
        (),
    ),
    (
        "expiry_notice",
        "UPDATE expiry_notice t SET program_id = m.program_id FROM member m WHERE m.id = t.member_id",
        (),
    ),
    (
        "order_refund",
        "UPDATE order_refund t SET program_id = o.program_id FROM paid_order o WHERE o.id = t.paid_order_id",
        (),
    ),
    (
        "partner_balance",
        "UPDATE partner_balance t SET program_id = p.program_id FROM partner p WHERE p.id = t.partner_id",
        (),
    ),
    (
        "partner_rate",
        "UPDATE partner_rate t SET program_id = p.program_id FROM partner p WHERE p.id = t.partner_id",
        ("partner_rate_append_only",),
    ),
    (
        "partner_line",
        "UPDATE partner_line t SET program_id = e.program_id FROM journal_entry e WHERE e.id = t.entry_id",
        ("partner_line_claim_only",),
    ),
    (
        "partner_payment",
        "UPDATE partner_payment t SET program_id = s.program_id"
        " FROM partner_statement s WHERE s.id = t.statement_id",
        ("partner_payment_append_only",),
    ),
    (
        "webhook_delivery",
        "UPDATE webhook_delivery t SET program_id = w.program_id"
        " FROM webhook_endpoint w WHERE w.id = t.endpoint_id",
        (),
    ),
    (
        "webhook_attempt",
        "UPDATE webhook_attempt t SET program_id = d.program_id"
        " FROM webhook_delivery d WHERE d.id = t.delivery_id",
        (),
    ),
]

# Primary keys: (table, new columns); each keeps its name pk_<table>.
PRIMARY_KEYS: list[tuple[str, str]] = [
    ("account", "program_id, id"),
    ("api_key", "program_id, id"),
    ("conversion", "program_id, id"),
    ("entry_chain", "program_id, entry_id"),
    ("event_log", 'program_id, "position"'),
    ("expiry_notice", "program_id, member_id, expires_at, days_before"),
    ("journal_entry", "program_id, id"),
    ("lot_use", "program_id, entry_id, lot_id"),
    ("member", "program_id, id"),
    ("member_balance", "program_id, member_id"),
    ("member_event", "program_id, id"),
    ("member_tier", "program_id, member_id"),
    ("order_refund", "program_id, id"),
    ("paid_order", "program_id, id"),
    ("partner", "program_id, id"),
    ("partner_balance", "program_id, partner_id, slot"),
    ("partner_line", "program_id, entry_id, partner_id"),
    ("partner_payment", "program_id, statement_id"),
    ("partner_rate", "program_id, id"),
    ("partner_redemption", "program_id, id"),
    ("partner_statement", "program_id, id"),
    ("pending_credit", "program_id, id"),
    ("point_hold", "program_id, id"),
    ("point_lot", "program_id, id"),
    ("posting", "program_id, id"),
    ("rules_activation", "program_id, id"),
    ("tier_change", "program_id, id"),
    ("webhook_attempt", "program_id, id"),
    ("webhook_delivery", "program_id, id"),
    ("webhook_endpoint", "program_id, id"),
]

# Unique constraints: (table, old name, new name, new columns).
UNIQUE_CONSTRAINTS: list[tuple[str, str, str, str]] = [
    (
        "account",
        "uq_account_member_id_kind",
        "uq_account_program_id_member_id_kind",
        "program_id, member_id, kind",
    ),
    ("api_key", "uq_api_key_key_hash", "uq_api_key_program_id_key_hash", "program_id, key_hash"),
    ("event_log", "uq_event_log_entry_id", "uq_event_log_program_id_entry_id", "program_id, entry_id"),
    ("event_log", "uq_event_log_id", "uq_event_log_program_id_id", "program_id, id"),
    (
        "order_refund",
        "uq_order_refund_paid_order_id_refund_id",
        "uq_order_refund_program_id_paid_order_id_refund_id",
        "program_id, paid_order_id, refund_id",
    ),
    (
        "partner_rate",
        "uq_partner_rate_partner_id_kind_effective_from",
        "uq_partner_rate_program_id_partner_id_kind_effective_from",
        "program_id, partner_id, kind, effective_from",
    ),
    (
        "partner_statement",
        "uq_partner_statement_partner_id_period_end",
        "uq_partner_statement_program_id_partner_id_period_end",
        "program_id, partner_id, period_end",
    ),
    (
        "pending_credit",
        "uq_pending_credit_entry_id_member_id",
        "uq_pending_credit_program_id_entry_id_member_id",
        "program_id, entry_id, member_id",
    ),
    (
        "webhook_attempt",
        "uq_webhook_attempt_delivery_id_attempt",
        "uq_webhook_attempt_program_id_delivery_id_attempt",
        "program_id, delivery_id, attempt",
    ),
]

# Partial unique indexes: (old name, new name, definition).
UNIQUE_INDEXES: list[tuple[str, str, str]] = [
    (
        "uq_journal_entry_reverses_entry_id",
        "uq_journal_entry_program_id_reverses_entry_id",
        "journal_entry (program_id, reverses_entry_id) WHERE reverses_entry_id IS NOT NULL",
    ),
    (
        "uq_partner_redemption_partner_id_reference",
        "uq_partner_redemption_program_id_partner_id_reference",
        "partner_redemption (program_id, partner_id, reference) WHERE NOT donation",
    ),
    (
        "uq_conversion_partner_id_reference",
        "uq_conversion_program_id_partner_id_reference",
        "conversion (program_id, partner_id, reference) WHERE direction = 'in'",
    ),
]


def upgrade() -> None:
    # Every key that points at a key about to change goes first.
    for table, column, referenced, _, _ in PROGRAM_FKS:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT fk_{table}_{column}_{referenced}")
    op.execute("ALTER TABLE api_key DROP CONSTRAINT fk_api_key_program_id_partner")

    for table, fill, guards in NEW_PROGRAM_IDS:
        op.execute(f"ALTER TABLE {table} ADD COLUMN program_id bigint")
        for trigger in guards:  # append-only tables: this one fill is not a change of their rows
            op.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
        op.execute(fill)
        for trigger in guards:
            op.execute(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}")
        op.execute(f"ALTER TABLE {table} ALTER COLUMN program_id SET NOT NULL")

    for table, columns in PRIMARY_KEYS:
        op.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT pk_{table},"
            f" ADD CONSTRAINT pk_{table} PRIMARY KEY ({columns})"
        )
    for table, old, new, columns in UNIQUE_CONSTRAINTS:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {old}, ADD CONSTRAINT {new} UNIQUE ({columns})")
    for old, new, definition in UNIQUE_INDEXES:
        op.execute(f"DROP INDEX {old}")
        op.execute(f"CREATE UNIQUE INDEX {new} ON {definition}")
    # the primary key (program_id, id) is this index now
    # An entry's postings are read with their program: (program_id, entry_id), so a
    # lookup never ANDs in a range of the program's whole primary key.
    op.drop_index("ix_posting_entry_id", table_name="posting")
    op.create_index("ix_posting_program_id_entry_id", "posting", ["program_id", "entry_id"], unique=False)
    op.execute("DROP INDEX ix_member_program_id_id")

    for table, column, referenced, referenced_column, options in PROGRAM_FKS:
        op.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT fk_{table}_{column}_{referenced}"
            f" FOREIGN KEY (program_id, {column}) REFERENCES {referenced} (program_id, {referenced_column})"
            f" {options}".rstrip()
        )

    # API keys: authenticating reads a key by its digest before it knows the
    # program, so the digest's program is kept in a global table of its own.
    op.execute(
        "CREATE TABLE api_key_lookup ("
        " key_hash text NOT NULL,"
        " program_id bigint NOT NULL,"
        " CONSTRAINT pk_api_key_lookup PRIMARY KEY (key_hash),"
        " CONSTRAINT fk_api_key_lookup_program_id_program FOREIGN KEY (program_id) REFERENCES program (id))"
    )
    op.execute("INSERT INTO api_key_lookup (key_hash, program_id) SELECT key_hash, program_id FROM api_key")
    op.execute(
        "ALTER TABLE api_key ADD CONSTRAINT fk_api_key_key_hash_api_key_lookup"
        " FOREIGN KEY (key_hash) REFERENCES api_key_lookup (key_hash)"
    )
    op.execute(
        "ALTER TABLE api_key ADD CONSTRAINT fk_api_key_partner_code_partner"
        " FOREIGN KEY (program_id, partner_code) REFERENCES partner (program_id, code)"
    )

    # The SQL objects this revision changes: frozen copies of app/sql/ written by
    # migrations/new_revision.py into migrations/sql/<revision>/.
    install(op.get_bind(), frozen(revision))


def downgrade() -> None:
    raise NotImplementedError("the ledger cannot be downgraded")
