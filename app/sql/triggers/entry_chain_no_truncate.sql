-- entry_chain_no_truncate: the chain is never truncated (LP002).
CREATE TRIGGER entry_chain_no_truncate BEFORE TRUNCATE ON entry_chain
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
