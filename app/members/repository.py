"""All SQL about members."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Connection
from app.members.models import Member

# A member with balances, as the member view and lists show it.
_SUMMARY = """
SELECT m.id, m.program_id, m.external_id, m.status, m.status_until, m.enrolled_at, m.birthday,
       r.external_id AS referred_by, m.metadata, b.available, b.pending, b.held, b.debt
  FROM member m
  JOIN member_balance b ON b.program_id = m.program_id AND b.member_id = m.id
  LEFT JOIN member r ON r.program_id = m.program_id AND r.id = m.referred_by_member_id
  LEFT JOIN member_tier t ON t.program_id = m.program_id AND t.member_id = m.id
"""

MEMBER_VIEW = _SUMMARY + " WHERE m.program_id = $1 AND m.external_id = $2\n"


async def member_id(session: AsyncSession, program_id: int, external_id: str) -> int | None:
    found = await session.scalar(
        select(Member.id).where(Member.program_id == program_id, Member.external_id == external_id)
    )
    return None if found is None else int(found)


async def insert_member(
    session: AsyncSession,
    *,
    program_id: int,
    external_id: str,
    birthday: date | None,
    enrolled_at: datetime,
    referred_by_member_id: int | None,
    metadata: dict[str, Any],
    now: datetime,
) -> int:
    """The member row, in the caller's transaction (the ledger opens its accounts)."""
    new_id = await session.scalar(
        insert(Member)
        .values(
            program_id=program_id,
            external_id=external_id,
            birthday=birthday,
            enrolled_at=enrolled_at,
            referred_by_member_id=referred_by_member_id,
            metadata_=metadata,
            created_at=now,
        )
        .returning(Member.id)
    )
    assert new_id is not None
    return int(new_id)


# A page of a program's members, newest enrolment first (ties by id), filtered.
MEMBER_PAGE = (
    _SUMMARY
    + """
 WHERE m.program_id = $1
   AND ($2::text IS NULL OR m.external_id LIKE $2 || '%' ESCAPE '\\')
   AND ($3::text IS NULL OR t.tier_code = $3)
   AND ($4::text IS NULL OR m.status = $4)
   AND (m.enrolled_at, m.id) < ($5, $6)
 ORDER BY m.enrolled_at DESC, m.id DESC
 LIMIT $7
"""
)


async def member_page(
    connection: Connection,
    program_id: int,
    *,
    prefix: str | None,
    tier: str | None,
    status: str | None,
    before: tuple[datetime, int],
    limit: int,
) -> list[asyncpg.Record]:
    escaped = None if prefix is None else prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return await connection.fetch(MEMBER_PAGE, program_id, escaped, tier, status, before[0], before[1], limit)


async def locked_member(session: AsyncSession, program_id: int, external_id: str) -> Member | None:
    """The member row, locked until the caller's transaction ends (patches queue)."""
    found = await session.scalar(
        select(Member)
        .where(Member.program_id == program_id, Member.external_id == external_id)
        .with_for_update()
    )
    return found


async def member_view(connection: Connection, program_id: int, external_id: str) -> asyncpg.Record | None:
    return await connection.fetchrow(MEMBER_VIEW, program_id, external_id)


# --- status and closing -------------------------------------------------------------
# A status change takes the member's balance row first, as every posting does
# (ledger_post()), and moves its version on: an order whose facts were read before
# the change finds its version stale and reads them again (ledger_post_order()).
# The status is then read in a statement of its own, after the lock: it is the
# status as the lock's last holder committed it.
LOCK_FOR_STATUS = """
UPDATE member_balance b SET version = b.version + 1
  FROM member m
 WHERE m.program_id = $1 AND m.external_id = $2
   AND b.program_id = m.program_id AND b.member_id = m.id
RETURNING m.id AS member_id, b.available, b.pending, b.held
"""

