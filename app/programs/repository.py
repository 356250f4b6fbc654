"""All SQL about programs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Connection
from app.programs.models import Program, ProgramSecret


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


# The program's secret of that name, made at the first call that may create it
# (concurrent first calls agree: the row that won the insert is the one read).
SECRET = "SELECT value FROM program_secret WHERE program_id = $1 AND name = $2"
MAKE_SECRET = """
INSERT INTO program_secret (program_id, name, value, created_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (program_id, name) DO NOTHING
"""


async def secret(connection: Connection, program_id: int, name: str) -> bytes | None:
    value = await connection.fetchval(SECRET, program_id, name)
    return None if value is None else bytes(value)


async def make_secret(
    connection: Connection, program_id: int, name: str, value: bytes, now: datetime
) -> bytes:
    await connection.execute(MAKE_SECRET, program_id, name, value, now)
    found = await secret(connection, program_id, name)
    assert found is not None
    return found


async def secret_in_session(session: AsyncSession, program_id: int, name: str) -> bytes | None:
    value = await session.scalar(
        select(ProgramSecret.value).where(ProgramSecret.program_id == program_id, ProgramSecret.name == name)
    )
    return None if value is None else bytes(value)
