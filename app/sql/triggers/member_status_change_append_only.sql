-- member_status_change_append_only: a member's status history is never edited (LP002).
CREATE TRIGGER member_status_change_append_only BEFORE UPDATE OR DELETE ON member_status_change
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
