-- event_log_guard(): keeps the event log append-only but for the one write the
-- chainer makes: giving an unsequenced event its `sequence` (NULL -> a number).
-- Any other UPDATE, and every DELETE, raises SQLSTATE LP002. Attached BEFORE
-- UPDATE OR DELETE per row to event_log (trigger event_log_append_only).
CREATE OR REPLACE FUNCTION event_log_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.sequence IS NULL AND NEW.sequence IS NOT NULL
       AND (to_jsonb(NEW) - 'sequence') = (to_jsonb(OLD) - 'sequence') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'event_log is append-only: % refused', TG_OP
        USING ERRCODE = 'LP002', HINT = 'only the chainer''s assignment of a sequence is allowed';
END
$$;
