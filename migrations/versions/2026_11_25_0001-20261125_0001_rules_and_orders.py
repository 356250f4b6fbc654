"""Rules documents, paid orders and refunds, pending credits, member events, debt.

- rules_version / rules_activation: versioned rules documents per program, one
  active; every existing program gets version 1, the default document.
- journal_entry: new kinds (earn, refund, activate, event) and an `explanation`.
- a member `debt` account (zero or negative) and its balance column, for programs
  whose refunds may put a member in debt.
- pending_credit: what each entry put in a pending account and what is left of it;
  ledger_post() now writes it, and a reversal of a pending credit takes from it.
- ledger_post() gains the explanation and, for callers with their own response
  shape (orders, refunds, events), the response body to keep for the key.
- ledger_post_order(): a checkout's order in one round trip.

Revision ID: 20261125_0001
Revises: 20261124_0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261125_0001"
down_revision: str | None = "20261124_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_LEDGER_POST = (
    "ledger_post(uuid, bigint, text, text, text, timestamptz, timestamptz, uuid, uuid, text, text,"
    " integer, timestamptz, timestamptz, jsonb, text[], text[], bigint[])"
)

# Same contract as the first revision's ledger_post(), plus:
# - the `debt` account: its balance stays at or below zero;
# - p_explanation, stored on the entry; p_response_body, kept for the key instead
#   of the rendered entry (orders, refunds and events answer in their own shape);
# - every credit of a pending account with p_pending_until records a pending_credit,
#   and a reversal's debit of a pending account takes it from the reversed credit.
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
    p_accounts text[],  -- each leg's account kind: available, pending, held, debt, issuance...
    p_amounts bigint[], -- each leg's signed points
    p_explanation jsonb DEFAULT NULL,
    p_response_body bytea DEFAULT NULL
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
    v_body bytea;
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
        expires_at, pending_until, metadata, explanation)
    VALUES (
        p_entry_id, p_program_id, p_kind, p_occurred_at, p_recorded_at, p_idempotency_key,
        p_request_fingerprint, p_reverses_entry_id, p_actor_key_id, p_reason, p_order_id,
        p_rules_version, p_expires_at, p_pending_until, coalesce(p_metadata, '{}'::jsonb),
        p_explanation)
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
               coalesce(sum(l.amount) FILTER (WHERE l.account = 'held'), 0) AS d_held,
               coalesce(sum(l.amount) FILTER (WHERE l.account = 'debt'), 0) AS d_debt
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
               debt = b.debt + v_member.d_debt,
               version = b.version + 1,
               updated_at = p_recorded_at
         WHERE b.member_id = v_member.member_id
           AND b.available + v_member.d_available >= 0
           AND b.pending + v_member.d_pending >= 0
           AND b.held + v_member.d_held >= 0
           AND b.debt + v_member.d_debt <= 0
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

        IF v_member.d_pending > 0 AND p_pending_until IS NOT NULL THEN
            INSERT INTO pending_credit (program_id, member_id, entry_id, points, remaining, pending_until)
            VALUES (p_program_id, v_member.member_id, p_entry_id, v_member.d_pending,
                    v_member.d_pending, p_pending_until);
        ELSIF v_member.d_pending < 0 AND p_reverses_entry_id IS NOT NULL THEN
            -- The CHECK on remaining refuses taking more than is left of the credit.
            UPDATE pending_credit c SET remaining = c.remaining + v_member.d_pending
             WHERE c.entry_id = p_reverses_entry_id AND c.member_id = v_member.member_id;
        END IF;

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

    IF p_response_body IS NOT NULL THEN
        v_body := p_response_body;
    ELSE
        -- Compact JSON, keys in EntryOut's order (row_to_json of a row, arrays of
        -- composite types); balances sorted by external id in byte order.
        SELECT convert_to(row_to_json(body)::text, 'UTF8') INTO v_body FROM (
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
    END IF;

    INSERT INTO idempotency_record
        (program_id, key, request_fingerprint, status_code, response_body, entry_id, created_at)
    VALUES (p_program_id, p_idempotency_key, p_request_fingerprint, 201, v_body, p_entry_id, p_recorded_at);

    RETURN QUERY SELECT false, p_request_fingerprint, 201, v_body;
END
$$;
"""

