-- event_log_no_truncate: the event log is never truncated (LP002).
CREATE TRIGGER event_log_no_truncate BEFORE TRUNCATE ON event_log
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
