-- ledger_post(): the one way points move. In one statement it writes a journal
-- entry, its postings, the balances of the members it touches, the projections
-- that follow the postings (pending credits, lots) and the idempotency record with
-- the response to replay; callers send it in autocommit or inside their own
-- transaction (orders, refunds, events, holds, jobs).
--
-- Legs: p_members / p_accounts / p_amounts are parallel arrays, one element per
-- posting: the member's external id (NULL for a program's system account), the
-- account kind (available, pending, held, debt; issuance, redemption, expiry) and
-- the signed points. Two or more legs summing to zero, or SQLSTATE LP003.
--
-- Idempotency: the unique (program_id, idempotency_key) index decides. A key that
-- is already taken writes nothing and answers replayed = true with the first
-- request's fingerprint, status and body (a concurrent request with the same key
-- waits for the first to commit, then replays it). The caller compares the
-- fingerprint to tell a retry from a reuse.
--
-- Every row it reads or writes is the program's: each lookup gives p_program_id,
-- which leads every key (docs/ledger.md, "Keys lead with program_id").
--
-- Balances: one row per member, updated in ascending member id (entries touching
-- the same members queue, never deadlock); the UPDATE's WHERE clause is the balance
-- check (available, pending, held >= 0, debt <= 0), re-evaluated under READ
-- COMMITTED against the row as the previous holder left it. A member missing from
-- the program: LP004 (DETAIL: the external id). A balance that would go negative:
-- LP001 (DETAIL: JSON with the member, its balances and the entry's changes). A leg
-- naming an account that does not exist: LP005. A balance past 2^63-1: 22003.
-- Member status (p_member_check; NULL: no check, for jobs, captures and releases
-- and the orders ledger_post_order() has checked): read after the member's balance
-- row is locked, in a statement of its own, so it is the status as the last
-- holder of that lock left it (every status change takes the same lock first). With
-- 'open' a closed member refuses the entry; with 'move' so does a suspended one,
-- and a frozen one when the entry takes points from it (its available points go
-- down or its held points up). A refused member: LP012 (DETAIL: JSON with the
-- member, its status and whether the entry took points from it).
-- Each member posting records the member's balances right after the entry, and
-- every posting the entry's p_recorded_at (a balance as of an instant reads a
-- member's postings alone).
-- System accounts have no balance row and take no lock: concurrent earns never
-- queue on the issuance account.
--
-- Partners: p_partners (parallel to the legs; NULL or NULL elements elsewhere)
-- names the partner whose partner_funding / partner_payable account a system leg
-- posts to. Each partner's balance (its slots in partner_balance, see
-- partner_balance_spread()) is updated after the members', in ascending partner
-- id: a debit of partner_funding below zero (prepaid) or below
-- -(credit_limit_points + paid_points) (postpaid with a limit: what it gave out on
-- credit and has not paid for stays within the limit) is refused with LP010 (DETAIL: JSON
-- with the partner's code, billing, funding and limit); credits always pass.
-- p_partner_line, when given, is the entry's settlement line for that partner
-- ({partner_id, section, points, rate_id, price_per_point, price, undoes}),
-- written into partner_line with the entry.
--
-- Projections, under the same member locks:
-- - a credit of a pending account with p_pending_until opens a pending_credit; a
--   reversal's debit of a pending account takes from the reversed entry's credit;
-- - every change of available points goes through ledger_apply_lots(), with
--   p_expires_at for new lots and, as the entry whose lots come first, the
--   reversed entry or p_source_entry_id (the hold a capture or release closes; the
--   order entry a refund takes back).
--
-- The response: p_response_body when given (orders, refunds, events, holds answer
-- in their own shape); otherwise the entry rendered as EntryOut
-- (app/ledger/schemas.py; tests/ledger/test_entry_shape.py holds them equal):
-- compact JSON, balances sorted by external id in byte order; each posting names
-- its partner's code (null but for partner accounts).
CREATE OR REPLACE FUNCTION ledger_post(
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
    p_response_body bytea DEFAULT NULL,
    p_source_entry_id uuid DEFAULT NULL, -- capture, release: the hold; refund: the order's lot entry
    p_partners bigint[] DEFAULT NULL,    -- each leg's partner id, for partner_* accounts (else NULL)
    p_partner_line jsonb DEFAULT NULL,   -- the entry's partner settlement line, if any
    p_member_check text DEFAULT NULL     -- NULL, 'open' or 'move': which member statuses refuse the entry
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
    v_member_ids bigint[] := '{}';
    v_changes bigint[] := '{}';
    v_partner record;
    v_payee record;
    v_limit record;
    v_slot integer;
    v_fitted boolean;
    v_funding bigint;
    v_partners bigint[] := p_partners;  -- NULL for most entries: unnest() pads it with NULLs
    v_status text;
    v_takes boolean;
    v_updated boolean;
BEGIN
    IF cardinality(p_amounts) < 2
       OR cardinality(p_members) <> cardinality(p_amounts)
       OR cardinality(p_accounts) <> cardinality(p_amounts)
       OR (p_partners IS NOT NULL AND cardinality(p_partners) <> cardinality(p_amounts))
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
        expires_at, pending_until, metadata, explanation, source_entry_id)
    VALUES (
        p_entry_id, p_program_id, p_kind, p_occurred_at, p_recorded_at, p_idempotency_key,
        p_request_fingerprint, p_reverses_entry_id, p_actor_key_id, p_reason, p_order_id,
        p_rules_version, p_expires_at, p_pending_until, coalesce(p_metadata, '{}'::jsonb),
        p_explanation, p_source_entry_id)
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
         WHERE b.program_id = p_program_id AND b.member_id = v_member.member_id
           AND b.available + v_member.d_available >= 0
           AND b.pending + v_member.d_pending >= 0
           AND b.held + v_member.d_held >= 0
           AND b.debt + v_member.d_debt <= 0
        RETURNING b.available, b.pending, b.held INTO v_balance;
        v_updated := FOUND;
        IF p_member_check IS NOT NULL THEN
            -- A statement of its own, after the lock: it sees the status as the
            -- lock's last holder committed it (checked before the balances, so a
            -- frozen member is told it is frozen, not short of points).
            SELECT m.status INTO v_status FROM member m
             WHERE m.program_id = p_program_id AND m.id = v_member.member_id;
            v_takes := v_member.d_available < 0 OR v_member.d_held > 0;
            IF v_status = 'closed'
               OR (p_member_check = 'move'
                   AND (v_status = 'suspended' OR (v_status = 'frozen' AND v_takes))) THEN
                RAISE EXCEPTION 'member % is %', v_member.external_id, v_status
                    USING ERRCODE = 'LP012',
                          DETAIL = json_build_object(
                              'member', v_member.external_id, 'status', v_status,
                              'takes', v_takes)::text;
            END IF;
        END IF;
        IF NOT v_updated THEN
            SELECT b.available, b.pending, b.held INTO v_balance
              FROM member_balance b WHERE b.program_id = p_program_id AND b.member_id = v_member.member_id;
            RAISE EXCEPTION 'member % has not enough points', v_member.external_id
                USING ERRCODE = 'LP001',
                      DETAIL = json_build_object(
                          'member', v_member.external_id,
                          'available', v_balance.available, 'pending', v_balance.pending,
                          'held', v_balance.held, 'change_available', v_member.d_available,
                          'change_pending', v_member.d_pending,
                          'change_held', v_member.d_held)::text;
        END IF;

        INSERT INTO posting (program_id, entry_id, account_id, member_id, amount,
                             available_after, pending_after, held_after, recorded_at)
        SELECT p_program_id, p_entry_id, a.id, v_member.member_id, l.amount,
               v_balance.available, v_balance.pending, v_balance.held, p_recorded_at
          FROM unnest(p_members, p_accounts, p_amounts)
               WITH ORDINALITY AS l(external_id, account, amount, n)
          JOIN account a ON a.program_id = p_program_id AND a.member_id = v_member.member_id
                        AND a.kind = l.account
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
             WHERE c.program_id = p_program_id AND c.entry_id = p_reverses_entry_id
               AND c.member_id = v_member.member_id;
        END IF;

        IF v_member.d_available <> 0 THEN
            v_member_ids := v_member_ids || v_member.member_id;
            v_changes := v_changes || v_member.d_available;
        END IF;

        v_members := v_members || v_member.external_id;
        v_available := v_available || v_balance.available;
        v_pending := v_pending || v_balance.pending;
        v_held := v_held || v_balance.held;
    END LOOP;

    -- The lots follow the available points, under the same member locks.
    IF cardinality(v_member_ids) > 0 THEN
        PERFORM ledger_apply_lots(
            p_entry_id => p_entry_id,
            p_program_id => p_program_id,
            p_source_entry_id => coalesce(p_reverses_entry_id, p_source_entry_id),
            p_expires_at => p_expires_at,
            p_member_ids => v_member_ids,
            p_changes => v_changes);
    END IF;

    -- A partner's balance, after the members' (every writer locks members first,
    -- then partners in ascending id: no deadlocks). Its rows are slots (see
    -- partner_balance_spread()); the entry takes the slot its id names (UUIDv7's
    -- last byte is random), so concurrent entries of one partner rarely queue on one
    -- row. A credit, or a debit its slot's headroom covers, updates that slot alone
    -- (in a subtransaction, so that a failed check leaves no lock behind); any other
    -- debit locks every slot in ascending order, checks the partner's whole funding
    -- against its floor, and shares the headroom out again.
    IF p_partners IS NOT NULL THEN  -- most entries have no partner: no query for them
        FOR v_partner IN
            SELECT l.partner_id,
                   coalesce(sum(l.amount) FILTER (WHERE l.account = 'partner_funding'), 0) AS d_funding,
                   coalesce(sum(l.amount) FILTER (WHERE l.account = 'partner_payable'), 0) AS d_payable
              FROM unnest(v_partners, p_accounts, p_amounts) AS l(partner_id, account, amount)
             WHERE l.partner_id IS NOT NULL
             GROUP BY l.partner_id
             ORDER BY l.partner_id
        LOOP
            SELECT pa.code, pa.billing, pa.credit_limit_points,
                   (SELECT count(*) FROM partner_balance b
                     WHERE b.program_id = p_program_id AND b.partner_id = pa.id) AS slots
              INTO v_payee
              FROM partner pa WHERE pa.program_id = p_program_id AND pa.id = v_partner.partner_id;
            IF NOT FOUND OR v_payee.slots = 0 THEN
                RAISE EXCEPTION 'entry names an account that does not exist' USING ERRCODE = 'LP005';
            END IF;
            v_slot := get_byte(uuid_send(p_entry_id), 15) % v_payee.slots;
            IF v_partner.d_funding >= 0
               OR (v_payee.billing = 'postpaid' AND v_payee.credit_limit_points IS NULL) THEN
                -- a credit, or a partner with no floor: nothing to check, nothing can fail
                -- (no subtransaction; should a credit limit be set meanwhile, the slot's
                -- floor still stops the debit and the exact check below takes over)
                UPDATE partner_balance b
                   SET funding = b.funding + v_partner.d_funding,
                       payable = b.payable + v_partner.d_payable,
                       version = b.version + 1,
                       updated_at = p_recorded_at
                 WHERE b.program_id = p_program_id AND b.partner_id = v_partner.partner_id
                   AND b.slot = v_slot AND (v_partner.d_funding >= 0 OR b.floor IS NULL);
                v_fitted := FOUND;
            ELSE
                v_fitted := false;
            END IF;
            IF NOT v_fitted THEN
                BEGIN
                    UPDATE partner_balance b
                       SET funding = b.funding + v_partner.d_funding,
                           payable = b.payable + v_partner.d_payable,
                           version = b.version + 1,
                           updated_at = p_recorded_at
                     WHERE b.program_id = p_program_id AND b.partner_id = v_partner.partner_id
                       AND b.slot = v_slot
                       AND (v_partner.d_funding >= 0 OR b.floor IS NULL
                            OR b.funding + v_partner.d_funding >= b.floor);
                    v_fitted := FOUND;
                    IF NOT v_fitted THEN
                        RAISE EXCEPTION USING ERRCODE = 'LP011';  -- release what the UPDATE locked
                    END IF;
                EXCEPTION WHEN SQLSTATE 'LP011' THEN
                    v_fitted := false;
                END;
            END IF;
            IF NOT v_fitted THEN
                PERFORM 1 FROM partner_balance b
                  WHERE b.program_id = p_program_id AND b.partner_id = v_partner.partner_id
                  ORDER BY b.slot FOR UPDATE;
                -- the limit as it is now that every slot is ours (a PATCH spreads under them)
                SELECT pa.billing, pa.credit_limit_points, pa.paid_points INTO v_limit
                  FROM partner pa WHERE pa.program_id = p_program_id AND pa.id = v_partner.partner_id;
                SELECT sum(b.funding) INTO v_funding FROM partner_balance b
                 WHERE b.program_id = p_program_id AND b.partner_id = v_partner.partner_id;
                IF (v_limit.billing = 'prepaid' AND v_funding + v_partner.d_funding < 0)
                   OR (v_limit.billing = 'postpaid' AND v_limit.credit_limit_points IS NOT NULL
                       AND v_funding + v_partner.d_funding
                           < -(v_limit.credit_limit_points + v_limit.paid_points)) THEN
                    RAISE EXCEPTION 'the partner has not enough funding for this entry'
                        USING ERRCODE = 'LP010',
                              DETAIL = json_build_object(
                                  'partner', v_payee.code, 'billing', v_payee.billing, 'funding', v_funding,
                                  'credit_limit', v_limit.credit_limit_points,
                                  'paid', v_limit.paid_points,
                                  'change_funding', v_partner.d_funding)::text;
                END IF;
                UPDATE partner_balance b
                   SET funding = b.funding + v_partner.d_funding,
                       payable = b.payable + v_partner.d_payable,
                       version = b.version + 1,
                       updated_at = p_recorded_at
                 WHERE b.program_id = p_program_id AND b.partner_id = v_partner.partner_id
                   AND b.slot = v_slot;
                PERFORM partner_balance_spread(p_program_id => p_program_id,
                                               p_partner_id => v_partner.partner_id);
            END IF;
        END LOOP;
    END IF;

    -- System accounts (issuance, redemption...) have no balance row and take no
    -- lock: their balance is the sum of their postings.
    INSERT INTO posting (program_id, entry_id, account_id, amount, recorded_at)
    SELECT p_program_id, p_entry_id, a.id, l.amount, p_recorded_at
      FROM unnest(p_members, p_accounts, p_amounts, v_partners)
           WITH ORDINALITY AS l(external_id, account, amount, partner_id, n)
      JOIN account a ON a.program_id = p_program_id AND a.member_id IS NULL AND a.kind = l.account
                    AND a.partner_id IS NOT DISTINCT FROM l.partner_id
     WHERE l.external_id IS NULL
     ORDER BY l.n;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    v_written := v_written + v_rows;

    IF p_partner_line IS NOT NULL THEN
        INSERT INTO partner_line (program_id, entry_id, partner_id, section, points, rate_id,
                                  price_per_point, price, undoes_entry_id, recorded_at)
        VALUES (p_program_id, p_entry_id, (p_partner_line ->> 'partner_id')::bigint, p_partner_line ->> 'section',
                (p_partner_line ->> 'points')::bigint, (p_partner_line ->> 'rate_id')::bigint,
                (p_partner_line ->> 'price_per_point')::numeric, (p_partner_line ->> 'price')::numeric,
                (p_partner_line ->> 'undoes')::uuid, p_recorded_at);
    END IF;

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
                               ROW(l.external_id, l.account, l.amount,
                                   CASE WHEN l.partner_id IS NOT NULL
                                        THEN (SELECT pa.code FROM partner pa
                                               WHERE pa.program_id = p_program_id AND pa.id = l.partner_id)
                                   END
                               )::ledger_posting_out ORDER BY l.n))
                      FROM unnest(p_members, p_accounts, p_amounts, v_partners)
                           WITH ORDINALITY AS l(external_id, account, amount, partner_id, n)) AS postings,
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
