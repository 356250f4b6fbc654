-- rules_budget_take(): takes an order's campaign-budget charges, or nothing.
--
-- p_charges is the order's paid_order.budget_charges: [{"budget": key, "points": n,
-- ...}], one element per budgeted rule that added points to the order (its other
-- fields are for refunds). For each, in key order: the member's share first, when
-- the budget has `per_member` (rules_budget_member, a conditional upsert: the
-- member's orders are serialised by their balance-row lock anyway), then the budget:
-- the first slice, from one chosen at random, that holds n and that no other
-- transaction holds (FOR UPDATE SKIP LOCKED: a slice stays locked until its order
-- commits, and concurrent orders should not wait for one another's commits), taken
-- with a conditional update (`remaining >= n`). When every slice that holds n is
-- busy, a conditional update of the randomly chosen slice waits for it. When that
-- slice can't cover n either, and the slices together might (their sum read
-- without locks), rules_budget_spread() locks every slice and takes n from what
-- they hold together. Every take is a conditional update of a locked row or
-- happens under every slice's lock: concurrent orders never take more than the
-- budget holds, however they interleave.
--
-- A charge its budget can't cover raises SQLSTATE LPB01, DETAIL JSON
-- {"budget": key, "scope": "budget" | "member"}, which rolls back the caller's
-- statement: the service computes the order again without that rule. A key the
-- program has no budget for raises LPB02 (a bug: activation creates every budget
-- its version names, rules_budget_set()).
--
-- Locks: one slice per budget on the common path, in key order; every slice of one
-- budget (slot order) otherwise. Called by ledger_post_order() after it recorded
-- the order, under the member's balance-row lock.
CREATE OR REPLACE FUNCTION rules_budget_take(p_program_id bigint, p_member_id bigint, p_charges jsonb)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_charge jsonb;
    v_key text;
    v_points bigint;
    v_budget record;
    v_slot smallint;
BEGIN
    FOR v_charge IN SELECT c FROM jsonb_array_elements(p_charges) c ORDER BY c->>'budget' LOOP
        v_key := v_charge->>'budget';
        v_points := (v_charge->>'points')::bigint;
        CONTINUE WHEN v_points <= 0;
        -- The common case in one statement: a free slice that holds the points, locked
        -- (MATERIALIZED: the locking query runs once) and taken from.
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
        IF NOT FOUND THEN
            -- Every slice that holds the points is busy, or none does.
            SELECT b.id AS budget_id, b.per_member, b.slices INTO v_budget
              FROM rules_budget b WHERE b.program_id = p_program_id AND b.key = v_key;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'program % has no budget %', p_program_id, v_key USING ERRCODE = 'LPB02';
            END IF;
            -- One slice, drawn once: random() in the WHERE clause would be drawn again
            -- for every row, taking from several slices (or waiting on any of them).
            v_slot := floor(random() * v_budget.slices)::smallint;
            UPDATE rules_budget_slice s SET remaining = s.remaining - v_points
             WHERE s.program_id = p_program_id AND s.budget_id = v_budget.budget_id
               AND s.slot = v_slot AND s.remaining >= v_points;
            IF NOT FOUND AND (
                   (SELECT sum(s.remaining) FROM rules_budget_slice s
                     WHERE s.program_id = p_program_id AND s.budget_id = v_budget.budget_id) < v_points
                   OR rules_budget_spread(p_program_id => p_program_id, p_budget_id => v_budget.budget_id,
                                          p_change => -v_points) IS NULL) THEN
                RAISE EXCEPTION 'budget % can''t cover % points', v_key, v_points
                    USING ERRCODE = 'LPB01',
                          DETAIL = json_build_object('budget', v_key, 'scope', 'budget')::text;
            END IF;
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
