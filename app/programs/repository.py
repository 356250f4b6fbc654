"""All SQL about programs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.programs.models import Program


async def insert_program(
    session: AsyncSession, *, code: str, name: str, point_name: str, now: datetime
) -> int:
    """The program row (the ledger opens its accounts)."""
    program_id = await session.scalar(
        insert(Program)
        .values(code=code, name=name, point_name=point_name, created_at=now)
        .returning(Program.id)
    )
    assert program_id is not None
    return int(program_id)


async def program_id(session: AsyncSession, code: str) -> int | None:
    found = await session.scalar(select(Program.id).where(Program.code == code))
    return None if found is None else int(found)


async def program_ids(session: AsyncSession) -> list[int]:
    return [int(value) for value in await session.scalars(select(Program.id).order_by(Program.id))]
