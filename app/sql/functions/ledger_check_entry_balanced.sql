-- ledger_check_entry_balanced(): the deferred constraint trigger function that
-- refuses, at commit, a journal entry whose postings do not sum to zero or that has
-- fewer than two (SQLSTATE LP003). Attached AFTER INSERT to journal_entry (NEW is
-- the entry) and to posting (NEW is a posting of the entry), DEFERRABLE INITIALLY
-- DEFERRED, so it runs once every posting of the transaction is in. The database
-- itself keeps double entry, whatever writes the rows.
CREATE OR REPLACE FUNCTION ledger_check_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_entry_id uuid;
    v_sum numeric;
    v_count bigint;
BEGIN
    IF TG_TABLE_NAME = 'posting' THEN
        v_entry_id := NEW.entry_id;
    ELSE
        v_entry_id := NEW.id;
    END IF;
    SELECT coalesce(sum(p.amount), 0), count(*) INTO v_sum, v_count
      FROM posting p WHERE p.program_id = NEW.program_id AND p.entry_id = v_entry_id;
    IF v_sum <> 0 OR v_count < 2 THEN
        RAISE EXCEPTION 'journal entry % does not balance: % postings summing to %',
            v_entry_id, v_count, v_sum USING ERRCODE = 'LP003';
    END IF;
    RETURN NULL;
END
$$;
