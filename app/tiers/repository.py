"""All SQL of tiers. Decisions are written by tier_apply() (app/sql/functions/tier_apply.sql)."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import asyncpg

from app.db import Connection
from app.rules.tier_machine import TierDecision, TierState

# Qualifying activity of members in windows [start, end] (start NULL: since ever):
# orders not fully refunded, spend net of refunds, points earned by orders (net of
# what refunds took back) and by events, the member's own and as a referrer.
# Awards are not activity, nor are reversed events. local_day (the program's day,
# within two days of the UTC date anywhere) lets the (member_id, local_day) index
# narrow the orders.
ACTIVITY = """
SELECT w.n,
       coalesce(o.orders, 0)::bigint AS orders,
       coalesce(o.spend, 0)::numeric AS spend,
       (coalesce(o.points, 0) + coalesce(e.points, 0) + coalesce(r.points, 0))::bigint AS points
  FROM unnest($1::bigint[], $2::timestamptz[], $3::timestamptz[])
       WITH ORDINALITY AS w(member_id, starts, ends, n)
  LEFT JOIN LATERAL (
       SELECT count(*) FILTER (WHERE p.refunded_total < p.total OR p.total = 0) AS orders,
              sum(p.total - p.refunded_total) AS spend,
              sum(p.points - p.points_taken_back) AS points
         FROM paid_order p
        WHERE p.member_id = w.member_id
          AND p.local_day <= (w.ends AT TIME ZONE 'UTC')::date + 2
          AND (w.starts IS NULL OR p.local_day >= (w.starts AT TIME ZONE 'UTC')::date - 2)
          AND p.paid_at <= w.ends AND (w.starts IS NULL OR p.paid_at >= w.starts)
       ) o ON true
  LEFT JOIN LATERAL (
       SELECT sum(v.points) AS points
         FROM member_event v
        WHERE v.member_id = w.member_id AND v.occurred_at <= w.ends
          AND (w.starts IS NULL OR v.occurred_at >= w.starts)
          AND NOT EXISTS (SELECT 1 FROM journal_entry x WHERE x.reverses_entry_id = v.entry_id)
       ) e ON true
  LEFT JOIN LATERAL (
       SELECT sum(v.referrer_points) AS points
         FROM member_event v
        WHERE v.referrer_member_id = w.member_id AND v.occurred_at <= w.ends
          AND (w.starts IS NULL OR v.occurred_at >= w.starts)
          AND NOT EXISTS (SELECT 1 FROM journal_entry x WHERE x.reverses_entry_id = v.entry_id)
       ) r ON true
 ORDER BY w.n
"""

_STATE_COLUMNS = """
m.id AS member_id, m.external_id, t.tier_code, t.since, t.term_ends_at, t.grace_ends_at, t.override_until,
coalesce(t.pinned, false) AS pinned
"""

# One member, locked (every tier change holds the member's balance-row lock).
LOCKED_STATE = f"""
SELECT {_STATE_COLUMNS}
  FROM member m
  JOIN member_balance b ON b.member_id = m.id
  LEFT JOIN member_tier t ON t.member_id = m.id
 WHERE m.program_id = $1 AND m.external_id = $2
   FOR UPDATE OF b
"""

STATE = f"""
SELECT {_STATE_COLUMNS}
  FROM member m
  LEFT JOIN member_tier t ON t.member_id = m.id
 WHERE m.program_id = $1 AND m.external_id = $2
"""

STATE_BY_ID = f"""
SELECT {_STATE_COLUMNS}
  FROM member m
  LEFT JOIN member_tier t ON t.member_id = m.id
 WHERE m.id = $1
"""

STATES_BY_IDS = f"""
SELECT {_STATE_COLUMNS}
  FROM member m
  LEFT JOIN member_tier t ON t.member_id = m.id
 WHERE m.id = ANY ($1::bigint[])
"""

# The next batch of a program's members after a member id, in id order.
BATCH = f"""
SELECT {_STATE_COLUMNS}
  FROM member m
  LEFT JOIN member_tier t ON t.member_id = m.id
 WHERE m.program_id = $1 AND m.id > $2
 ORDER BY m.id
 LIMIT $3
"""

# Members about to change, locked in id order (the order ledger_post() locks
# members in) until the caller's transaction ends, with their state as it is now.
LOCKED_MEMBERS = f"""
SELECT {_STATE_COLUMNS}
  FROM member m
  JOIN member_balance b ON b.member_id = m.id
  LEFT JOIN member_tier t ON t.member_id = m.id
 WHERE m.id = ANY ($1::bigint[])
 ORDER BY m.id
   FOR UPDATE OF b
