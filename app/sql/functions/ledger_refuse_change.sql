-- ledger_refuse_change(): the trigger function that makes a table append-only.
-- Attached BEFORE UPDATE OR DELETE (per row) and BEFORE TRUNCATE (per statement)
-- to journal_entry, posting and tier_change, and BEFORE DELETE to account and
-- program (postings name accounts and entries name programs without foreign keys,
-- so those rows must never go away). Always raises SQLSTATE LP002: a mistake in
-- the ledger is corrected by a reversing entry, never by an edit.
CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'LP002', HINT = 'correct a mistake with a reversing entry';
END
$$;
