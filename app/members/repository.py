"""All SQL about members."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import asyncpg
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Connection
from app.members.models import Member

# A member with balances, as the member view and lists show it.
_SUMMARY = """
SELECT m.id, m.program_id, m.external_id, m.status, m.enrolled_at, m.birthday, r.external_id AS referred_by,
       m.metadata, b.available, b.pending, b.held, b.debt
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
