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
SELECT e.id, e.program_id, coalesce(e.reverses_entry_id, e.source_entry_id),
       coalesce(e.expires_at, (SELECT o.expires_at
                                 FROM pending_credit c JOIN journal_entry o ON o.id = c.entry_id
                                WHERE c.activation_entry_id = e.id
                                LIMIT 1)),
       ch.member_ids, ch.changes
  FROM (SELECT p.entry_id, max(p.id) AS last_posting FROM posting p GROUP BY p.entry_id) last
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
$$;