# A checkout's order in one round trip (the hot path; see bench/). The service has
# read the member's facts and computed the points; this checks that nothing about
# the member changed since (the balance row's version, under its lock), records
# the order, and posts its points. Answers:
# - 'posted': done; the response body is the one given;
# - 'exists': the order_id is taken; its fingerprint and response are returned
#   (the service replays them for the same order, or answers 409 order_exists);
# - 'stale': the member changed since the facts were read; nothing was written.
# Another request already used the Idempotency-Key: SQLSTATE LP007, nothing written.
LEDGER_POST_ORDER = r"""
CREATE FUNCTION ledger_post_order(
    p_entry_id uuid,
    p_program_id bigint,
    p_member_id bigint,
    p_member text,
    p_expected_version bigint,
    p_order_id text,
    p_idempotency_key text,
    p_request_fingerprint text,
    p_paid_at timestamptz,
    p_recorded_at timestamptz,
    p_actor_key_id uuid,
    p_rules_version integer,
    p_local_day date,
    p_currency text,
    p_total numeric,
    p_channel text,
    p_lines jsonb,
    p_facts jsonb,
    p_segments jsonb,
    p_explanation jsonb,
    p_points bigint,
    p_pending_until timestamptz,
    p_accounts text[],  -- the member's legs (pending or available, and debt repaid)
    p_amounts bigint[],
    p_response_body bytea
) RETURNS TABLE (outcome text, request_fingerprint text, response_body bytea)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_version bigint;
    v_order record;
    v_posted record;
BEGIN
    SELECT o.request_fingerprint, r.response_body INTO v_order
      FROM paid_order o
      LEFT JOIN idempotency_record r ON r.program_id = o.program_id AND r.key = o.idempotency_key
     WHERE o.program_id = p_program_id AND o.order_id = p_order_id;
    IF FOUND THEN
        RETURN QUERY SELECT 'exists', v_order.request_fingerprint, v_order.response_body;
        RETURN;
    END IF;

    SELECT b.version INTO v_version FROM member_balance b WHERE b.member_id = p_member_id FOR UPDATE;
    IF v_version IS DISTINCT FROM p_expected_version THEN
        RETURN QUERY SELECT 'stale', NULL::text, NULL::bytea;
        RETURN;
    END IF;

    INSERT INTO paid_order (
        program_id, order_id, member_id, idempotency_key, request_fingerprint, entry_id,
        rules_version, paid_at, recorded_at, local_day, currency, total, channel, lines, facts,
        points, segments)
    VALUES (
        p_program_id, p_order_id, p_member_id, p_idempotency_key, p_request_fingerprint,
        CASE WHEN cardinality(p_amounts) > 0 THEN p_entry_id END,
        p_rules_version, p_paid_at, p_recorded_at, p_local_day, p_currency, p_total, p_channel,
        p_lines, p_facts, p_points, p_segments)
    ON CONFLICT (program_id, order_id) DO NOTHING;
    IF NOT FOUND THEN  -- the same order_id, committed by a concurrent request meanwhile
        RETURN QUERY
            SELECT 'exists', o.request_fingerprint, r.response_body
              FROM paid_order o
              LEFT JOIN idempotency_record r ON r.program_id = o.program_id AND r.key = o.idempotency_key
             WHERE o.program_id = p_program_id AND o.order_id = p_order_id;
        RETURN;
    END IF;

    IF cardinality(p_amounts) > 0 THEN
        SELECT * INTO v_posted FROM ledger_post(
            p_entry_id, p_program_id, 'earn', p_idempotency_key, p_request_fingerprint,
            p_paid_at, p_recorded_at, p_actor_key_id, NULL, NULL, p_order_id, p_rules_version,
            NULL, p_pending_until, '{}'::jsonb,
            array_fill(p_member, ARRAY[cardinality(p_amounts)]) || NULL::text,
            p_accounts || 'issuance'::text,
            p_amounts || -p_points,
            p_explanation, p_response_body);
        IF v_posted.replayed THEN
            RAISE EXCEPTION 'Idempotency-Key % was used for another request', p_idempotency_key
                USING ERRCODE = 'LP007';
        END IF;
    ELSE
        INSERT INTO idempotency_record
            (program_id, key, request_fingerprint, status_code, response_body, entry_id, created_at)
        VALUES (p_program_id, p_idempotency_key, p_request_fingerprint, 201, p_response_body, NULL,
                p_recorded_at)
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'Idempotency-Key % was used for another request', p_idempotency_key
                USING ERRCODE = 'LP007';
        END IF;
    END IF;
    RETURN QUERY SELECT 'posted', p_request_fingerprint, p_response_body;
END
$$;
"""

DEFAULT_DOCUMENT = (
    '{"timezone": "UTC", "currency": null, "earn": {"base": {"points": 1, "per": "1", "rounding": "floor"},'
    ' "exclude_categories": [], "multipliers": [], "stacking": "multiply", "bonuses": [],'
    ' "caps": {"per_order": null, "per_member_per_day": null}, "pending_days": 0}, "events": {},'
    ' "redeem": {"min_points": null, "increment": null, "point_value": null, "max_share_of_order": null},'
    ' "expiry": {"policy": "none", "months": null, "round_to": null, "warn_days": 30}, "tiers": [],'
    ' "tier_policy": {"window": "rolling_12_months", "term_months": 12, "downgrade": "one_down",'
    ' "grace_days": 0, "keep_with_points": {}}, "refunds": {"shortfall": "record"}}'
)


