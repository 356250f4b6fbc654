-- ledger_import_lots(): a chunk of lots from a legacy program, written set-wise
-- (app/imports). Each lot becomes one journal entry of kind `import`: the
-- program's `migration` account debited, the member's `available` account
-- credited, with the lot's original dates (occurred_at = earned_at, expires_at =
-- its expiry), and one point_lot, so FIFO and the `expire` job treat it as earned
-- then. The same rows ledger_post() would write, for thousands of lots in a few
-- statements instead of one call each (bench/imports.py measures it):
--
-- - Lots are parallel arrays, one element per lot, in the order to write them
--   (the caller sorts a chunk by earned_at, so point_lot ids follow it).
-- - Idempotency: each entry's key is `import·<source>·<lot_ref>`. The caller
--   leaves out the lots whose key is taken (a file run again writes nothing);
--   the unique (program_id, idempotency_key) index refuses one taken meanwhile
--   by a concurrent import (23505: the caller filters the chunk again and
--   retries it). No idempotency record: no response is replayed for an import row.
-- - Members: by internal id, of p_program_id (the caller resolved them). Their
--   balance rows are locked first, in ascending member id, as ledger_post()
--   locks them: concurrent posting for the same members queues, never deadlocks.
-- - Postings: for each lot, in order, the member's posting (available_after its
--   balance after this lot: the balance before the chunk plus the lots before it
--   in the chunk) then the migration account's; every posting records
--   p_recorded_at. So each entry's last posting id orders it (ledger_lot_changes()),
--   and each member's lots are created in that order.
-- - Balances: one UPDATE per member per chunk (available + the lots' points,
--   version + 1).
-- - The chainer chains the entries in the background (no `points.import` events:
--   see app/ledger/chain.py).
-- - The program's `migration` account must exist (LP005 otherwise). It has no
--   balance row (an unbounded system account): parallel chunks share no hot row.
-- - Plans: made for each call (plan_cache_mode), for the sizes of its arrays.
--
-- Checks: what the per-row triggers guarantee, done set-wise when they are off.
-- The rows this function writes meet these triggers (the tables' whole list;
-- tests/imports/test_import_checks.py fails if it changes):
--   journal_entry: fk_journal_entry_reverses_entry_id_journal_entry and
--     fk_journal_entry_source_entry_id_journal_entry (both columns are NULL for
--     an import: nothing to check), journal_entry_balanced (deferred);
--   posting: fk_posting_entry_id_journal_entry, posting_balanced (deferred);
--   point_lot: fk_point_lot_entry_id_journal_entry, fk_point_lot_member_id_member;
--   member_balance: fk_member_balance_member_id_member (an UPDATE that keeps the
--     key queues no check); the append-only and no-truncate guards fire on
--     UPDATE, DELETE and TRUNCATE only, which this function never runs on them.
-- When the current role may SET session_replication_role (a superuser, or PG 15's
-- `GRANT SET ON PARAMETER session_replication_role TO <role>`) and p_row_checks
-- is false, the function sets it to `replica` for its own statements only (so no
-- per-row trigger is queued for them) and back to what it was before it returns,
-- and checks instead, in the same transaction:
--   - every lot's member exists in the program and stays: the members' rows are
--     locked FOR KEY SHARE in ascending id (what each lot's foreign-key check
--     locks, in one statement), after the balance rows, as the foreign-key
--     checks lock them today; a member missing: 23503;
--   - every posting's and every lot's entry is an entry this statement wrote in
--     the program (23503 otherwise), and every entry it wrote has two or more
--     postings summing to zero (LP003): its postings are all in this statement's
--     (the entry ids are new and nobody else sees them before commit), so this
--     is the deferred check made now, once for the chunk.
-- Otherwise (or with p_row_checks) the triggers run as for any entry: the
-- foreign-key checks row by row and the balanced-entry checks at commit; the
-- set-wise checks run too (they cost a few ms a chunk).
--
-- Returns the lots written, their points and whether the set-wise checks
-- replaced the per-row triggers (row_checks false).
CREATE OR REPLACE FUNCTION ledger_import_lots(
    p_program_id bigint,
    p_source text,
    p_recorded_at timestamptz,
    p_actor_key_id uuid,
    p_entry_ids uuid[],         -- one new entry id per lot (UUIDv7)
    p_member_ids bigint[],      -- each lot's member (internal id)
    p_lot_refs text[],          -- each lot's reference in the legacy program
    p_points bigint[],          -- each lot's points (> 0)
    p_earned_at timestamptz[],  -- when each lot was earned
    p_expires_at timestamptz[], -- when each lot expires (NULL: never)
    p_row_checks boolean DEFAULT false  -- true: the per-row triggers even when they could be off
) RETURNS TABLE (imported bigint, points bigint, row_checks boolean)
LANGUAGE plpgsql
-- a plan for each chunk's arrays: a generic plan guesses their sizes and joins
-- thousands of lots by nested loops over whole tables (measured 3x slower)
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    v_migration bigint;
    v_imported bigint;
    v_points bigint;
    v_members bigint[];
    v_locked bigint;
    v_entries bigint;
    v_balanced bigint;
    v_stray bigint;
    v_role text := current_setting('session_replication_role');
    v_set_wise boolean := NOT p_row_checks AND has_parameter_privilege('session_replication_role', 'SET');
