-- ledger_post_order(): a checkout's order in one round trip (see revision
-- 20261125_0001). Same contract, plus:
-- - p_expires_at: the expiry of the order's lot (revision 20261125_0002's lots);
-- - p_tier: when the order qualifies the member for a higher tier, that decision
--   (tier_apply()'s element), applied with the order, under the same lock.
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
    p_response_body bytea,
    p_expires_at timestamptz, -- when the order's points expire (null: never, or by inactivity)
    p_tier jsonb              -- the order's tier upgrade, or null
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
            p_expires_at, p_pending_until, '{}'::jsonb,
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
    IF p_tier IS NOT NULL THEN
        PERFORM tier_apply(p_program_id, p_rules_version, p_recorded_at, jsonb_build_array(p_tier));
    END IF;
    RETURN QUERY SELECT 'posted', p_request_fingerprint, p_response_body;
END
$$;
