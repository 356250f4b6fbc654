-- tier_activity(): members' qualifying activity in windows, as tiers judge it.
--
-- Window i is (p_members[i], p_starts[i], p_ends[i]), members of program
-- p_program_id: activity paid or occurred in
-- [start, end] (start NULL: since ever). One row per window, `n` its 1-based
-- position, in order:
--   orders  orders not fully refunded (an order of total 0 counts),
--   spend   their totals net of refunds,
--   points  points earned by orders (net of what refunds took back) and by events,
--           the member's own and as a referrer,
--   referrals  members enrolled with this member as their referrer whose first
--           order not fully refunded (any earner's; by paid_at) falls in the window;
--           counted only with p_referrals (rules whose tiers name `referrals`),
--           0 otherwise: a caller that passes false, or leaves it out, pays nothing
--           for it (the inlined lateral is pruned as a one-time false filter).
-- Awards are not activity, nor are reversed events. local_day (the program's day,
-- within two days of the UTC date in any timezone) lets the (member_id, local_day)
-- index narrow the orders.
--
-- Callers: the tiers service (evaluations, upgrades), and an order's facts read
-- (app/orders/repository.py), which asks for the member's upgrade windows in the
-- same round trip. A single SQL SELECT, so PostgreSQL inlines it into the caller's
-- query.
CREATE OR REPLACE FUNCTION tier_activity(
    p_program_id bigint, p_members bigint[], p_starts timestamptz[], p_ends timestamptz[],
    p_referrals boolean DEFAULT false)
RETURNS TABLE (n bigint, orders bigint, spend numeric, points bigint, referrals bigint)
LANGUAGE sql STABLE AS $$
SELECT w.n,
       coalesce(o.orders, 0)::bigint,
       coalesce(o.spend, 0)::numeric,
       (coalesce(o.points, 0) + coalesce(e.points, 0) + coalesce(r.points, 0))::bigint,
       coalesce(f.referrals, 0)::bigint
  FROM unnest(p_members, p_starts, p_ends) WITH ORDINALITY AS w(member_id, starts, ends, n)
  LEFT JOIN LATERAL (
       SELECT count(*) FILTER (WHERE p.refunded_total < p.total OR p.total = 0) AS orders,
              sum(p.total - p.refunded_total) AS spend,
              sum(p.points - p.points_taken_back) AS points
         FROM paid_order p
        WHERE p.program_id = p_program_id AND p.member_id = w.member_id
          AND p.local_day <= (w.ends AT TIME ZONE 'UTC')::date + 2
          AND (w.starts IS NULL OR p.local_day >= (w.starts AT TIME ZONE 'UTC')::date - 2)
          AND p.paid_at <= w.ends AND (w.starts IS NULL OR p.paid_at >= w.starts)
       ) o ON true
  LEFT JOIN LATERAL (
       SELECT sum(v.points) AS points
         FROM member_event v
        WHERE v.program_id = p_program_id AND v.member_id = w.member_id AND v.occurred_at <= w.ends
          AND (w.starts IS NULL OR v.occurred_at >= w.starts)
          AND NOT EXISTS (SELECT 1 FROM journal_entry x
                           WHERE x.program_id = p_program_id AND x.reverses_entry_id = v.entry_id)
       ) e ON true
  LEFT JOIN LATERAL (
       SELECT sum(v.referrer_points) AS points
         FROM member_event v
        WHERE v.program_id = p_program_id AND v.referrer_member_id = w.member_id
          AND v.occurred_at <= w.ends
          AND (w.starts IS NULL OR v.occurred_at >= w.starts)
          AND NOT EXISTS (SELECT 1 FROM journal_entry x
                           WHERE x.program_id = p_program_id AND x.reverses_entry_id = v.entry_id)
       ) r ON true
  LEFT JOIN LATERAL (
       SELECT count(*) AS referrals
         FROM member m
        CROSS JOIN LATERAL (
              SELECT min(p.paid_at) AS first_paid_at
                FROM paid_order p
               WHERE p.program_id = p_program_id AND p.member_id = m.id
                 AND (p.refunded_total < p.total OR p.total = 0)
              ) first
        WHERE p_referrals
          AND m.program_id = p_program_id AND m.referred_by_member_id = w.member_id
          AND first.first_paid_at <= w.ends
          AND (w.starts IS NULL OR first.first_paid_at >= w.starts)
       ) f ON true
 ORDER BY w.n
$$;
