"""All SQL of approvals."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import asyncpg

from app.db import Connection

# A pending approval past its expires_at reads as expired: decided here, on read,
# so no job has to run for the answer to be right.
_COLUMNS = """
a.id, m.external_id AS member, a.points, a.request,
CASE WHEN a.status = 'pending' AND a.expires_at <= $2 THEN 'expired'
     WHEN a.status = 'pending' THEN 'pending_approval'
     ELSE a.status END AS status,
a.requested_by_key_id, a.idempotency_key, a.request_id, a.requested_at, a.expires_at,
a.decided_by_key_id, a.decided_at, a.decision_reason, a.entry_id
"""

MEMBER_ID = "SELECT id FROM member WHERE program_id = $1 AND external_id = $2"

INSERT = """
INSERT INTO award_approval (id, program_id, member_id, points, request, status, requested_by_key_id,
                            idempotency_key, request_id, requested_at, expires_at)
VALUES ($1, $2, $3, $4, $5::jsonb, 'pending', $6, $7, $8, $9, $10)
"""

# The 202 an award request that waits for approval answered, kept for its key like
# an entry's response (ledger_post() keeps those), so a retry replays it.
KEEP_RESPONSE = """
INSERT INTO idempotency_record (program_id, key, request_fingerprint, status_code, response_body, created_at)
VALUES ($1, $2, $3, 202, $4, $5)
ON CONFLICT DO NOTHING
"""

ONE = f"""
SELECT {_COLUMNS}, a.member_id
  FROM award_approval a JOIN member m ON m.program_id = a.program_id AND m.id = a.member_id
 WHERE a.program_id = $1 AND a.id = $3
"""

LOCKED = ONE + " FOR UPDATE OF a"

# $4: a status as the API names it (NULL: any); $5: the last id of the previous page.
PAGE = f"""
SELECT {_COLUMNS}
  FROM award_approval a JOIN member m ON m.program_id = a.program_id AND m.id = a.member_id
 WHERE a.program_id = $1
   AND a.id < $5
   AND CASE $4::text
         WHEN 'pending_approval' THEN a.status = 'pending' AND a.expires_at > $2
         WHEN 'expired' THEN a.status = 'pending' AND a.expires_at <= $2
         WHEN 'approved' THEN a.status = 'approved'
         WHEN 'rejected' THEN a.status = 'rejected'
         ELSE true END
 ORDER BY a.id DESC
 LIMIT $3
"""

DECIDE = """
UPDATE award_approval
   SET status = $3, decided_by_key_id = $4, decided_at = $5, decision_reason = $6, entry_id = $7
 WHERE program_id = $1 AND id = $2 AND status = 'pending'
"""


async def member_id(connection: Connection, program_id: int, member: str) -> int | None:
    value = await connection.fetchval(MEMBER_ID, program_id, member)
    return None if value is None else int(value)


async def insert(
    connection: Connection,
    *,
    approval_id: uuid.UUID,
    program_id: int,
    member_id: int,
    points: int,
    request: dict[str, Any],
    requested_by: uuid.UUID | None,
    idempotency_key: str,
    request_id: str | None,
    requested_at: datetime,
    expires_at: datetime,
) -> None:
    await connection.execute(
        INSERT,
        approval_id,
        program_id,
        member_id,
        points,
        json.dumps(request),
        requested_by,
        idempotency_key,
        request_id,
        requested_at,
        expires_at,
    )


async def keep_response(
    connection: Connection, program_id: int, key: str, fingerprint: str, body: bytes, now: datetime
) -> bool:
    """Keep the 202 for the key; False if the key is already taken."""
    status = await connection.execute(KEEP_RESPONSE, program_id, key, fingerprint, body, now)
    return bool(status.endswith(" 1"))


async def one(
    connection: Connection, program_id: int, approval_id: uuid.UUID, now: datetime, *, lock: bool = False
) -> asyncpg.Record | None:
    return await connection.fetchrow(LOCKED if lock else ONE, program_id, now, approval_id)


async def page(
    connection: Connection,
    program_id: int,
    now: datetime,
    *,
    status: str | None,
    before: uuid.UUID,
    limit: int,
) -> list[asyncpg.Record]:
    return await connection.fetch(PAGE, program_id, now, limit, status, before)


async def decide(
    connection: Connection,
    program_id: int,
    approval_id: uuid.UUID,
    *,
    status: str,
    decided_by: uuid.UUID | None,
    decided_at: datetime,
    reason: str,
    entry_id: uuid.UUID | None,
) -> None:
    result = await connection.execute(
        DECIDE, program_id, approval_id, status, decided_by, decided_at, reason, entry_id
    )
    if not result.endswith(" 1"):
        raise RuntimeError(f"approval {approval_id} was decided under its lock by someone else")