"""

# app/sql/functions/tier_apply.sql states the contract.
APPLY = """
SELECT tier_apply(p_program_id => $1, p_rules_version => $2, p_recorded_at => $3, p_decisions => $4::jsonb)
"""

HISTORY = """
SELECT id, from_tier, to_tier, reason, effective_at, recorded_at, term_ends_at, activity, rules_version,
       entry_id, note
  FROM tier_change
 WHERE member_id = $1 AND id < $2
 ORDER BY id DESC
 LIMIT $3
"""

COUNT_MEMBERS = "SELECT count(*) FROM member WHERE program_id = $1"

# The members evaluate-tiers must judge as of $2, in id order, each found through an
# index on member_tier rather than by reading every member: a term or an override
# that has ended, a tier in grace (qualifying again keeps it, whenever the job
# runs), and a tier written by a transaction from $3 on (an operator's override, a
# kept term, the job's own changes, an upgrade at checkout).
DUE_MEMBERS = """
SELECT coalesce(array_agg(member_id ORDER BY member_id), '{}') FROM (
    SELECT t.member_id FROM member_tier t WHERE t.program_id = $1 AND t.term_ends_at <= $2
    UNION
    SELECT t.member_id FROM member_tier t WHERE t.program_id = $1 AND t.override_until <= $2
    UNION
    SELECT t.member_id FROM member_tier t WHERE t.program_id = $1 AND t.grace_ends_at IS NOT NULL
    UNION
    SELECT t.member_id FROM member_tier t WHERE t.program_id = $1 AND t.txid >= $3
) due
"""


async def activity(
    connection: Connection, windows: list[tuple[int, datetime | None, datetime]]
) -> list[tuple[int, Decimal, int]]:
    """(orders, spend, points) for each (member id, start, end), in the same order."""
    if not windows:
        return []
    rows = await connection.fetch(
        ACTIVITY,
        [member for member, _, _ in windows],
        [start for _, start, _ in windows],
        [end for _, _, end in windows],
    )
    return [(row["orders"], row["spend"], row["points"]) for row in rows]


def state_of(row: asyncpg.Record) -> TierState:
    """The tier state in a row read with _STATE_COLUMNS (no tier: all None, not pinned)."""
    return TierState(
        row["tier_code"],
        row["since"],
        row["term_ends_at"],
        row["grace_ends_at"],
        row["override_until"],
        row["pinned"],
    )


async def state(
    connection: Connection, program_id: int, member: str, *, lock: bool = False
) -> asyncpg.Record | None:
    return await connection.fetchrow(LOCKED_STATE if lock else STATE, program_id, member)


async def state_by_id(connection: Connection, member_id: int) -> asyncpg.Record | None:
    return await connection.fetchrow(STATE_BY_ID, member_id)


async def batch(
    connection: Connection, program_id: int, after_member_id: int, limit: int
) -> list[asyncpg.Record]:
    return await connection.fetch(BATCH, program_id, after_member_id, limit)


async def locked_members(connection: Connection, member_ids: list[int]) -> list[asyncpg.Record]:
    return await connection.fetch(LOCKED_MEMBERS, member_ids)


async def apply(
    connection: Connection,
    program_id: int,
    rules_version: int,
    now: datetime,
    decisions: list[TierDecision],
) -> int:
    """Write the decisions (tier_apply()); history rows written."""
    if not decisions:
        return 0
    elements = json.dumps([found.as_json() for found in decisions])
    return int(await connection.fetchval(APPLY, program_id, rules_version, now, elements))


async def states_by_ids(connection: Connection, member_ids: list[int]) -> list[asyncpg.Record]:
    return await connection.fetch(STATES_BY_IDS, member_ids)


async def history(connection: Connection, member_id: int, before_id: int, limit: int) -> list[asyncpg.Record]:
    return await connection.fetch(HISTORY, member_id, before_id, limit)


async def count_members(connection: Connection, program_id: int) -> int:
    return int(await connection.fetchval(COUNT_MEMBERS, program_id))


async def due_members(connection: Connection, program_id: int, as_of: datetime, since_txid: int) -> list[int]:
    return list(await connection.fetchval(DUE_MEMBERS, program_id, as_of, since_txid))
