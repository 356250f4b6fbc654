-- partner_line_no_delete: settlement lines are never deleted (LP002).
CREATE TRIGGER partner_line_no_delete BEFORE DELETE ON partner_line
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
