-- ledger_post_order(): a checkout's paid order in one round trip (the hot path;
-- bench/orders.py and bench/awards.py measure it). The service has read the
-- member's facts (balance row version, tier, debt...), computed the points with the
-- rules and rendered the response; this function checks that nothing about the
-- member changed since, records the order, posts its earn entry and applies the
-- tier upgrade the order makes, all under the member's balance-row lock.
--
-- p_members / p_accounts / p_amounts are the earn entry's legs, exactly as
-- ledger_post() takes them (the member's available or pending credit, the debt it
-- repays, the issuance debit): empty when the order earns nothing, in which case
-- the order is still recorded and p_response_body kept for the key, with no entry.
-- p_points is what the order earned (kept on paid_order for refunds and tiers);
-- p_expires_at dates the lot of the order's points; p_tier is the upgrade the
-- order makes (one element of tier_apply()'s p_decisions), or NULL.
-- A partner's co-branded order: p_partner_id is the partner (order ids are unique
-- per partner; NULL: the program's own order), and p_partners / p_partner_line go
-- to ledger_post() (the partner's funding pays for the points, LP010 when it can't).
-- p_budget_charges: what the order takes from campaign budgets (kept on the order for
-- its refunds, taken by rules_budget_take() once the order is recorded), or NULL;
-- a charge its budget can't cover raises LPB01 and nothing is written.
--
-- Answers one row, `outcome`:
-- - 'posted': done; response_body is p_response_body;
-- - 'exists': the order_id is taken (now or by a concurrent request that committed
--   first); its fingerprint and stored response are returned and nothing is
--   written (the service replays them for the same order, or answers 409
--   order_exists);
-- - 'stale': the member's balance row version is not p_expected_version (the facts
--   were read before another change of the member); nothing was written.
-- Another request already holds the Idempotency-Key: SQLSTATE LP007, nothing
-- written. ledger_post()'s refusals (LP001, LP004, LP005, 22003) and
-- rules_budget_take()'s (LPB01) pass through.
CREATE OR REPLACE FUNCTION ledger_post_order(
    p_entry_id uuid,
    p_program_id bigint,
    p_member_id bigint,
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
    p_expires_at timestamptz,  -- when the order's points expire (NULL: never, or by inactivity)
    p_members text[],          -- the earn entry's legs, as ledger_post() takes them
    p_accounts text[],
    p_amounts bigint[],
    p_response_body bytea,
    p_tier jsonb DEFAULT NULL,  -- the order's tier upgrade (a tier_apply() decision), or NULL
    p_partner_id bigint DEFAULT NULL,   -- a partner's order: the partner
    p_partners bigint[] DEFAULT NULL,   -- as ledger_post() takes them
    p_partner_line jsonb DEFAULT NULL,
    p_budget_charges jsonb DEFAULT NULL  -- the order's campaign-budget charges, or NULL
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
     WHERE o.program_id = p_program_id AND o.partner_id IS NOT DISTINCT FROM p_partner_id
       AND o.order_id = p_order_id;
    IF FOUND THEN
        RETURN QUERY SELECT 'exists', v_order.request_fingerprint, v_order.response_body;
        RETURN;
    END IF;

    SELECT b.version INTO v_version FROM member_balance b
     WHERE b.program_id = p_program_id AND b.member_id = p_member_id FOR UPDATE;
    IF v_version IS DISTINCT FROM p_expected_version THEN
        RETURN QUERY SELECT 'stale', NULL::text, NULL::bytea;
        RETURN;
    END IF;

    INSERT INTO paid_order (
        program_id, partner_id, order_id, member_id, idempotency_key, request_fingerprint, entry_id,
        rules_version, paid_at, recorded_at, local_day, currency, total, channel, lines, facts,
        points, segments, budget_charges)
    VALUES (
        p_program_id, p_partner_id, p_order_id, p_member_id, p_idempotency_key, p_request_fingerprint,
        CASE WHEN cardinality(p_amounts) > 0 THEN p_entry_id END,
        p_rules_version, p_paid_at, p_recorded_at, p_local_day, p_currency, p_total, p_channel,
        p_lines, p_facts, p_points, p_segments, p_budget_charges)
    ON CONFLICT ON CONSTRAINT uq_paid_order_program_id_order_id_partner_id DO NOTHING;
    IF NOT FOUND THEN  -- the same order_id, committed by a concurrent request meanwhile
        RETURN QUERY
            SELECT 'exists', o.request_fingerprint, r.response_body
              FROM paid_order o
              LEFT JOIN idempotency_record r ON r.program_id = o.program_id AND r.key = o.idempotency_key
             WHERE o.program_id = p_program_id AND o.partner_id IS NOT DISTINCT FROM p_partner_id
               AND o.order_id = p_order_id;
        RETURN;
    END IF;
    IF p_budget_charges IS NOT NULL THEN
        PERFORM rules_budget_take(
            p_program_id => p_program_id, p_member_id => p_member_id, p_charges => p_budget_charges);
    END IF;

    IF cardinality(p_amounts) > 0 THEN
        SELECT * INTO v_posted FROM ledger_post(
            p_entry_id => p_entry_id,
            p_program_id => p_program_id,
            p_kind => 'earn',
            p_idempotency_key => p_idempotency_key,
            p_request_fingerprint => p_request_fingerprint,
            p_occurred_at => p_paid_at,
            p_recorded_at => p_recorded_at,
            p_actor_key_id => p_actor_key_id,
            p_reverses_entry_id => NULL,
            p_reason => NULL,
            p_order_id => p_order_id,
            p_rules_version => p_rules_version,
            p_expires_at => p_expires_at,
            p_pending_until => p_pending_until,
            p_metadata => '{}'::jsonb,
            p_members => p_members,
            p_accounts => p_accounts,
            p_amounts => p_amounts,
            p_explanation => p_explanation,
            p_response_body => p_response_body,
            p_partners => p_partners,
            p_partner_line => p_partner_line);
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
    IF p_tier IS NOT NULL THEN
        PERFORM tier_apply(
            p_program_id => p_program_id,
            p_rules_version => p_rules_version,
            p_recorded_at => p_recorded_at,
            p_decisions => jsonb_build_array(p_tier));
    END IF;
    RETURN QUERY SELECT 'posted', p_request_fingerprint, p_response_body;
END
$$;
