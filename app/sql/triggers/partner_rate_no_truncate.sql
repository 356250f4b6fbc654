-- partner_rate_no_truncate: rates are never truncated (LP002).
CREATE TRIGGER partner_rate_no_truncate BEFORE TRUNCATE ON partner_rate
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