def upgrade() -> None:
    op.add_column("journal_entry", sa.Column("explanation", postgresql.JSONB(astext_type=sa.Text())))
    op.drop_constraint(op.f("ck_journal_entry_kind_known"), "journal_entry", type_="check")
    op.create_check_constraint(
        op.f("ck_journal_entry_kind_known"),
        "journal_entry",
        "kind IN ('award', 'redemption', 'transfer', 'reversal', 'earn', 'refund', 'activate', 'event')",
    )

    op.drop_constraint(op.f("ck_account_member_kinds"), "account", type_="check")
    op.create_check_constraint(
        op.f("ck_account_member_kinds"),
        "account",
        "(member_id IS NOT NULL) = (kind IN ('available', 'pending', 'held', 'debt'))",
    )
    op.execute("INSERT INTO account (program_id, member_id, kind) SELECT program_id, id, 'debt' FROM member")
    op.add_column("member_balance", sa.Column("debt", sa.BigInteger(), server_default="0", nullable=False))
    op.create_check_constraint(op.f("ck_member_balance_debt_not_positive"), "member_balance", "debt <= 0")

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
    )
    op.execute(
        "INSERT INTO rules_version (program_id, version, document, created_at, active, activated_at)"
        f" SELECT id, 1, '{DEFAULT_DOCUMENT}'::jsonb, now(), true, now() FROM program"
    )
    op.execute(
        "INSERT INTO rules_activation (program_id, version, activated_at) SELECT id, 1, now() FROM program"
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
            ["member_id"], ["member.id"], name=op.f("fk_pending_credit_member_id_member")
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["journal_entry.id"], name=op.f("fk_pending_credit_entry_id_journal_entry")
        ),
        sa.ForeignKeyConstraint(
            ["activation_entry_id"],
            ["journal_entry.id"],
            name=op.f("fk_pending_credit_activation_entry_id_journal_entry"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_credit")),
        sa.UniqueConstraint("entry_id", "member_id", name=op.f("uq_pending_credit_entry_id_member_id")),
    )
    op.create_index(
        "ix_pending_credit_due",
        "pending_credit",
        ["pending_until", "id"],
        postgresql_where=sa.text("remaining > 0"),
    )
    # Awards made pending before this revision: what is still pending of each.
    op.execute(
        """
        INSERT INTO pending_credit (program_id, member_id, entry_id, points, remaining, pending_until)
        SELECT e.program_id, p.member_id, e.id, sum(p.amount), sum(p.amount), e.pending_until
          FROM journal_entry e
          JOIN posting p ON p.entry_id = e.id
          JOIN account a ON a.id = p.account_id AND a.kind = 'pending'
         WHERE e.pending_until IS NOT NULL AND e.reverses_entry_id IS NULL
         GROUP BY e.program_id, p.member_id, e.id, e.pending_until
        HAVING sum(p.amount) > 0
        """
    )
    op.execute(
        """
        UPDATE pending_credit c SET remaining = 0
          FROM journal_entry r WHERE r.reverses_entry_id = c.entry_id
        """
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
        sa.CheckConstraint("points >= 0", name=op.f("ck_paid_order_points_not_negative")),
        sa.CheckConstraint(
            "points_taken_back >= 0 AND points_taken_back <= points",
            name=op.f("ck_paid_order_taken_back_within"),
        ),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_paid_order_member_id_member")),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["journal_entry.id"],
            name=op.f("fk_paid_order_entry_id_journal_entry"),
            deferrable=True,
            initially="DEFERRED",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paid_order")),
        sa.UniqueConstraint("program_id", "order_id", name=op.f("uq_paid_order_program_id_order_id")),
    )
    op.create_index(op.f("ix_paid_order_member_id_local_day"), "paid_order", ["member_id", "local_day"])
    op.create_index(op.f("ix_paid_order_program_id_paid_at"), "paid_order", ["program_id", "paid_at"])
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
            ["paid_order_id"], ["paid_order.id"], name=op.f("fk_order_refund_paid_order_id_paid_order")
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["journal_entry.id"], name=op.f("fk_order_refund_entry_id_journal_entry")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_refund")),
        sa.UniqueConstraint(
            "paid_order_id", "refund_id", name=op.f("uq_order_refund_paid_order_id_refund_id")
        ),
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
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_member_event_member_id_member")),
        sa.ForeignKeyConstraint(
            ["referrer_member_id"], ["member.id"], name=op.f("fk_member_event_referrer_member_id_member")
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["journal_entry.id"], name=op.f("fk_member_event_entry_id_journal_entry")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_event")),
    )
    op.create_index(
        op.f("ix_member_event_member_id_type_local_day"), "member_event", ["member_id", "type", "local_day"]
    )

    op.execute(f"DROP FUNCTION {OLD_LEDGER_POST}")
    op.execute(LEDGER_POST)
    op.execute(LEDGER_POST_ORDER)


def downgrade() -> None:
    raise NotImplementedError("the ledger cannot be downgraded")
