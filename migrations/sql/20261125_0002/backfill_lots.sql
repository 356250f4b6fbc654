-- Lots for the ledgers written before lots existed: replay every entry that
-- changed available points through ledger_apply_lots(), in commit order.
--
-- An entry's postings are all written while it holds its members' locks, so for
-- any member two entries touched, the one that committed first has the smaller
-- last posting id: ordering entries by their last posting id replays each
-- member's history in the order it happened. Activations written before this
-- revision carry no expiry; their lots take the expiry of the credit they activated.
DO $$
DECLARE
    v_entry record;
BEGIN
    FOR v_entry IN
        SELECT e.id, e.program_id, e.reverses_entry_id,
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
        PERFORM ledger_apply_lots(v_entry.id, v_entry.program_id, v_entry.reverses_entry_id,
                                  v_entry.expires_at, v_entry.member_ids, v_entry.changes);
    END LOOP;
END
$$;
