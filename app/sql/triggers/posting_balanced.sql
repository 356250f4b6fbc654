-- posting_balanced: at commit, the entry of each new posting balances
-- (ledger_check_entry_balanced(), LP003); catches postings added to an entry later.
CREATE CONSTRAINT TRIGGER posting_balanced AFTER INSERT ON posting
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_balanced();
