"""All SQL about programs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.ledger.entries import SYSTEM_ACCOUNT_KINDS
from app.ledger.models import Account
from app.programs.models import Program


async def insert_program(
    session: AsyncSession, *, code: str, name: str, point_name: str, now: datetime
) -> int:
    """The program and its system accounts."""
    program_id = await session.scalar(
        insert(Program)
        .values(code=code, name=name, point_name=point_name, created_at=now)
        .returning(Program.id)
    )
    assert program_id is not None
    program_id = int(program_id)
    await session.execute(
        insert(Account), [{"program_id": program_id, "kind": kind} for kind in SYSTEM_ACCOUNT_KINDS]
    )
    return program_id


async def program_id(session: AsyncSession, code: str) -> int | None:
    found = await session.scalar(select(Program.id).where(Program.code == code))
    return None if found is None else int(found)


async def program_ids(session: AsyncSession) -> list[int]:
    return [int(value) for value in await session.scalars(select(Program.id).order_by(Program.id))]
