-- rules_budget_give_back(): a refund gives back to campaign budgets the points it
-- takes back (app/rules/budgets.py given_back() computes them).
--
-- p_returns: [{"budget": key, "points": n}]. For each, in key order: n goes back to
-- what is left of the budget (rules_budget_spread(), under every slice's lock), and
-- the member's share of it shrinks by n (never below zero: a share counts only the
-- orders taken while the budget had `per_member`). Keys the program has no budget
-- for raise LPB02 (a bug). Called by the refund, under the order's and the member's
-- locks.
CREATE OR REPLACE FUNCTION rules_budget_give_back(p_program_id bigint, p_member_id bigint, p_returns jsonb)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_return jsonb;
    v_points bigint;
    v_budget_id bigint;
BEGIN
    FOR v_return IN SELECT r FROM jsonb_array_elements(p_returns) r ORDER BY r->>'budget' LOOP
        v_points := (v_return->>'points')::bigint;
        CONTINUE WHEN v_points <= 0;
        SELECT b.id INTO v_budget_id
          FROM rules_budget b WHERE b.program_id = p_program_id AND b.key = v_return->>'budget';
        IF NOT FOUND THEN
            RAISE EXCEPTION 'program % has no budget %', p_program_id, v_return->>'budget'
                USING ERRCODE = 'LPB02';
        END IF;
        PERFORM rules_budget_spread(p_program_id => p_program_id, p_budget_id => v_budget_id,
                                    p_change => v_points);
        UPDATE rules_budget_member m SET used = greatest(0, m.used - v_points)
         WHERE m.program_id = p_program_id AND m.budget_id = v_budget_id AND m.member_id = p_member_id;
    END LOOP;
END
$$;
