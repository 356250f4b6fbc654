"""Ledger core: programs, API keys, members, accounts, journal, postings, idempotency.

Besides the tables, the database itself guards the ledger:
- journal_entry and posting refuse UPDATE, DELETE and TRUNCATE (a mistake is
  corrected by a reversing entry);
- a deferred constraint trigger refuses, at commit, any entry whose postings do
  not sum to zero or that has fewer than two;
- member_balance keeps available (and pending, held) at or above zero;
- ledger_post() is the one way points move: in one call it writes an entry, its
  postings, the members' balances (locking members in id order) and the
  idempotency record with the response.

Revision ID: 20261124_0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261124_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLSTATEs raised by the ledger's own functions (class "LP" is unused by PostgreSQL);
# app/ledger/repository.py maps them to problem codes.
REFUSE_CHANGE = r"""
CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'LP002', HINT = 'correct a mistake with a reversing entry';
END
$$;
"""

CHECK_BALANCED = r"""
CREATE FUNCTION ledger_check_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_entry_id uuid;
    v_sum numeric;
    v_count bigint;
BEGIN
    IF TG_TABLE_NAME = 'posting' THEN
        v_entry_id := NEW.entry_id;
    ELSE
        v_entry_id := NEW.id;
    END IF;
    SELECT coalesce(sum(p.amount), 0), count(*) INTO v_sum, v_count
      FROM posting p WHERE p.entry_id = v_entry_id;
    IF v_sum <> 0 OR v_count < 2 THEN
        RAISE EXCEPTION 'journal entry % does not balance: % postings summing to %',
            v_entry_id, v_count, v_sum USING ERRCODE = 'LP003';
    END IF;
    RETURN NULL;
