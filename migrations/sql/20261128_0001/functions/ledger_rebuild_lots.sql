-- Rebuild every lot (point_lot, lot_use) from the ledger alone: lots are a
-- projection of it. `points-ledger rebuild-lots` runs it to repair a projection
-- that `verify` finds out of step; point_lot and lot_use are locked meanwhile, so
-- earning and spending wait. Answers the number of lots written.
--
-- Every entry that changed available points (ledger_lot_changes(), in commit
-- order) is replayed through ledger_apply_lots().
CREATE OR REPLACE FUNCTION ledger_rebuild_lots() RETURNS bigint  -- lots written
LANGUAGE plpgsql AS $$
DECLARE
    v_entry record;
    v_lots bigint;
BEGIN
    LOCK TABLE point_lot, lot_use IN EXCLUSIVE MODE;
    DELETE FROM lot_use;
    DELETE FROM point_lot;
    FOR v_entry IN SELECT * FROM ledger_lot_changes()
    LOOP
        PERFORM ledger_apply_lots(
            p_entry_id => v_entry.entry_id,
            p_program_id => v_entry.program_id,
            p_source_entry_id => v_entry.source_entry_id,
            p_expires_at => v_entry.expires_at,
            p_member_ids => v_entry.member_ids,
            p_changes => v_entry.changes);
    END LOOP;
    SELECT count(*) INTO v_lots FROM point_lot;
    RETURN v_lots;
END
$$;
