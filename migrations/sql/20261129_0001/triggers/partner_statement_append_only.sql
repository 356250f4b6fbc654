-- partner_statement_append_only: a closed settlement statement is never edited or
-- deleted (LP002); `verify` derives each one again and checks its digest.
CREATE TRIGGER partner_statement_append_only BEFORE UPDATE OR DELETE ON partner_statement
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
