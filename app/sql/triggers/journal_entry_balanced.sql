-- journal_entry_balanced: at commit, each new entry has two or more postings
-- summing to zero (ledger_check_entry_balanced(), LP003); catches an entry written
-- with no postings at all.
CREATE CONSTRAINT TRIGGER journal_entry_balanced AFTER INSERT ON journal_entry
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_balanced();
