-- journal_entry_balanced: at commit, each new entry has two or more postings
-- summing to zero (ledger_check_entry_balanced(), LP003); catches an entry written
-- with no postings at all. Entries of kind `import` are checked set-wise at the end
-- of the statement that wrote them instead (journal_entry_import_balanced).
CREATE CONSTRAINT TRIGGER journal_entry_balanced AFTER INSERT ON journal_entry
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.kind <> 'import')
    EXECUTE FUNCTION ledger_check_entry_balanced();
