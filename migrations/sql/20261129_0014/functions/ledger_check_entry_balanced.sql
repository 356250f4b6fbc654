-- ledger_check_entry_balanced(): the deferred constraint trigger function that
-- refuses, at commit, a journal entry whose postings do not sum to zero or that has
-- fewer than two (SQLSTATE LP003). Attached AFTER INSERT to journal_entry (NEW is
-- the entry; journal_entry_balanced, for every kind but `import`), DEFERRABLE
-- INITIALLY DEFERRED, so it runs once every posting of the transaction is in.
-- ledger_check_entries_balanced() checks the rest set-wise at the end of each
-- statement: import entries, and postings added to an entry later. The database
-- itself keeps double entry, whatever writes the rows.
CREATE OR REPLACE FUNCTION ledger_check_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_sum numeric;
    v_count bigint;
BEGIN
    SELECT coalesce(sum(p.amount), 0), count(*) INTO v_sum, v_count
      FROM posting p WHERE p.program_id = NEW.program_id AND p.entry_id = NEW.id;
    IF v_sum <> 0 OR v_count < 2 THEN
        RAISE EXCEPTION 'journal entry % does not balance: % postings summing to %',
            NEW.id, v_count, v_sum USING ERRCODE = 'LP003';
    END IF;
    RETURN NULL;
END
$$;
