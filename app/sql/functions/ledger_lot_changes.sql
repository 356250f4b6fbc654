-- ledger_lot_changes(): what the lots replay: every entry that changed some
-- member's available points, in commit order, with the changes per member (by
-- member id) and what the lot rules need of the entry: the entry whose lots come
-- first (the reversed entry, or its source_entry_id), the expiry of new lots,
-- and the entry's kind, recorded_at and, for a reversal, the kind it reverses.
--
-- p_program_id: one program, or NULL for every program.
-- p_from, p_before: only the postings recorded in [p_from, p_before); NULL on
-- either side leaves that side open. An entry is whole in one such window: all
-- its postings are recorded at its own recorded_at.
--
-- Commit order: an entry writes all its postings while holding its members'
-- locks, so of two entries that touched one member, the one that committed first
-- has the smaller last posting id (last_posting_id; the rows come in its order).
-- An activation that carries no expiry of its own gives its lot the expiry of
-- the credit it activated.
--
-- Read by ledger_rebuild_lots() and by `verify`'s independent replay
-- (app/ledger/lots.py), so both replay exactly the same history; and by the
-- reports' lot replay (app/reports/repository.py), whole or from a day on.
--
-- Plans: the statement is planned for each call's own window. A history read
-- from its start takes whole-table passes joined on keys only: the same plan
-- shape with or without fresh statistics (a correlated form went quadratic right
-- after a bulk load). A window with a start (a report's or rollup's days) reads
-- few postings of many members: each posting's available account is looked up by
-- its member, one index probe each, and activations only for the window's
-- entries (at 1,000,000 members the planner hashed every available account for a
-- day's postings).
CREATE OR REPLACE FUNCTION ledger_lot_changes(
    p_program_id bigint DEFAULT NULL,
    p_from timestamptz DEFAULT NULL,
    p_before timestamptz DEFAULT NULL
)
RETURNS TABLE (
    entry_id uuid,
    program_id bigint,
    kind text,
    recorded_at timestamptz,
    source_entry_id uuid,   -- whose lots a debit takes first, or a credit gives back to
    reversed_kind text,     -- the kind of the entry a reversal reverses
    expires_at timestamptz, -- the expiry of the lots the entry creates
    member_ids bigint[],    -- ascending
    changes bigint[],       -- each member's change of available points
    last_posting_id bigint  -- commit order
) LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_postings text := 'TRUE';  -- which postings: $1 program, $2 from, $3 before
    v_available text;           -- how a posting is found to be on an available account
    v_activated text;           -- which activations to look up
    v_credits text := 'TRUE';   -- which programs' pending credits
BEGIN
    IF p_program_id IS NOT NULL THEN
        v_postings := v_postings || ' AND p.program_id = $1';
        v_credits := 'c.program_id = $1';
    END IF;
    IF p_from IS NOT NULL THEN
        v_postings := v_postings || ' AND p.recorded_at >= $2';
    END IF;
    IF p_before IS NOT NULL THEN
        v_postings := v_postings || ' AND p.recorded_at < $3';
    END IF;
    IF p_from IS NULL THEN
        v_available := '(p.program_id, p.account_id) IN (SELECT a.program_id, a.id FROM account a'
            || ' WHERE a.kind = ''available'')';
        v_activated := 'c.activation_entry_id IS NOT NULL';
    ELSE
        v_available := 'p.member_id IS NOT NULL AND p.account_id = (SELECT a.id FROM account a'
            || ' WHERE a.program_id = p.program_id AND a.member_id = p.member_id'
            || ' AND a.kind = ''available'')';
        v_activated := '(c.program_id, c.activation_entry_id) IN (SELECT x.program_id, x.entry_id'
            || ' FROM entry_change x)';
    END IF;
    RETURN QUERY EXECUTE format($q$
WITH member_change AS (  -- each entry's net change of each member's available points
    SELECT p.program_id, p.entry_id, p.member_id, sum(p.amount)::bigint AS change
      FROM posting p
     WHERE %1$s AND %2$s
     GROUP BY p.program_id, p.entry_id, p.member_id
    HAVING sum(p.amount) <> 0
), entry_change AS (
    SELECT c.program_id, c.entry_id, array_agg(c.member_id ORDER BY c.member_id) AS member_ids,
           array_agg(c.change ORDER BY c.member_id) AS changes
      FROM member_change c
     GROUP BY c.program_id, c.entry_id
), last_posting AS (
    SELECT p.program_id, p.entry_id, max(p.id) AS id FROM posting p
     WHERE %1$s
     GROUP BY p.program_id, p.entry_id
), activated AS (  -- an activation's lot takes the expiry of the credit it activated
    SELECT DISTINCT ON (c.program_id, c.activation_entry_id) c.program_id, c.activation_entry_id,
           o.expires_at
      FROM pending_credit c JOIN journal_entry o ON o.program_id = c.program_id AND o.id = c.entry_id
     WHERE %3$s AND %4$s
     ORDER BY c.program_id, c.activation_entry_id, c.id
)
SELECT e.id, e.program_id, e.kind, e.recorded_at, coalesce(e.reverses_entry_id, e.source_entry_id),
       CASE WHEN e.reverses_entry_id IS NOT NULL THEN
           (SELECT r.kind FROM journal_entry r WHERE r.program_id = e.program_id AND r.id = e.reverses_entry_id)
       END,
       coalesce(e.expires_at, v.expires_at), x.member_ids, x.changes, l.id
  FROM entry_change x
  JOIN last_posting l ON l.program_id = x.program_id AND l.entry_id = x.entry_id
  JOIN journal_entry e ON e.program_id = x.program_id AND e.id = x.entry_id
  LEFT JOIN activated v ON v.program_id = x.program_id AND v.activation_entry_id = x.entry_id
 ORDER BY l.id
$q$, v_postings, v_available, v_activated, v_credits)
    USING p_program_id, p_from, p_before;
END
$$;
