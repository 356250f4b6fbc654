-- journal_entry_import_balanced: at the end of each statement that writes entries,
-- every new entry of kind `import` has two or more postings summing to zero
-- (ledger_check_entries_balanced(), LP003): one set-wise check for the thousands of
-- entries an import writes a statement, instead of a deferred check per row.
CREATE TRIGGER journal_entry_import_balanced AFTER INSERT ON journal_entry
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_check_entries_balanced();
