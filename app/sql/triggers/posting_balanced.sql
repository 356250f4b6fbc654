-- posting_balanced: at the end of each statement that writes postings, the entries
-- they belong to that are of kind `import` or were written by an earlier
-- transaction balance (ledger_check_entries_balanced(), LP003); catches postings
-- added to an entry later. The other entries of this transaction are checked at
-- commit by journal_entry_balanced, once all their postings are in.
CREATE TRIGGER posting_balanced AFTER INSERT ON posting
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_check_entries_balanced();
