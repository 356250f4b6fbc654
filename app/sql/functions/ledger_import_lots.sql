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
-- - The deferred balanced-entry triggers check every entry at commit, as for any
--   other entry; the chainer chains them in the background (no `points.import`
--   events: see app/ledger/chain.py).
-- - The program's `migration` account must exist (LP005 otherwise).
-- - Plans: made for each call (plan_cache_mode), for the sizes of its arrays.
--
-- Returns the lots written and their points.
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
    p_expires_at timestamptz[]  -- when each lot expires (NULL: never)
) RETURNS TABLE (imported bigint, points bigint)
LANGUAGE plpgsql
-- a plan for each chunk's arrays: a generic plan guesses their sizes and joins
-- thousands of lots by nested loops over whole tables (measured 3x slower)
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    v_migration bigint;
    v_imported bigint;
    v_points bigint;
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
    ), lots AS (
        INSERT INTO point_lot (program_id, member_id, entry_id, points, remaining, expires_at)
        SELECT p_program_id, l.member_id, l.entry_id, l.points, l.points, l.expires_at
          FROM lot l
         ORDER BY l.n
    ), balances AS (
        UPDATE member_balance b
           SET available = b.available + s.points, version = b.version + 1, updated_at = p_recorded_at
          FROM (SELECT l.member_id, sum(l.points) AS points FROM lot l GROUP BY l.member_id) s
         WHERE b.program_id = p_program_id AND b.member_id = s.member_id
    )
    SELECT count(*), coalesce(sum(l.points), 0) INTO v_imported, v_points FROM lot l;

    RETURN QUERY SELECT v_imported, v_points;
END
$$;
