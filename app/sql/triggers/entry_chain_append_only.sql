-- entry_chain_append_only: a chained entry's sequence and hash are never edited (LP002).
CREATE TRIGGER entry_chain_append_only BEFORE UPDATE OR DELETE ON entry_chain
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
