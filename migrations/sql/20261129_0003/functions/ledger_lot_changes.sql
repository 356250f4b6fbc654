-- ledger_lot_changes(): what the lots replay: every entry that changed some
-- member's available points, in commit order, with the changes per member (by
-- member id) and what the lot rules need of the entry: the entry whose lots come
-- first (the reversed entry, or its source_entry_id) and the expiry of new lots.
--
-- Commit order: an entry writes all its postings while holding its members'
-- locks, so of two entries that touched one member, the one that committed first
-- has the smaller last posting id. An activation that carries no expiry of its own
-- gives its lot the expiry of the credit it activated.
--
-- Read by ledger_rebuild_lots() and by `verify`'s independent replay
-- (app/ledger/lots.py), so both replay exactly the same history.
CREATE OR REPLACE FUNCTION ledger_lot_changes()
RETURNS TABLE (
    entry_id uuid,
    program_id bigint,
    source_entry_id uuid,   -- whose lots a debit takes first, or a credit gives back to
    expires_at timestamptz, -- the expiry of the lots the entry creates
    member_ids bigint[],    -- ascending
    changes bigint[]        -- each member's change of available points
) LANGUAGE sql STABLE AS $$
WITH member_change AS (  -- each entry's net change of each member's available points
    SELECT p.program_id, p.entry_id, p.member_id, sum(p.amount)::bigint AS change
      FROM posting p
      JOIN account a ON a.program_id = p.program_id AND a.id = p.account_id AND a.kind = 'available'
     GROUP BY p.program_id, p.entry_id, p.member_id
    HAVING sum(p.amount) <> 0
), entry_change AS (
    SELECT c.program_id, c.entry_id, array_agg(c.member_id ORDER BY c.member_id) AS member_ids,
           array_agg(c.change ORDER BY c.member_id) AS changes
      FROM member_change c
     GROUP BY c.program_id, c.entry_id
), last_posting AS (
    SELECT p.program_id, p.entry_id, max(p.id) AS id FROM posting p GROUP BY p.program_id, p.entry_id
), activated AS (  -- an activation's lot takes the expiry of the credit it activated
    SELECT DISTINCT ON (c.program_id, c.activation_entry_id) c.program_id, c.activation_entry_id,
           o.expires_at
      FROM pending_credit c JOIN journal_entry o ON o.program_id = c.program_id AND o.id = c.entry_id
     WHERE c.activation_entry_id IS NOT NULL
     ORDER BY c.program_id, c.activation_entry_id, c.id
)
-- Whole-table passes and joins on keys only: the same plan shape with or without
-- fresh statistics (a correlated form went quadratic right after a bulk load).
SELECT e.id, e.program_id, coalesce(e.reverses_entry_id, e.source_entry_id),
       coalesce(e.expires_at, v.expires_at), x.member_ids, x.changes
  FROM entry_change x
  JOIN last_posting l ON l.program_id = x.program_id AND l.entry_id = x.entry_id
  JOIN journal_entry e ON e.program_id = x.program_id AND e.id = x.entry_id
  LEFT JOIN activated v ON v.program_id = x.program_id AND v.activation_entry_id = x.entry_id
 ORDER BY l.id
$$;
