-- partner_payment_append_only: a recorded payment of a statement is never edited
-- or deleted (LP002).
CREATE TRIGGER partner_payment_append_only BEFORE UPDATE OR DELETE ON partner_payment
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