END
$$;
"""

RESPONSE_TYPES = [
    "CREATE TYPE ledger_posting_out AS (member text, account text, points bigint)",
    "CREATE TYPE ledger_balance_out AS (member text, available bigint, pending bigint, held bigint)",
]

RFC3339 = r"""
CREATE FUNCTION ledger_rfc3339(value timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT to_char(value AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;
"""

# ledger_post() is the whole earn/burn/transfer hot path in one round trip: the
# entry, its postings, the members' balances, the response body and the
# idempotency record that keeps it. On these machines the Python side sets the
# ceiling (DESIGN.md), so the service sends one statement per posting, in
# autocommit, and passes the body through; bench/awards.py measures the effect.
# The body's shape is EntryOut in app/ledger/schemas.py (a test holds them equal).
LEDGER_POST = r"""
CREATE FUNCTION ledger_post(
    p_entry_id uuid,
    p_program_id bigint,
    p_kind text,
    p_idempotency_key text,
    p_request_fingerprint text,
    p_occurred_at timestamptz,
    p_recorded_at timestamptz,
    p_actor_key_id uuid,
    p_reverses_entry_id uuid,
    p_reason text,
    p_order_id text,
    p_rules_version integer,
    p_expires_at timestamptz,
    p_pending_until timestamptz,
    p_metadata jsonb,
    p_members text[],   -- each leg's member external id, NULL for a system account
    p_accounts text[],  -- each leg's account kind: available, pending, held, issuance...
    p_amounts bigint[]  -- each leg's signed points
) RETURNS TABLE (
    replayed boolean,           -- true: the key was already used; the rest is what was stored
    request_fingerprint text,
    status_code integer,
    response_body bytea
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_member record;
    v_balance record;
    v_written bigint := 0;
    v_rows bigint;
    v_members text[] := '{}';
    v_available bigint[] := '{}';
    v_pending bigint[] := '{}';
    v_held bigint[] := '{}';
    v_body text;
BEGIN
    IF cardinality(p_amounts) < 2
       OR cardinality(p_members) <> cardinality(p_amounts)
       OR cardinality(p_accounts) <> cardinality(p_amounts)
       OR (SELECT sum(a) FROM unnest(p_amounts) AS a) <> 0 THEN
        RAISE EXCEPTION 'an entry needs two or more legs summing to zero'
            USING ERRCODE = 'LP003';
    END IF;

    -- The unique (program_id, idempotency_key) index is the idempotency guarantee:
    -- a concurrent request with the same key waits here for the first to finish,
    -- then finds its entry and answers with the first response.
    INSERT INTO journal_entry (
        id, program_id, kind, occurred_at, recorded_at, idempotency_key,
        request_fingerprint, reverses_entry_id, actor_key_id, reason, order_id, rules_version,
        expires_at, pending_until, metadata)
    VALUES (
        p_entry_id, p_program_id, p_kind, p_occurred_at, p_recorded_at, p_idempotency_key,
        p_request_fingerprint, p_reverses_entry_id, p_actor_key_id, p_reason, p_order_id,
        p_rules_version, p_expires_at, p_pending_until, coalesce(p_metadata, '{}'::jsonb))
    ON CONFLICT (program_id, idempotency_key) DO NOTHING;
    IF NOT FOUND THEN
        RETURN QUERY
            SELECT true, e.request_fingerprint, r.status_code, r.response_body
              FROM journal_entry e
              LEFT JOIN idempotency_record r
                ON r.program_id = e.program_id AND r.key = e.idempotency_key
             WHERE e.program_id = p_program_id AND e.idempotency_key = p_idempotency_key;
        RETURN;
    END IF;

    -- One balance update per member, in ascending member id: entries that touch
    -- the same members lock them in the same order, so they queue, never deadlock.
    -- The WHERE clause is the balance check; under READ COMMITTED a waiting update
    -- re-checks it against the row as the previous holder left it.
    FOR v_member IN
        SELECT m.id AS member_id, l.external_id,
               coalesce(sum(l.amount) FILTER (WHERE l.account = 'available'), 0) AS d_available,
               coalesce(sum(l.amount) FILTER (WHERE l.account = 'pending'), 0) AS d_pending,
               coalesce(sum(l.amount) FILTER (WHERE l.account = 'held'), 0) AS d_held
          FROM unnest(p_members, p_accounts, p_amounts) AS l(external_id, account, amount)
          LEFT JOIN member m ON m.program_id = p_program_id AND m.external_id = l.external_id
         WHERE l.external_id IS NOT NULL
         GROUP BY m.id, l.external_id
         ORDER BY m.id NULLS FIRST
    LOOP
        IF v_member.member_id IS NULL THEN
            RAISE EXCEPTION 'member % not found', v_member.external_id
                USING ERRCODE = 'LP004', DETAIL = v_member.external_id;
        END IF;

        UPDATE member_balance b
           SET available = b.available + v_member.d_available,
               pending = b.pending + v_member.d_pending,
               held = b.held + v_member.d_held,
               version = b.version + 1,
               updated_at = p_recorded_at
         WHERE b.member_id = v_member.member_id
           AND b.available + v_member.d_available >= 0
           AND b.pending + v_member.d_pending >= 0
           AND b.held + v_member.d_held >= 0
        RETURNING b.available, b.pending, b.held INTO v_balance;
        IF NOT FOUND THEN
            SELECT b.available, b.pending, b.held INTO v_balance
              FROM member_balance b WHERE b.member_id = v_member.member_id;
            RAISE EXCEPTION 'member % has not enough points', v_member.external_id
                USING ERRCODE = 'LP001',
                      DETAIL = json_build_object(
                          'member', v_member.external_id,
                          'available', v_balance.available, 'pending', v_balance.pending,
                          'held', v_balance.held, 'change_available', v_member.d_available,
                          'change_pending', v_member.d_pending,
                          'change_held', v_member.d_held)::text;
        END IF;

        INSERT INTO posting (entry_id, account_id, member_id, amount,
                             available_after, pending_after, held_after)
        SELECT p_entry_id, a.id, v_member.member_id, l.amount,
               v_balance.available, v_balance.pending, v_balance.held
          FROM unnest(p_members, p_accounts, p_amounts)
               WITH ORDINALITY AS l(external_id, account, amount, n)
          JOIN account a ON a.member_id = v_member.member_id AND a.kind = l.account
         WHERE l.external_id = v_member.external_id
         ORDER BY l.n;
        GET DIAGNOSTICS v_rows = ROW_COUNT;
        v_written := v_written + v_rows;

        v_members := v_members || v_member.external_id;
        v_available := v_available || v_balance.available;
        v_pending := v_pending || v_balance.pending;
        v_held := v_held || v_balance.held;
    END LOOP;

    -- System accounts (issuance, redemption...) have no balance row and take no
    -- lock: their balance is the sum of their postings.
    INSERT INTO posting (entry_id, account_id, amount)
    SELECT p_entry_id, a.id, l.amount
      FROM unnest(p_members, p_accounts, p_amounts)
           WITH ORDINALITY AS l(external_id, account, amount, n)
      JOIN account a ON a.program_id = p_program_id AND a.member_id IS NULL AND a.kind = l.account
     WHERE l.external_id IS NULL
     ORDER BY l.n;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    v_written := v_written + v_rows;

    IF v_written <> cardinality(p_amounts) THEN
        RAISE EXCEPTION 'entry names an account that does not exist' USING ERRCODE = 'LP005';
    END IF;

    -- Compact JSON, keys in EntryOut's order (row_to_json of a row, arrays of
    -- composite types); balances sorted by external id in byte order.
    SELECT row_to_json(body)::text INTO v_body FROM (
        SELECT p_entry_id AS id,
               p_kind AS kind,
               (SELECT sum(a) FROM unnest(p_amounts) AS a WHERE a > 0) AS points,
               ledger_rfc3339(p_occurred_at) AS occurred_at,
               ledger_rfc3339(p_recorded_at) AS recorded_at,
               p_reason AS reason,
               p_order_id AS order_id,
               p_reverses_entry_id AS reverses,
               p_rules_version AS rules_version,
               ledger_rfc3339(p_expires_at) AS expires_at,
               ledger_rfc3339(p_pending_until) AS pending_until,
               coalesce(p_metadata, '{}'::jsonb) AS metadata,
               (SELECT array_to_json(array_agg(
                           ROW(l.external_id, l.account, l.amount)::ledger_posting_out ORDER BY l.n))
                  FROM unnest(p_members, p_accounts, p_amounts)
                       WITH ORDINALITY AS l(external_id, account, amount, n)) AS postings,
               coalesce((SELECT array_to_json(array_agg(
                                    ROW(b.member, b.available, b.pending, b.held)::ledger_balance_out
                                    ORDER BY b.member COLLATE "C"))
                           FROM unnest(v_members, v_available, v_pending, v_held)
                                AS b(member, available, pending, held)), '[]'::json) AS balances
    ) AS body;

    INSERT INTO idempotency_record
        (program_id, key, request_fingerprint, status_code, response_body, entry_id, created_at)
    VALUES (p_program_id, p_idempotency_key, p_request_fingerprint, 201,
            convert_to(v_body, 'UTF8'), p_entry_id, p_recorded_at);

    RETURN QUERY SELECT false, p_request_fingerprint, 201, convert_to(v_body, 'UTF8');
END
$$;
"""

# Processes cache verified API keys (app/auth/service.py) and LISTEN on this
# channel, so a revocation, however it is made, reaches all of them at commit.
NOTIFY_KEY_REVOKED = r"""
CREATE FUNCTION api_key_notify_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('api_key_revoked', NEW.id::text);
    RETURN NULL;
END
$$;
"""

TRIGGERS = [
    "CREATE TRIGGER api_key_revoked AFTER UPDATE OF revoked_at ON api_key FOR EACH ROW"
    " WHEN (NEW.revoked_at IS DISTINCT FROM OLD.revoked_at) EXECUTE FUNCTION api_key_notify_revoked()",
    "CREATE TRIGGER journal_entry_append_only BEFORE UPDATE OR DELETE ON journal_entry"
    " FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()",
    "CREATE TRIGGER journal_entry_no_truncate BEFORE TRUNCATE ON journal_entry"
    " FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()",
    "CREATE TRIGGER posting_append_only BEFORE UPDATE OR DELETE ON posting"
    " FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()",
    "CREATE TRIGGER posting_no_truncate BEFORE TRUNCATE ON posting"
    " FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()",
    # Postings reference accounts without a foreign key (see the models), so the
    # referenced rows must never go away.
    "CREATE TRIGGER account_no_delete BEFORE DELETE ON account"
    " FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()",
    "CREATE TRIGGER program_no_delete BEFORE DELETE ON program"
    " FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()",
    # Checked at commit, once every posting of the entry is in.
    "CREATE CONSTRAINT TRIGGER journal_entry_balanced AFTER INSERT ON journal_entry"
    " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_balanced()",
    "CREATE CONSTRAINT TRIGGER posting_balanced AFTER INSERT ON posting"
    " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_balanced()",
]

SEED_DEFAULT_PROGRAM = """
WITH p AS (
    INSERT INTO program (code, name, created_at) VALUES ('default', 'Default program', now())
    RETURNING id
)
INSERT INTO account (program_id, kind)
SELECT p.id, k.kind FROM p, (VALUES ('issuance'), ('redemption')) AS k(kind)
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
        sa.CheckConstraint(
            "kind IN ('award', 'redemption', 'transfer', 'reversal')",
            name=op.f("ck_journal_entry_kind_known"),
        ),
        sa.ForeignKeyConstraint(
            ["reverses_entry_id"],
            ["journal_entry.id"],
            name=op.f("fk_journal_entry_reverses_entry_id_journal_entry"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journal_entry")),
        sa.UniqueConstraint(
            "program_id",
            "idempotency_key",
            name=op.f("uq_journal_entry_program_id_idempotency_key"),
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
        op.f("ix_api_key_program_id_created_at"),
        "api_key",
        ["program_id", "created_at"],
        unique=False,
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
            ["entry_id"],
            ["journal_entry.id"],
            name=op.f("fk_idempotency_record_entry_id_journal_entry"),
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
            ["referred_by_member_id"],
            ["member.id"],
            name=op.f("fk_member_referred_by_member_id_member"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member")),
        sa.UniqueConstraint("program_id", "external_id", name=op.f("uq_member_program_id_external_id")),
    )
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
        "account",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "(member_id IS NOT NULL) = (kind IN ('available', 'pending', 'held'))",
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
        sa.Column("version", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("available >= 0", name=op.f("ck_member_balance_available_not_negative")),
        sa.CheckConstraint("held >= 0", name=op.f("ck_member_balance_held_not_negative")),
        sa.CheckConstraint("pending >= 0", name=op.f("ck_member_balance_pending_not_negative")),
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name=op.f("fk_member_balance_member_id_member")
        ),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_member_balance")),
    )
    op.execute(REFUSE_CHANGE)
    op.execute(CHECK_BALANCED)
    for statement in RESPONSE_TYPES:
        op.execute(statement)
    op.execute(RFC3339)
    op.execute(NOTIFY_KEY_REVOKED)
    op.execute(LEDGER_POST)
    for statement in TRIGGERS:
        op.execute(statement)
    op.execute(SEED_DEFAULT_PROGRAM)


def downgrade() -> None:
    # The ledger is append-only; dropping it is not a migration step.
    raise NotImplementedError("the ledger core cannot be downgraded")