BEGIN
    SELECT a.id INTO v_migration FROM account a
     WHERE a.program_id = p_program_id AND a.member_id IS NULL AND a.kind = 'migration'
       AND a.partner_id IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'program % has no migration account', p_program_id USING ERRCODE = 'LP005';
    END IF;

    -- The members' balance rows, in ascending id (ledger_post()'s order).
    PERFORM 1 FROM member_balance b
     WHERE b.program_id = p_program_id AND b.member_id = ANY (p_member_ids)
     ORDER BY b.member_id
       FOR UPDATE;

    IF v_set_wise THEN
        -- Each lot's member, locked as its foreign-key check would (after the
        -- balance rows, as today), once per member.
        v_members := ARRAY(SELECT DISTINCT u.m FROM unnest(p_member_ids) AS u(m) ORDER BY u.m);
        SELECT count(*) INTO v_locked FROM (
            SELECT 1 FROM member m
             WHERE m.program_id = p_program_id AND m.id = ANY (v_members)
             ORDER BY m.id
               FOR KEY SHARE) AS k;
        IF v_locked <> cardinality(v_members) THEN
            RAISE EXCEPTION 'a lot names a member not in program %', p_program_id
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        PERFORM set_config('session_replication_role', 'replica', true);
    END IF;

    -- One statement for the rest: its snapshot sees the balances as the lock left
    -- them, before the UPDATE below adds the chunk; data-modifying CTEs run to
    -- completion whether or not the final SELECT reads them.
    WITH lot AS MATERIALIZED (
        SELECT x.n, x.entry_id, x.member_id, x.lot_ref, x.points, x.earned_at, x.expires_at,
               b.available + sum(x.points) OVER (PARTITION BY x.member_id ORDER BY x.n) AS available_after,
               b.pending, b.held, a.id AS account_id
          FROM unnest(p_entry_ids, p_member_ids, p_lot_refs, p_points, p_earned_at, p_expires_at)
               WITH ORDINALITY AS x(entry_id, member_id, lot_ref, points, earned_at, expires_at, n)
          JOIN member_balance b ON b.program_id = p_program_id AND b.member_id = x.member_id
          JOIN account a ON a.program_id = p_program_id AND a.member_id = x.member_id AND a.kind = 'available'
    ), entries AS (
        INSERT INTO journal_entry (
            id, program_id, kind, occurred_at, recorded_at, idempotency_key, request_fingerprint,
            actor_key_id, reason, expires_at, metadata)
        SELECT l.entry_id, p_program_id, 'import', l.earned_at, p_recorded_at,
               'import·' || p_source || '·' || l.lot_ref, 'import', p_actor_key_id,
               'imported from ' || p_source, l.expires_at, jsonb_build_object('lot_ref', l.lot_ref)
          FROM lot l
         ORDER BY l.n
        RETURNING program_id, id
    ), legs AS (
        INSERT INTO posting (program_id, entry_id, account_id, member_id, amount,
                             available_after, pending_after, held_after, recorded_at)
        SELECT p_program_id, l.entry_id, CASE g.leg WHEN 1 THEN l.account_id ELSE v_migration END,
               CASE g.leg WHEN 1 THEN l.member_id END,
               CASE g.leg WHEN 1 THEN l.points ELSE -l.points END,
               CASE g.leg WHEN 1 THEN l.available_after END,
               CASE g.leg WHEN 1 THEN l.pending END,
               CASE g.leg WHEN 1 THEN l.held END,
               p_recorded_at
          FROM lot l CROSS JOIN (VALUES (1), (2)) AS g(leg)
         ORDER BY l.n, g.leg
        RETURNING program_id, entry_id, amount
    ), lots AS (
        INSERT INTO point_lot (program_id, member_id, entry_id, points, remaining, expires_at)
        SELECT p_program_id, l.member_id, l.entry_id, l.points, l.points, l.expires_at
          FROM lot l
         ORDER BY l.n
        RETURNING program_id, entry_id
    ), balances AS (
        UPDATE member_balance b
           SET available = b.available + s.points, version = b.version + 1, updated_at = p_recorded_at
          FROM (SELECT l.member_id, sum(l.points) AS points FROM lot l GROUP BY l.member_id) s
         WHERE b.program_id = p_program_id AND b.member_id = s.member_id
    )
    SELECT (SELECT count(*) FROM lot),
           (SELECT coalesce(sum(l.points), 0) FROM lot l),
           (SELECT count(*) FROM entries),
           -- entries written here whose postings balance: two or more, summing to zero
           (SELECT count(*) FROM entries e
              JOIN (SELECT g.program_id, g.entry_id FROM legs g GROUP BY g.program_id, g.entry_id
                    HAVING sum(g.amount) = 0 AND count(*) >= 2) ok
                ON ok.program_id = e.program_id AND ok.entry_id = e.id),
           -- postings and lots whose entry is not one written here
           (SELECT count(*) FROM legs g
             WHERE NOT EXISTS (SELECT 1 FROM entries e WHERE e.program_id = g.program_id AND e.id = g.entry_id))
           + (SELECT count(*) FROM lots t
             WHERE NOT EXISTS (SELECT 1 FROM entries e WHERE e.program_id = t.program_id AND e.id = t.entry_id))
      INTO v_imported, v_points, v_entries, v_balanced, v_stray;

    IF v_set_wise THEN
        PERFORM set_config('session_replication_role', v_role, true);
    END IF;
    IF v_stray <> 0 THEN
        RAISE EXCEPTION '% postings or lots name an entry this import did not write', v_stray
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF v_balanced <> v_entries THEN
        RAISE EXCEPTION '% of % imported entries do not balance', v_entries - v_balanced, v_entries
            USING ERRCODE = 'LP003';
    END IF;

    RETURN QUERY SELECT v_imported, v_points, NOT v_set_wise;
END
$$;
