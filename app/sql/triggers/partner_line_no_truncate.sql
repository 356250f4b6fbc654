-- partner_line_no_truncate: settlement lines are never truncated (LP002).
CREATE TRIGGER partner_line_no_truncate BEFORE TRUNCATE ON partner_line
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
