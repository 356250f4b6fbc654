"""All SQL about members."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import asyncpg
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Connection
from app.members.models import Member

MEMBER_VIEW = """
SELECT m.id, m.program_id, m.external_id, m.status, m.enrolled_at, m.birthday, r.external_id AS referred_by,
       m.metadata, b.available, b.pending, b.held, b.debt
  FROM member m
  JOIN member_balance b ON b.member_id = m.id
  LEFT JOIN member r ON r.id = m.referred_by_member_id
 WHERE m.program_id = $1 AND m.external_id = $2
"""


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


async def member_view(connection: Connection, program_id: int, external_id: str) -> asyncpg.Record | None:
    return await connection.fetchrow(MEMBER_VIEW, program_id, external_id)