MEMBER_STATUS = """
SELECT status, status_until FROM member WHERE program_id = $1 AND id = $2
"""

SET_STATUS = """
UPDATE member SET status = $3, status_until = $4 WHERE program_id = $1 AND id = $2
"""

INSERT_STATUS_CHANGE = """
INSERT INTO member_status_change (program_id, member_id, status, previous_status, reason, until,
                                  actor_key_id, changed_at, entry_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING id
"""

# A member's status history, newest first, from before the cursor's change id.
STATUS_HISTORY = """
SELECT c.id, c.status, c.previous_status, c.reason, c.until, c.actor_key_id, c.changed_at, c.entry_id
  FROM member_status_change c
 WHERE c.program_id = $1 AND c.member_id = $2 AND c.id < $3
 ORDER BY c.id DESC
 LIMIT $4
"""

# Members whose status lifts by `as_of` (ix_member_status_until), in id order.
DUE_LIFTS = """
SELECT m.program_id, m.id, m.external_id
  FROM member m
 WHERE m.status_until <= $1 AND ($2::bigint IS NULL OR m.program_id = $2)
 ORDER BY m.id
 LIMIT $3
"""

LOCK_BALANCE = """
UPDATE member_balance b SET version = b.version + 1
 WHERE b.program_id = $1 AND b.member_id = $2
"""


@dataclass(frozen=True, slots=True)
class LockedMember:
    member_id: int
    status: str
    status_until: datetime | None
    available: int
    pending: int
    held: int


async def lock_for_status(connection: Connection, program_id: int, external_id: str) -> LockedMember | None:
    """Lock the member's balance row (moving its version on) and read its status
    after the lock; None if the program has no such member."""
    row = await connection.fetchrow(LOCK_FOR_STATUS, program_id, external_id)
    if row is None:
        return None
    status = await connection.fetchrow(MEMBER_STATUS, program_id, row["member_id"])
    assert status is not None
    return LockedMember(
        row["member_id"],
        status["status"],
        status["status_until"],
        row["available"],
        row["pending"],
        row["held"],
    )


async def lock_by_id(connection: Connection, program_id: int, member_id: int) -> tuple[str, datetime | None]:
    """The same by internal id: the member's status and until, read after the lock."""
    await connection.execute(LOCK_BALANCE, program_id, member_id)
    status = await connection.fetchrow(MEMBER_STATUS, program_id, member_id)
    assert status is not None
    return status["status"], status["status_until"]


async def set_status(
    connection: Connection, program_id: int, member_id: int, status: str, until: datetime | None
) -> None:
    await connection.execute(SET_STATUS, program_id, member_id, status, until)


async def insert_status_change(
    connection: Connection,
    *,
    program_id: int,
    member_id: int,
    status: str,
    previous_status: str,
    reason: str,
    until: datetime | None,
    actor_key_id: uuid.UUID | None,
    changed_at: datetime,
    entry_id: uuid.UUID | None = None,
) -> int:
    change_id = await connection.fetchval(
        INSERT_STATUS_CHANGE,
        program_id,
        member_id,
        status,
        previous_status,
        reason,
        until,
        actor_key_id,
        changed_at,
        entry_id,
    )
    return int(change_id)


async def status_history(
    connection: Connection, program_id: int, member_id: int, *, before_id: int, limit: int
) -> list[asyncpg.Record]:
    return await connection.fetch(STATUS_HISTORY, program_id, member_id, before_id, limit)


async def due_lifts(
    connection: Connection, program_id: int | None, as_of: datetime, limit: int
) -> list[asyncpg.Record]:
    return await connection.fetch(DUE_LIFTS, as_of, program_id, limit)


async def member_id_of(connection: Connection, program_id: int, external_id: str) -> int | None:
    value = await connection.fetchval(
        "SELECT id FROM member WHERE program_id = $1 AND external_id = $2", program_id, external_id
    )
    return None if value is None else int(value)
