-- program_no_delete: entries name their program without a foreign key (see
-- account_no_delete), so programs never go away (LP002).
CREATE TRIGGER program_no_delete BEFORE DELETE ON program
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
