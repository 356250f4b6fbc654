-- Keep a member's lots in step with an entry's change of their available points.
-- Called by ledger_post() for every entry that changes available points (with the
-- members' balance rows locked, which is what serialises work on their lots) and
-- by ledger_rebuild_lots(), which replays history through it.
--
-- The rules, which `verify` replays independently (app/ledger/lots.py):
-- - Debits go first, then credits, so a transfer's receiver can take over the
--   sender's lots with their expiry dates.
-- - A debit takes from the member's lots oldest-expiring first (no expiry last,
--   then creation order). A reversal's debit takes first from the lots the
--   reversed entry created, a refund's from the lots of the order it refunds
--   (p_source_entry_id), so a refund can't leave the member's expiring points in
--   place of the order's. Each take is recorded in lot_use.
-- - A credit that closes a hold (capture's remainder, release) or reverses a debit
--   gives points back to the lots that entry took them from, latest-expiring
--   first, so a partial capture keeps the oldest-expiring points.
-- - What is left of a credit becomes new lots: in the same entry as debits (a
--   transfer), lots like the ones taken, same expiry; otherwise one lot with the
--   entry's expiry.
CREATE OR REPLACE FUNCTION ledger_apply_lots(
    p_entry_id uuid,
    p_program_id bigint,
    p_source_entry_id uuid,  -- the reversed entry; the hold a capture or release closes; a refund's order entry
    p_expires_at timestamptz,
    p_member_ids bigint[],
    p_changes bigint[]       -- each member's change of available points
) RETURNS bigint             -- lots taken from (debits)
LANGUAGE plpgsql AS $$
DECLARE
    v_i integer;
    v_need bigint;
    v_take bigint;
    v_lot record;
    v_lots bigint := 0;
    -- what the entry's debits took, merged by expiry, for a transfer's receiver
    v_taken_expires timestamptz[] := '{}';
    v_taken_points bigint[] := '{}';
    v_n integer;
    v_j integer := 1;
BEGIN
    FOR v_i IN 1 .. coalesce(cardinality(p_member_ids), 0) LOOP
        CONTINUE WHEN p_changes[v_i] >= 0;
        v_need := -p_changes[v_i];
        FOR v_lot IN
            SELECT l.id, l.remaining, l.expires_at
              FROM point_lot l
             WHERE l.program_id = p_program_id AND l.member_id = p_member_ids[v_i] AND l.remaining > 0
             ORDER BY (l.entry_id = p_source_entry_id) IS TRUE DESC, l.expires_at ASC NULLS LAST, l.id
        LOOP
            v_take := least(v_lot.remaining, v_need);
            UPDATE point_lot SET remaining = remaining - v_take
             WHERE program_id = p_program_id AND id = v_lot.id;
            INSERT INTO lot_use (program_id, entry_id, lot_id, points)
            VALUES (p_program_id, p_entry_id, v_lot.id, v_take);
            v_lots := v_lots + 1;
            v_n := cardinality(v_taken_points);
            IF v_n > 0 AND v_taken_expires[v_n] IS NOT DISTINCT FROM v_lot.expires_at THEN
                v_taken_points[v_n] := v_taken_points[v_n] + v_take;
            ELSE
                v_taken_expires := v_taken_expires || v_lot.expires_at;
                v_taken_points := v_taken_points || v_take;
            END IF;
            v_need := v_need - v_take;
            EXIT WHEN v_need = 0;
        END LOOP;
        IF v_need > 0 THEN
            RAISE EXCEPTION 'the lots of member % hold fewer points than their balance', p_member_ids[v_i]
                USING ERRCODE = 'LP008';
        END IF;
    END LOOP;

    FOR v_i IN 1 .. coalesce(cardinality(p_member_ids), 0) LOOP
        CONTINUE WHEN p_changes[v_i] <= 0;
        v_need := p_changes[v_i];
        IF p_source_entry_id IS NOT NULL THEN
            FOR v_lot IN
                SELECT u.lot_id, u.points
                  FROM lot_use u JOIN point_lot l ON l.program_id = u.program_id AND l.id = u.lot_id
                 WHERE u.program_id = p_program_id AND u.entry_id = p_source_entry_id
                   AND l.member_id = p_member_ids[v_i] AND u.points > 0
                 ORDER BY l.expires_at DESC NULLS FIRST, l.id DESC
            LOOP
                v_take := least(v_lot.points, v_need);
                UPDATE lot_use SET points = points - v_take
                 WHERE program_id = p_program_id AND entry_id = p_source_entry_id AND lot_id = v_lot.lot_id;
                UPDATE point_lot SET remaining = remaining + v_take
                 WHERE program_id = p_program_id AND id = v_lot.lot_id;
                v_need := v_need - v_take;
                EXIT WHEN v_need = 0;
            END LOOP;
        END IF;
        WHILE v_need > 0 AND v_j <= cardinality(v_taken_points) LOOP
            v_take := least(v_taken_points[v_j], v_need);
            INSERT INTO point_lot (program_id, member_id, entry_id, points, remaining, expires_at)
            VALUES (p_program_id, p_member_ids[v_i], p_entry_id, v_take, v_take, v_taken_expires[v_j]);
            v_taken_points[v_j] := v_taken_points[v_j] - v_take;
            IF v_taken_points[v_j] = 0 THEN
                v_j := v_j + 1;
            END IF;
            v_need := v_need - v_take;
        END LOOP;
        IF v_need > 0 THEN
            INSERT INTO point_lot (program_id, member_id, entry_id, points, remaining, expires_at)
            VALUES (p_program_id, p_member_ids[v_i], p_entry_id, v_need, v_need, p_expires_at);
        END IF;
    END LOOP;
    RETURN v_lots;
END
$$;
