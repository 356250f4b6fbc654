-- partner_rate_append_only: a partner's rate is never edited or deleted, only
-- superseded by a later one (LP002): what a line was priced at stays on record.
CREATE TRIGGER partner_rate_append_only BEFORE UPDATE OR DELETE ON partner_rate
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
