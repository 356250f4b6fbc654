-- account_no_delete: postings reference accounts without a foreign key (a
-- foreign key would share-lock the issuance account on every earn), so accounts
-- never go away (LP002).
CREATE TRIGGER account_no_delete BEFORE DELETE ON account
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
