"""All SQL about member events."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from typing import Any

import asyncpg

from app.db import Connection

# The member's balance row is locked until the transaction ends, so two events of one
# member are counted against the day's limit one after the other. The lock is taken
# in a statement of its own, before the facts are read: the statuses read are then
# the ones the lock's last holder left (a status change takes the same lock).
LOCK_MEMBER = """
SELECT 1 FROM member_balance b
  JOIN member m ON m.program_id = b.program_id AND m.id = b.member_id
 WHERE m.program_id = $1 AND m.external_id = $2
   FOR UPDATE OF b
"""
EVENT_FACTS = """
SELECT m.id AS member_id, m.status, m.referred_by_member_id, r.external_id AS referrer,
       r.status AS referrer_status, b.debt, v.version AS rules_version
  FROM member m
  JOIN member_balance b ON b.program_id = m.program_id AND b.member_id = m.id
  JOIN rules_version v ON v.program_id = m.program_id AND v.active
  LEFT JOIN member r ON r.program_id = m.program_id AND r.id = m.referred_by_member_id
 WHERE m.program_id = $1 AND m.external_id = $2
"""

# A reversed event no longer counts (its points were taken back).
COUNTS = """
SELECT count(*) FILTER (WHERE v.local_day = $4) AS today,
       count(*) AS ever
  FROM member_event v
 WHERE v.program_id = $1 AND v.member_id = $2 AND v.type = $3
   AND NOT EXISTS (SELECT 1 FROM journal_entry r
                    WHERE r.program_id = v.program_id AND r.reverses_entry_id = v.entry_id)
"""

INSERT_EVENT = """
INSERT INTO member_event (program_id, member_id, type, occurred_at, recorded_at, local_day, entry_id, points,
                          referrer_member_id, referrer_points, attributes)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb)
"""


async def locked_facts(connection: Connection, program_id: int, member: str) -> asyncpg.Record | None:
    await connection.execute(LOCK_MEMBER, program_id, member)
    return await connection.fetchrow(EVENT_FACTS, program_id, member)


async def counts(
    connection: Connection, program_id: int, member_id: int, event_type: str, day: date
) -> tuple[int, int]:
    row = await connection.fetchrow(COUNTS, program_id, member_id, event_type, day)
    assert row is not None
    return int(row["today"]), int(row["ever"])


async def insert_event(
    connection: Connection,
    *,
    program_id: int,
    member_id: int,
    event_type: str,
    occurred_at: datetime,
    recorded_at: datetime,
    local_day: date,
    entry_id: uuid.UUID,
    points: int,
    referrer_member_id: int | None,
    referrer_points: int,
    attributes: dict[str, Any],
) -> None:
    await connection.execute(
        INSERT_EVENT,
        program_id,
        member_id,
        event_type,
        occurred_at,
        recorded_at,
        local_day,
        entry_id,
        points,
        referrer_member_id,
        referrer_points,
        json.dumps(attributes),
    )
