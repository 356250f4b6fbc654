-- rules_budget_spread(): changes what is left of a campaign budget by p_change and
-- shares the result out evenly over the budget's slices (table rules_budget_slice,
-- one row per slot; app/rules/budgets.py names budgets).
--
-- Locks every slice of the budget (ascending slot order, the order every writer
-- that needs more than one slice uses), so it is exact: the slices' sum changes by
-- exactly p_change. What is left, R = the sum + p_change, is then shared out over
-- the first k slots, k = R / p_at_least (at least 1, at most every slot): slot s < k
-- holds R / k (the first R mod k slots one more), the others nothing. With the
-- default p_at_least of 1 and R of at least one point a slot, that is every slot
-- evenly. A take passes its own size: when what is left runs low, it is gathered in
-- slices that can each cover such a charge, so the next orders of that size find one
-- without a lock on every slice (spreading 72 points as 4 or 5 a slice would send
-- every later charge of 7 here, one order at a time).
-- When R is below zero (a version lowered the limit under what was already used),
-- slot 0 holds R and every other slot 0: no slice can give anything until refunds
-- or a higher limit bring R back above zero.
--
-- A negative p_change is a take (an order's points, or a lower limit): unless
-- p_below_zero, one that R can't cover changes nothing and answers NULL.
-- Answers R otherwise.
--
-- Called by rules_budget_take() when an order's slice can't cover it, by
-- rules_budget_give_back() (refunds) and by rules_budget_set() (activations).
CREATE OR REPLACE FUNCTION rules_budget_spread(
    p_program_id bigint,
    p_budget_id bigint,
    p_change bigint,
    p_below_zero boolean DEFAULT false,
    p_at_least bigint DEFAULT 1
) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_total bigint;
    v_slices integer;
    v_filled integer;
BEGIN
    PERFORM 1 FROM rules_budget_slice s WHERE s.program_id = p_program_id AND s.budget_id = p_budget_id
      ORDER BY s.slot FOR UPDATE;
    SELECT sum(s.remaining) + p_change, count(*) INTO v_total, v_slices
      FROM rules_budget_slice s WHERE s.program_id = p_program_id AND s.budget_id = p_budget_id;
    IF p_change < 0 AND v_total < 0 AND NOT p_below_zero THEN
        RETURN NULL;
    END IF;
    v_filled := greatest(1, least(v_slices, v_total / greatest(p_at_least, 1)));
    UPDATE rules_budget_slice s
       SET remaining = CASE
               WHEN v_total < 0 THEN CASE WHEN s.slot = 0 THEN v_total ELSE 0 END
               WHEN s.slot >= v_filled THEN 0
               ELSE v_total / v_filled + CASE WHEN s.slot < v_total % v_filled THEN 1 ELSE 0 END
           END
     WHERE s.program_id = p_program_id AND s.budget_id = p_budget_id;
    RETURN v_total;
END
$$;
