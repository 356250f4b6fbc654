-- One batch of the `expire` job for one program, in one round trip: the members
-- of p_member_ids (chosen by the caller: those with a lot past its date, and under
-- an inactivity policy those who may be inactive; app/ledger/expiry.py), each
-- locked, checked under the lock and given one `expire` entry for everything of
-- theirs that has expired as of p_as_of. A member with nothing expired, or not of
-- p_program_id, is left alone.
--
-- Under an `inactivity` policy (p_inactivity_months set) a member whose last
-- order (or enrolment, if they never ordered) is p_inactivity_months or more
-- before p_as_of, in the program's timezone, loses all their points; otherwise
-- only lots whose own expiry has passed expire.
--
-- Rerunning for the same instant finds nothing left to expire. Members are
-- locked in id order, like ledger_post() does, so a batch and an earn never
-- deadlock; a batch holds its members only until the caller commits it.
CREATE OR REPLACE FUNCTION ledger_expire(
    p_program_id bigint,
    p_member_ids bigint[],
    p_as_of timestamptz,
    p_recorded_at timestamptz,
    p_rules_version integer,
    p_inactivity_months integer,  -- NULL unless the policy is inactivity
    p_timezone text,
    p_entry_ids uuid[]            -- at least cardinality(p_member_ids) fresh ids for the entries
) RETURNS TABLE (
    members integer,  -- members with something expired
    lots bigint,      -- lots expired (fully or what was left of them)
    points bigint
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_member record;
    v_last_activity timestamptz;
    v_inactive boolean;
    v_due record;
    v_members integer := 0;
    v_lots bigint := 0;
    v_points bigint := 0;
    v_n integer := 0;
    v_posted record;
BEGIN
    FOR v_member IN
        SELECT b.member_id, m.external_id, m.enrolled_at
          FROM member_balance b JOIN member m ON m.id = b.member_id
         WHERE b.member_id = ANY (p_member_ids) AND m.program_id = p_program_id
         ORDER BY b.member_id
           FOR UPDATE OF b
    LOOP
        v_inactive := false;
        IF p_inactivity_months IS NOT NULL THEN
            SELECT greatest(v_member.enrolled_at, max(o.paid_at)) INTO v_last_activity
              FROM paid_order o WHERE o.member_id = v_member.member_id;
            v_inactive := ((v_last_activity AT TIME ZONE p_timezone)
                           + make_interval(months => p_inactivity_months)) AT TIME ZONE p_timezone
                          <= p_as_of;
        END IF;

        SELECT count(*) AS lots, coalesce(sum(l.remaining), 0)::bigint AS points INTO v_due
          FROM point_lot l
         WHERE l.member_id = v_member.member_id AND l.remaining > 0
           AND (v_inactive OR l.expires_at <= p_as_of);
        CONTINUE WHEN v_due.points = 0;

        -- Oldest-expiring first is exactly the expired lots (or, inactive, all of
        -- them), so ledger_post()'s ordinary debit takes these and no others.
        v_n := v_n + 1;
        SELECT * INTO v_posted FROM ledger_post(
            p_entry_id => p_entry_ids[v_n],
            p_program_id => p_program_id,
            p_kind => 'expire',
            -- a job's key starts with 'job·', which no client key can (printable ASCII)
            p_idempotency_key => 'job' || chr(183) || 'expire:' || p_entry_ids[v_n]::text,
            p_request_fingerprint => 'job:expire',
            p_occurred_at => p_as_of,
            p_recorded_at => p_recorded_at,
            p_actor_key_id => NULL,
            p_reverses_entry_id => NULL,
            p_reason => CASE WHEN v_inactive THEN format('no order for %s months', p_inactivity_months)
                             ELSE 'points reached their expiry date' END,
            p_order_id => NULL,
            p_rules_version => p_rules_version,
            p_expires_at => NULL,
            p_pending_until => NULL,
            p_metadata => jsonb_build_object('as_of', ledger_rfc3339(p_as_of), 'lots', v_due.lots),
            p_members => ARRAY[v_member.external_id, NULL],
            p_accounts => ARRAY['available', 'expiry'],
            p_amounts => ARRAY[-v_due.points, v_due.points]);
        v_members := v_members + 1;
        v_lots := v_lots + v_due.lots;
        v_points := v_points + v_due.points;
    END LOOP;

    RETURN QUERY SELECT v_members, v_lots, v_points;
END
$$;
