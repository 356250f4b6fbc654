-- event_log_guard(): keeps the event log append-only but for two writes:
-- 1. the chainer's: giving an unsequenced event its `sequence` (NULL -> a number),
--    nothing else changed;
-- 2. an erasure's: rewriting an event's `data` (personal data replaced by the
--    erased member's pseudonym), nothing else changed, only in a transaction that
--    has set `ledger.erasure` to 'on' (SET LOCAL, app.eventlog.service.redact_member).
--    `data` is no part of any hash: an entry's event carries no data of its own
--    (it is the entry, rendered when read) and the chain covers entries only.
-- Any other UPDATE, and every DELETE, raises SQLSTATE LP002. Attached BEFORE
-- UPDATE OR DELETE per row to event_log (trigger event_log_append_only).
CREATE OR REPLACE FUNCTION event_log_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.sequence IS NULL AND NEW.sequence IS NOT NULL
       AND (to_jsonb(NEW) - 'sequence') = (to_jsonb(OLD) - 'sequence') THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' AND current_setting('ledger.erasure', true) = 'on'
       AND OLD.data IS NOT NULL AND NEW.data IS NOT NULL
       AND (to_jsonb(NEW) - 'data') = (to_jsonb(OLD) - 'data') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'event_log is append-only: % refused', TG_OP
        USING ERRCODE = 'LP002', HINT = 'only the chainer''s assignment of a sequence and an erasure''s redaction are allowed';
END
$$;
