-- partner_payment_no_truncate: recorded payments are never truncated (LP002).
CREATE TRIGGER partner_payment_no_truncate BEFORE TRUNCATE ON partner_payment
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
