-- Write tier decisions: for each element of p_decisions, the member's new tier
-- state and the history rows that led there, in order. The caller holds the
-- members' balance-row locks (every path that changes a tier takes them first),
-- and each decision names the tier it started from: if the member's stored tier
-- is another (a decision made on stale state), nothing is written and the
-- transaction fails with SQLSTATE LP009. Each write bumps the member's balance
-- row version: an order whose facts (the tier among them) were read before it
-- finds itself stale in ledger_post_order() and is computed again under the lock.
-- Each write also stamps member_tier.txid with the writing transaction's id, by
-- which evaluate-tiers finds the tiers changed since its last run.
--
-- p_decisions: [{"member_id": 1, "from": "silver" | null,
--                "state": {"tier": "gold" | null, "since": ts, "term_ends_at": ts,
--                          "grace_ends_at": ts, "override_until": ts, "pinned": bool},
--                "changes": [{"from", "to", "reason", "effective_at", "term_ends_at",
--                             "activity", "entry_id", "actor_key_id", "note"}]}]
CREATE OR REPLACE FUNCTION tier_apply(
    p_program_id bigint,
    p_rules_version integer,
    p_recorded_at timestamptz,
    p_decisions jsonb
) RETURNS integer  -- history rows written
LANGUAGE plpgsql AS $$
DECLARE
    v_decision jsonb;
    v_state jsonb;
    v_current text;
    v_found boolean;
    v_rows integer := 0;
    v_n integer;
BEGIN
    FOR v_decision IN SELECT value FROM jsonb_array_elements(p_decisions) LOOP
        SELECT t.tier_code, true INTO v_current, v_found
          FROM member_tier t WHERE t.member_id = (v_decision->>'member_id')::bigint;
        IF v_current IS DISTINCT FROM v_decision->>'from' THEN
            RAISE EXCEPTION 'member % holds tier %, not %', v_decision->>'member_id', v_current,
                  v_decision->>'from' USING ERRCODE = 'LP009';
        END IF;
        v_state := v_decision->'state';
        INSERT INTO member_tier AS t (member_id, program_id, tier_code, since, term_ends_at, grace_ends_at,
                                      override_until, pinned, rules_version, updated_at)
        VALUES ((v_decision->>'member_id')::bigint, p_program_id, v_state->>'tier',
                (v_state->>'since')::timestamptz, (v_state->>'term_ends_at')::timestamptz,
                (v_state->>'grace_ends_at')::timestamptz, (v_state->>'override_until')::timestamptz,
                coalesce((v_state->>'pinned')::boolean, false), p_rules_version, p_recorded_at)
        ON CONFLICT (member_id) DO UPDATE
           SET tier_code = excluded.tier_code, since = excluded.since, term_ends_at = excluded.term_ends_at,
               grace_ends_at = excluded.grace_ends_at, override_until = excluded.override_until,
               pinned = excluded.pinned, rules_version = excluded.rules_version,
               updated_at = excluded.updated_at, txid = excluded.txid;

        INSERT INTO tier_change (program_id, member_id, from_tier, to_tier, reason, effective_at, recorded_at,
                                 term_ends_at, activity, rules_version, entry_id, actor_key_id, note)
        SELECT p_program_id, (v_decision->>'member_id')::bigint, c->>'from', c->>'to', c->>'reason',
               (c->>'effective_at')::timestamptz, p_recorded_at, (c->>'term_ends_at')::timestamptz,
               nullif(c->'activity', 'null'::jsonb), p_rules_version, (c->>'entry_id')::uuid,
               (c->>'actor_key_id')::uuid, c->>'note'
          FROM jsonb_array_elements(coalesce(v_decision->'changes', '[]'::jsonb)) WITH ORDINALITY AS x(c, n)
         ORDER BY x.n;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_rows := v_rows + v_n;
        UPDATE member_balance SET version = version + 1 WHERE member_id = (v_decision->>'member_id')::bigint;
    END LOOP;
    RETURN v_rows;
END
$$;
