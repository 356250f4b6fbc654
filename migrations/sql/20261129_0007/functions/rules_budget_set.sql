-- rules_budget_set(): the budgets of a rules version being activated.
--
-- p_limits: [{"budget": key, "points": n, "per_member": m | null}], every budget the
-- version sets (app/rules/budgets.py budget_limits()). A key the program has no
-- budget for yet gets one, with p_slices slices holding n between them. A known key
-- takes the version's limits: what is left changes by the difference in `points`
-- (rules_budget_spread(); it may go below zero when the limit drops under what is
-- used), what is used stays. Budgets the version does not name are left as they are
-- (a later version may name them again).
--
-- Called in the activation's transaction (app/rulesets), which holds the program
-- row: activations of one program never run this concurrently.
CREATE OR REPLACE FUNCTION rules_budget_set(
    p_program_id bigint,
    p_limits jsonb,
    p_now timestamptz,
    p_slices smallint DEFAULT 16
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_limit jsonb;
    v_points bigint;
    v_budget record;
BEGIN
    FOR v_limit IN SELECT l FROM jsonb_array_elements(p_limits) l ORDER BY l->>'budget' LOOP
        v_points := (v_limit->>'points')::bigint;
        SELECT b.id, b.points INTO v_budget FROM rules_budget b
         WHERE b.program_id = p_program_id AND b.key = v_limit->>'budget' FOR UPDATE;
        IF NOT FOUND THEN
            INSERT INTO rules_budget (program_id, key, points, per_member, slices, created_at, updated_at)
            VALUES (p_program_id, v_limit->>'budget', v_points, (v_limit->>'per_member')::bigint, p_slices,
                    p_now, p_now)
            RETURNING id, 0::bigint AS points INTO v_budget;
            INSERT INTO rules_budget_slice (program_id, budget_id, slot, remaining)
            SELECT p_program_id, v_budget.id, s, 0 FROM generate_series(0, p_slices - 1) s;
        ELSE
            UPDATE rules_budget b SET points = v_points, per_member = (v_limit->>'per_member')::bigint,
                   updated_at = p_now
             WHERE b.program_id = p_program_id AND b.id = v_budget.id;
        END IF;
        IF v_points <> v_budget.points THEN
            PERFORM rules_budget_spread(p_program_id => p_program_id, p_budget_id => v_budget.id,
                                        p_change => v_points - v_budget.points, p_below_zero => true);
        END IF;
    END LOOP;
END
$$;
