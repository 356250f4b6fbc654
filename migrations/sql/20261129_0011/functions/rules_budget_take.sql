-- rules_budget_take(): takes an order's campaign-budget charges, or nothing.
--
-- p_charges is the order's paid_order.budget_charges: [{"budget": key, "points": n,
-- ...}], one element per budgeted rule that added points to the order (its other
-- fields are for refunds). For each, in key order: the member's share first, when
-- the budget has `per_member` (rules_budget_member, a conditional upsert: the
-- member's orders are serialised by their balance-row lock anyway), then the
-- budget's slices (rules_budget_slice), in four steps, the first that covers n:
--
-- 1. One free slice that holds n, chosen at random (FOR UPDATE SKIP LOCKED: a slice
--    stays locked until its order commits, and concurrent orders should not wait
--    for one another's commits), taken with a conditional update (`remaining >= n`).
-- 2. Several free slices, the fullest first, each giving what it holds until n is
--    taken: a budget whose slices have each worn below n still serves orders side
--    by side.
-- 3. Wait for one busy slice that holds n, chosen at random (read without a lock;
--    its conditional update waits for that row alone, and when another order took
--    it meanwhile, the step falls short).
-- 4. When the slices together might cover n (their sum read without locks),
--    rules_budget_spread() locks every slice, takes n from what they hold together
--    and gathers what is left in slices that can each cover n, so that the next
--    orders find one again.
--
-- Steps 2 and 3 run in subtransactions that are rolled back when they fall short,
-- releasing what they locked: an order never waits for a slice while it holds
-- another slice of the same budget, so orders of one budget never deadlock one
-- another. Every take is from a slice locked by this order, read under that lock,
-- or happens under every slice's lock: concurrent orders never take more than the
-- budget holds, however they interleave.
--
-- A charge its budget can't cover raises SQLSTATE LPB01, DETAIL JSON
-- {"budget": key, "scope": "budget" | "member"}, which rolls back the caller's
-- statement: the service computes the order again without that rule. A key the
-- program has no budget for raises LPB02 (a bug: activation creates every budget
-- its version names, rules_budget_set()). LPB03 is internal (a step that fell
-- short) and never leaves the function.
--
-- Locks: one slice per budget on the common path, in key order; the slices of one
-- budget otherwise (step 4: every slice, in slot order). Called by
-- ledger_post_order() after it recorded the order, under the member's balance-row
-- lock.
CREATE OR REPLACE FUNCTION rules_budget_take(p_program_id bigint, p_member_id bigint, p_charges jsonb)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_charge jsonb;
    v_key text;
    v_points bigint;
    v_budget record;
    v_slice record;
    v_need bigint;
    v_take bigint;
    v_taken boolean;
    v_slot smallint;
    v_free refcursor;
BEGIN
    FOR v_charge IN SELECT c FROM jsonb_array_elements(p_charges) c ORDER BY c->>'budget' LOOP
        v_key := v_charge->>'budget';
        v_points := (v_charge->>'points')::bigint;
        CONTINUE WHEN v_points <= 0;
        -- 1. The common case in one statement: a free slice that holds the points,
        -- locked (MATERIALIZED: the locking query runs once) and taken from.
        WITH free AS MATERIALIZED (
            SELECT f.budget_id, f.slot, b.per_member
              FROM rules_budget b
              JOIN rules_budget_slice f ON f.program_id = b.program_id AND f.budget_id = b.id
             WHERE b.program_id = p_program_id AND b.key = v_key AND f.remaining >= v_points
             ORDER BY random()
             LIMIT 1
               FOR UPDATE OF f SKIP LOCKED)
        UPDATE rules_budget_slice s SET remaining = s.remaining - v_points
          FROM free
         WHERE s.program_id = p_program_id AND s.budget_id = free.budget_id AND s.slot = free.slot
           AND s.remaining >= v_points
        RETURNING s.budget_id, free.per_member INTO v_budget;
        v_taken := FOUND;
        IF NOT v_taken THEN
            SELECT b.id AS budget_id, b.per_member INTO v_budget
              FROM rules_budget b WHERE b.program_id = p_program_id AND b.key = v_key;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'program % has no budget %', p_program_id, v_key USING ERRCODE = 'LPB02';
            END IF;
            -- 2. Free slices, the fullest first, until the points are taken: fetched
            -- one at a time (a FOR loop would fetch, and lock, ten at once).
            BEGIN
                v_need := v_points;
                OPEN v_free FOR
                    SELECT f.slot, f.remaining FROM rules_budget_slice f
                     WHERE f.program_id = p_program_id AND f.budget_id = v_budget.budget_id
                       AND f.remaining > 0
                     ORDER BY f.remaining DESC, f.slot
                       FOR UPDATE SKIP LOCKED;
                LOOP
                    FETCH v_free INTO v_slice;
                    EXIT WHEN NOT FOUND;
                    v_take := least(v_slice.remaining, v_need);
                    UPDATE rules_budget_slice s SET remaining = s.remaining - v_take
                     WHERE s.program_id = p_program_id AND s.budget_id = v_budget.budget_id
                       AND s.slot = v_slice.slot;
                    v_need := v_need - v_take;
                    EXIT WHEN v_need = 0;
                END LOOP;
                CLOSE v_free;
                IF v_need > 0 THEN
                    RAISE EXCEPTION USING ERRCODE = 'LPB03';  -- give back what this step took and locked
                END IF;
                v_taken := true;
            EXCEPTION WHEN SQLSTATE 'LPB03' THEN
                v_taken := false;
            END;
        END IF;
        IF NOT v_taken THEN
            -- 3. Wait for one busy slice that holds the points: drawn once, without a
            -- lock, then its conditional update waits for that row alone (moving on to
            -- another after a wait would hold the first while waiting for the next).
            BEGIN
                SELECT f.slot INTO v_slot FROM rules_budget_slice f
                 WHERE f.program_id = p_program_id AND f.budget_id = v_budget.budget_id
                   AND f.remaining >= v_points
                 ORDER BY random()
                 LIMIT 1;
                IF NOT FOUND THEN
                    RAISE EXCEPTION USING ERRCODE = 'LPB03';
                END IF;
                UPDATE rules_budget_slice s SET remaining = s.remaining - v_points
                 WHERE s.program_id = p_program_id AND s.budget_id = v_budget.budget_id
                   AND s.slot = v_slot AND s.remaining >= v_points;
                IF NOT FOUND THEN
                    RAISE EXCEPTION USING ERRCODE = 'LPB03';  -- another order took it meanwhile
                END IF;
                v_taken := true;
            EXCEPTION WHEN SQLSTATE 'LPB03' THEN
                v_taken := false;
            END;
        END IF;
        -- 4. Every slice, when together they might hold the points.
        IF NOT v_taken AND (
               (SELECT sum(s.remaining) FROM rules_budget_slice s
                 WHERE s.program_id = p_program_id AND s.budget_id = v_budget.budget_id) < v_points
               OR rules_budget_spread(p_program_id => p_program_id, p_budget_id => v_budget.budget_id,
                                      p_change => -v_points, p_at_least => v_points) IS NULL) THEN
            RAISE EXCEPTION 'budget % can''t cover % points', v_key, v_points
                USING ERRCODE = 'LPB01',
                      DETAIL = json_build_object('budget', v_key, 'scope', 'budget')::text;
        END IF;
        IF v_budget.per_member IS NOT NULL THEN
            IF v_points <= v_budget.per_member THEN
                INSERT INTO rules_budget_member AS m (program_id, budget_id, member_id, used)
                VALUES (p_program_id, v_budget.budget_id, p_member_id, v_points)
                ON CONFLICT (program_id, budget_id, member_id)
                DO UPDATE SET used = m.used + excluded.used
                 WHERE m.used + excluded.used <= v_budget.per_member;
            END IF;
            IF v_points > v_budget.per_member OR NOT FOUND THEN
                RAISE EXCEPTION 'the member''s share of budget % can''t cover % points', v_key, v_points
                    USING ERRCODE = 'LPB01',
                          DETAIL = json_build_object('budget', v_key, 'scope', 'member')::text;
            END IF;
        END IF;
    END LOOP;
END
$$;
