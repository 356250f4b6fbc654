-- event_tier_changed(): writes a `tier.changed` event into event_log for every
-- tier_change row, in the same transaction (trigger tier_change_event), whichever
-- path changed the tier (an order, an event, a job, an override). data:
-- {"member": external id, "from", "to", "reason", "term_ends_at"}; occurred_at is
-- the change's effective_at, created_at its recorded_at. A tier imported from a
-- legacy program (reason `imported`) is no event of its own: its run's
-- `import.completed` summarises it (app/imports).
CREATE OR REPLACE FUNCTION event_tier_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_log (id, program_id, type, occurred_at, created_at, members, data)
    SELECT gen_random_uuid(), NEW.program_id, 'tier.changed', NEW.effective_at, NEW.recorded_at,
           ARRAY[NEW.member_id],
           jsonb_build_object('member', m.external_id, 'from', NEW.from_tier, 'to', NEW.to_tier,
                              'reason', NEW.reason, 'term_ends_at', ledger_rfc3339(NEW.term_ends_at))
      FROM member m WHERE m.program_id = NEW.program_id AND m.id = NEW.member_id
       AND NEW.reason <> 'imported';
    RETURN NULL;
END
$$;
