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
SELECT n, orders, spend, points
  FROM tier_activity(p_program_id => $1, p_members => $2, p_starts => $3, p_ends => $4)
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
    connection: Connection, program_id: int, windows: list[tuple[int, datetime | None, datetime]]
) -> list[tuple[int, Decimal, int]]:
    """(orders, spend, points) for each (member id, start, end) of the program's
    members, in the same order."""
    if not windows:
        return []
    rows = await connection.fetch(
        ACTIVITY,
        program_id,
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
