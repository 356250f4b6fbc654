-- tier_change_no_truncate: the tier history is never truncated (LP002).
CREATE TRIGGER tier_change_no_truncate BEFORE TRUNCATE ON tier_change
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
