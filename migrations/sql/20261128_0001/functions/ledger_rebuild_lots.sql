-- Rebuild every lot (point_lot, lot_use) from the ledger alone: lots are a
-- projection of it. `points-ledger rebuild-lots` runs it to repair a projection
-- that `verify` finds out of step; point_lot and lot_use are locked meanwhile, so
-- earning and spending wait. Answers the number of lots written.
--
-- Every entry that changed available points is replayed through
-- ledger_apply_lots(), in commit order: an entry's postings are all written while
-- it holds its members' locks, so for any member two entries touched, the one that
-- committed first has the smaller last posting id. An activation that carries no
-- expiry of its own gives its lot the expiry of the credit it activated.
CREATE OR REPLACE FUNCTION ledger_rebuild_lots() RETURNS bigint  -- lots written
LANGUAGE plpgsql AS $$
DECLARE
    v_entry record;
    v_lots bigint;
BEGIN
    LOCK TABLE point_lot, lot_use IN EXCLUSIVE MODE;
    DELETE FROM lot_use;
    DELETE FROM point_lot;
    FOR v_entry IN
        SELECT e.id, e.program_id, coalesce(e.reverses_entry_id, e.source_entry_id) AS source,
               coalesce(e.expires_at, (SELECT o.expires_at
                                         FROM pending_credit c JOIN journal_entry o ON o.id = c.entry_id
                                        WHERE c.activation_entry_id = e.id
                                        LIMIT 1)) AS expires_at,
               ch.member_ids, ch.changes
          FROM (SELECT p.entry_id, max(p.id) AS last_posting
                  FROM posting p GROUP BY p.entry_id) last
          JOIN journal_entry e ON e.id = last.entry_id
         CROSS JOIN LATERAL (
               SELECT array_agg(x.member_id ORDER BY x.member_id) AS member_ids,
                      array_agg(x.change ORDER BY x.member_id) AS changes
                 FROM (SELECT p.member_id, sum(p.amount)::bigint AS change
                         FROM posting p JOIN account a ON a.id = p.account_id AND a.kind = 'available'
                        WHERE p.entry_id = e.id
                        GROUP BY p.member_id
                       HAVING sum(p.amount) <> 0) x
               ) ch
         WHERE ch.member_ids IS NOT NULL
         ORDER BY last.last_posting
    LOOP
        PERFORM ledger_apply_lots(
            p_entry_id => v_entry.id,
            p_program_id => v_entry.program_id,
            p_source_entry_id => v_entry.source,
            p_expires_at => v_entry.expires_at,
            p_member_ids => v_entry.member_ids,
            p_changes => v_entry.changes);
    END LOOP;
    SELECT count(*) INTO v_lots FROM point_lot;
    RETURN v_lots;
END
$$;
