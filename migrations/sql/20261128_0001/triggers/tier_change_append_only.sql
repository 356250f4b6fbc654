-- tier_change_append_only: a member's tier history is never edited (LP002).
CREATE TRIGGER tier_change_append_only BEFORE UPDATE OR DELETE ON tier_change
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
