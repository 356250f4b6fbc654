-- member_status_change_no_truncate: the status history is never truncated (LP002).
CREATE TRIGGER member_status_change_no_truncate BEFORE TRUNCATE ON member_status_change
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
