"""All SQL about campaign budgets (the functions they call state their contracts in
app/sql/functions/rules_budget_*.sql)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Connection

SET_LIMITS = text("SELECT rules_budget_set(p_program_id => :program_id, p_limits => :limits, p_now => :now)")

GIVE_BACK = "SELECT rules_budget_give_back(p_program_id => $1, p_member_id => $2, p_returns => $3::jsonb)"

# The program's budgets after the name $2 (by name), with what is left of each (the sum
# of its slices; below zero when a version lowered the limit under what was used).
BUDGETS = """
SELECT b.key, b.points, b.per_member, b.created_at, b.updated_at,
       (SELECT sum(s.remaining)::bigint FROM rules_budget_slice s
         WHERE s.program_id = b.program_id AND s.budget_id = b.id) AS left_over
  FROM rules_budget b
 WHERE b.program_id = $1 AND b.key > $2
 ORDER BY b.key
 LIMIT $3
"""

# What is left of some budgets, and of the member's share of each (read without
# locks: a preview's estimate).
ROOM = """
SELECT b.key, b.per_member,
       (SELECT sum(s.remaining)::bigint FROM rules_budget_slice s
         WHERE s.program_id = b.program_id AND s.budget_id = b.id) AS left_over,
       (SELECT m.used FROM rules_budget_member m
         WHERE m.program_id = b.program_id AND m.budget_id = b.id AND m.member_id = $3) AS member_used
  FROM rules_budget b
 WHERE b.program_id = $1 AND b.key = ANY($2::text[])
"""


async def set_limits(
    session: AsyncSession, program_id: int, limits: Sequence[dict[str, Any]], now: datetime
) -> None:
    await session.execute(
        SET_LIMITS, {"program_id": program_id, "limits": json.dumps(list(limits)), "now": now}
    )


async def give_back(
    connection: Connection, program_id: int, member_id: int, returns: Sequence[dict[str, Any]]
) -> None:
    await connection.execute(GIVE_BACK, program_id, member_id, json.dumps(list(returns)))


async def budgets(connection: Connection, program_id: int, *, after: str, limit: int) -> list[asyncpg.Record]:
    return await connection.fetch(BUDGETS, program_id, after, limit)


async def room(
    connection: Connection, program_id: int, keys: Sequence[str], member_id: int
) -> list[asyncpg.Record]:
    return await connection.fetch(ROOM, program_id, list(keys), member_id)
