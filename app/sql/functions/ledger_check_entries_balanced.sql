-- ledger_check_entries_balanced(): the statement-level half of double entry, for the
-- entries a statement's rows touch that the deferred row-level check
-- (ledger_check_entry_balanced(), journal_entry_balanced) leaves alone. Attached
-- AFTER INSERT ... FOR EACH STATEMENT, with the statement's new rows as the
-- transition table `added`, to journal_entry (journal_entry_import_balanced) and to
-- posting (posting_balanced). Refuses (SQLSTATE LP003) the whole statement when one
-- of the entries it checks has postings that do not sum to zero or fewer than two:
--
-- - journal_entry: each new entry of kind `import`. Imports write thousands of
--   entries a statement with their postings (ledger_import_lots()); one check of
--   the lot here replaces three deferred row checks each (journal_entry_balanced
--   skips them), and an import entry must be balanced by the end of the statement
--   that wrote it.
-- - posting: each entry the new postings belong to that is of kind `import` (a
--   posting added to one later unbalances it), or that an earlier transaction
--   wrote (a posting added to an old entry: journal_entry_balanced checked it at
--   its own commit, not now). The entries of this transaction of other kinds are
--   checked at commit by journal_entry_balanced, once all their postings are in.
--
-- Together with journal_entry_balanced: every entry has two or more postings
-- summing to zero when its transaction commits, whatever writes the rows. The
-- postings of an entry are read by (program_id, entry_id) per entry (lateral
-- aggregates and a scalar subquery: index lookups whatever the statement's size).
CREATE OR REPLACE FUNCTION ledger_check_entries_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_entry_id uuid;
    v_count bigint;
    v_sum numeric;
BEGIN
    IF TG_TABLE_NAME = 'journal_entry' THEN
        SELECT a.id, s.postings, s.total INTO v_entry_id, v_count, v_sum
          FROM added a
         CROSS JOIN LATERAL (
               SELECT count(*) AS postings, coalesce(sum(p.amount), 0) AS total
                 FROM posting p WHERE p.program_id = a.program_id AND p.entry_id = a.id) s
         WHERE a.kind = 'import' AND (s.total <> 0 OR s.postings < 2)
         LIMIT 1;
    ELSE
        SELECT t.entry_id, s.postings, s.total INTO v_entry_id, v_count, v_sum
          FROM (SELECT DISTINCT a.program_id, a.entry_id FROM added a) t
         CROSS JOIN LATERAL (
               SELECT count(*) AS postings, coalesce(sum(p.amount), 0) AS total
                 FROM posting p WHERE p.program_id = t.program_id AND p.entry_id = t.entry_id) s
         WHERE (s.total <> 0 OR s.postings < 2)
           AND (SELECT e.kind = 'import' OR e.txid <> pg_current_xact_id()::text::bigint
                  FROM journal_entry e WHERE e.program_id = t.program_id AND e.id = t.entry_id)
         LIMIT 1;
    END IF;
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % does not balance: % postings summing to %',
            v_entry_id, v_count, v_sum USING ERRCODE = 'LP003';
    END IF;
    RETURN NULL;
END
$$;
