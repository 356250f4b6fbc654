-- event_log_append_only: events are never edited or removed; the chainer only gives
-- an unsequenced one its sequence (event_log_guard(), LP002 otherwise).
CREATE TRIGGER event_log_append_only BEFORE UPDATE OR DELETE ON event_log
    FOR EACH ROW EXECUTE FUNCTION event_log_guard();
