-- rules_version_notify(): NOTIFYs channel `rules_activated` with the program id
-- when a program's active rules version changes (trigger rules_version_activated).
-- Processes cache each program's active version only while they LISTEN there
-- (app/rulesets/cache.py).
CREATE OR REPLACE FUNCTION rules_version_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('rules_activated', NEW.program_id::text);
    RETURN NULL;
END
$$;
