-- partner_statement_no_truncate: closed statements are never truncated (LP002).
CREATE TRIGGER partner_statement_no_truncate BEFORE TRUNCATE ON partner_statement
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
