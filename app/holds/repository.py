"""All SQL of holds. Points move through the ledger's service (ledger_post())."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from app.db import Connection

INSERT = """
INSERT INTO point_hold (id, program_id, member_id, points, order_id, created_at, expires_at)
SELECT $1, $2, m.id, $4, $5, $6, $7 FROM member m WHERE m.program_id = $2 AND m.external_id = $3
"""

# The hold, locked until the caller's transaction ends: capture, release and the
# worker's release of an expired hold all take this lock first, so one closes it.
LOCKED = """
SELECT h.id, h.program_id, h.points, h.captured_points, h.status, h.order_id, h.created_at,
       h.expires_at, h.closed_at, h.close_entry_id, m.external_id AS member
  FROM point_hold h JOIN member m ON m.program_id = h.program_id AND m.id = h.member_id
 WHERE h.program_id = $1 AND h.id = $2
   FOR UPDATE OF h
"""

FIND = """
SELECT h.id, h.program_id, h.points, h.captured_points, h.status, h.order_id, h.created_at,
       h.expires_at, h.closed_at, h.close_entry_id, m.external_id AS member
  FROM point_hold h JOIN member m ON m.program_id = h.program_id AND m.id = h.member_id
 WHERE h.program_id = $1 AND h.id = $2
"""

# A member's holds, newest first, optionally of one status.
MEMBER_HOLDS = """
SELECT h.id, h.program_id, h.points, h.captured_points, h.status, h.order_id, h.created_at,
       h.expires_at, h.closed_at, h.close_entry_id, m.external_id AS member
  FROM point_hold h JOIN member m ON m.program_id = h.program_id AND m.id = h.member_id
 WHERE h.program_id = $1 AND h.member_id = $2 AND ($3::text IS NULL OR h.status = $3)
   AND (h.created_at, h.id) < ($4, $5)
 ORDER BY h.created_at DESC, h.id DESC
 LIMIT $6
"""

CLOSE = """
UPDATE point_hold SET status = $3, captured_points = $4, closed_at = $5, close_entry_id = $6
 WHERE program_id = $1 AND id = $2 AND status = 'active'
"""

# Active holds past their expiry, oldest first; SKIP LOCKED lets a capture or
# release of one of them (or another worker) go on while this batch runs.
DUE = """
SELECT h.id, h.program_id, h.member_id, h.points, h.captured_points, h.status, h.order_id, h.created_at,
       h.expires_at, h.closed_at, h.close_entry_id, m.external_id AS member
  FROM point_hold h JOIN member m ON m.program_id = h.program_id AND m.id = h.member_id
 WHERE h.status = 'active' AND h.expires_at <= $1 AND ($2::bigint IS NULL OR h.program_id = $2)
 ORDER BY h.expires_at, h.id
 LIMIT $3
   FOR UPDATE OF h SKIP LOCKED
"""


async def insert(
    connection: Connection,
    *,
    hold_id: uuid.UUID,
    program_id: int,
    member: str,
    points: int,
    order_id: str | None,
    created_at: datetime,
    expires_at: datetime,
) -> None:
    await connection.execute(INSERT, hold_id, program_id, member, points, order_id, created_at, expires_at)


async def locked(connection: Connection, program_id: int, hold_id: uuid.UUID) -> asyncpg.Record | None:
    return await connection.fetchrow(LOCKED, program_id, hold_id)


async def find(connection: Connection, program_id: int, hold_id: uuid.UUID) -> asyncpg.Record | None:
    return await connection.fetchrow(FIND, program_id, hold_id)


async def close(
    connection: Connection,
    program_id: int,
    hold_id: uuid.UUID,
    *,
    status: str,
    captured_points: int,
    closed_at: datetime,
    entry_id: uuid.UUID,
) -> None:
    result = await connection.execute(
        CLOSE, program_id, hold_id, status, captured_points, closed_at, entry_id
    )
    if not result.endswith(" 1"):
        raise RuntimeError(f"hold {hold_id} was not active while locked")


async def due(
    connection: Connection, program_id: int | None, as_of: datetime, limit: int
) -> list[asyncpg.Record]:
    return await connection.fetch(DUE, as_of, program_id, limit)


async def member_holds(
    connection: Connection,
    program_id: int,
    member_id: int,
    *,
    status: str | None,
    before: tuple[datetime, uuid.UUID],
    limit: int,
) -> list[asyncpg.Record]:
    return await connection.fetch(MEMBER_HOLDS, program_id, member_id, status, before[0], before[1], limit)
