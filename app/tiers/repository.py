"""All SQL of tiers. Decisions are written by tier_apply() (app/sql/functions/tier_apply.sql)."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import asyncpg

from app.db import Connection
from app.rules.tier_machine import TierDecision, TierState

# Qualifying activity of members in windows (app/sql/functions/tier_activity.sql).
ACTIVITY = """
SELECT n, orders, spend, points, referrals
  FROM tier_activity(p_program_id => $1, p_members => $2, p_starts => $3, p_ends => $4, p_referrals => $5)
 ORDER BY n
"""

_STATE_COLUMNS = """
m.id AS member_id, m.external_id, t.tier_code, t.since, t.term_ends_at, t.grace_ends_at, t.override_until,
coalesce(t.pinned, false) AS pinned
"""

# One member, locked (every tier change holds the member's balance-row lock).
LOCKED_STATE = f"""
SELECT {_STATE_COLUMNS}
  FROM member m
  JOIN member_balance b ON b.program_id = m.program_id AND b.member_id = m.id
  LEFT JOIN member_tier t ON t.program_id = m.program_id AND t.member_id = m.id
 WHERE m.program_id = $1 AND m.external_id = $2
   FOR UPDATE OF b
"""

STATE = f"""
SELECT {_STATE_COLUMNS}
  FROM member m
  LEFT JOIN member_tier t ON t.program_id = m.program_id AND t.member_id = m.id
 WHERE m.program_id = $1 AND m.external_id = $2
"""

STATE_BY_ID = f"""
SELECT {_STATE_COLUMNS}
  FROM member m
  LEFT JOIN member_tier t ON t.program_id = m.program_id AND t.member_id = m.id
 WHERE m.program_id = $1 AND m.id = $2
"""

STATES_BY_IDS = f"""
SELECT {_STATE_COLUMNS}
  FROM member m
  LEFT JOIN member_tier t ON t.program_id = m.program_id AND t.member_id = m.id
 WHERE m.program_id = $1 AND m.id = ANY ($2::bigint[])
"""

# The next batch of a program's members after a member id, in id order.
BATCH = f"""
SELECT {_STATE_COLUMNS}
  FROM member m
  LEFT JOIN member_tier t ON t.program_id = m.program_id AND t.member_id = m.id
 WHERE m.program_id = $1 AND m.id > $2
 ORDER BY m.id
 LIMIT $3
"""

# Members about to change, locked in id order (the order ledger_post() locks
# members in) until the caller's transaction ends, with their state as it is now.
LOCKED_MEMBERS = f"""
SELECT {_STATE_COLUMNS}
  FROM member m
  JOIN member_balance b ON b.program_id = m.program_id AND b.member_id = m.id
  LEFT JOIN member_tier t ON t.program_id = m.program_id AND t.member_id = m.id
 WHERE m.program_id = $1 AND m.id = ANY ($2::bigint[])
 ORDER BY m.id
   FOR UPDATE OF b
"""

# The member who referred $2, locked, if $2's orders paid before $3 are all fully
# refunded (so the order at $3 is $2's first: a referral for them); no row, and no
# lock, otherwise. Their tier is read by the next statement: this one's snapshot
# predates the lock wait, and a concurrent referral may have just changed it.
LOCKED_REFERRER_IF_FIRST_ORDER = """
SELECT m.id AS member_id
  FROM member f
  JOIN member m ON m.program_id = f.program_id AND m.id = f.referred_by_member_id
  JOIN member_balance b ON b.program_id = m.program_id AND b.member_id = m.id
 WHERE f.program_id = $1 AND f.id = $2
   AND NOT EXISTS (SELECT 1 FROM paid_order p
                    WHERE p.program_id = $1 AND p.member_id = $2 AND p.paid_at < $3
                      AND (p.refunded_total < p.total OR p.total = 0))
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
 WHERE program_id = $1 AND member_id = $2 AND id < $3
 ORDER BY id DESC
 LIMIT $4
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
    connection: Connection,
    program_id: int,
    windows: list[tuple[int, datetime | None, datetime]],
    *,
    referrals: bool = False,
) -> list[tuple[int, Decimal, int, int]]:
    """(orders, spend, points, referrals) for each (member id, start, end) of the
    program's members, in the same order; referrals are counted only when asked
    (rules whose tiers name them), 0 otherwise."""
    if not windows:
        return []
    rows = await connection.fetch(
        ACTIVITY,
        program_id,
        [member for member, _, _ in windows],
        [start for _, start, _ in windows],
        [end for _, _, end in windows],
        referrals,
    )
    return [(row["orders"], row["spend"], row["points"], row["referrals"]) for row in rows]


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


async def locked_referrer_if_first_order(
    connection: Connection, program_id: int, member_id: int, paid_at: datetime
) -> int | None:
    found = await connection.fetchval(LOCKED_REFERRER_IF_FIRST_ORDER, program_id, member_id, paid_at)
    return None if found is None else int(found)


async def member_status(connection: Connection, program_id: int, member_id: int) -> str:
    """The member's status; read after LOCKED_STATE, in a statement of its own, it is
    the status as the balance-row lock's last holder left it."""
    return str(
        await connection.fetchval(
            "SELECT status FROM member WHERE program_id = $1 AND id = $2", program_id, member_id
        )
    )


async def state_by_id(connection: Connection, program_id: int, member_id: int) -> asyncpg.Record | None:
    return await connection.fetchrow(STATE_BY_ID, program_id, member_id)


async def batch(
    connection: Connection, program_id: int, after_member_id: int, limit: int
) -> list[asyncpg.Record]:
    return await connection.fetch(BATCH, program_id, after_member_id, limit)


async def locked_members(
    connection: Connection, program_id: int, member_ids: list[int]
) -> list[asyncpg.Record]:
    return await connection.fetch(LOCKED_MEMBERS, program_id, member_ids)


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


async def states_by_ids(
    connection: Connection, program_id: int, member_ids: list[int]
) -> list[asyncpg.Record]:
    return await connection.fetch(STATES_BY_IDS, program_id, member_ids)


async def history(
    connection: Connection, program_id: int, member_id: int, before_id: int, limit: int
) -> list[asyncpg.Record]:
    return await connection.fetch(HISTORY, program_id, member_id, before_id, limit)


async def count_members(connection: Connection, program_id: int) -> int:
    return int(await connection.fetchval(COUNT_MEMBERS, program_id))


async def due_members(connection: Connection, program_id: int, as_of: datetime, since_txid: int) -> list[int]:
    return list(await connection.fetchval(DUE_MEMBERS, program_id, as_of, since_txid))
