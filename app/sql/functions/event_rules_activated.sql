-- event_rules_activated(): writes a `rules.activated` event ({"version": n}) into
-- event_log for every rules_activation row, in the same transaction (trigger
-- rules_activation_event).
CREATE OR REPLACE FUNCTION event_rules_activated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_log (id, program_id, type, occurred_at, created_at, data)
    VALUES (gen_random_uuid(), NEW.program_id, 'rules.activated', NEW.activated_at, NEW.activated_at,
            jsonb_build_object('version', NEW.version));
    RETURN NULL;
END
$$;
