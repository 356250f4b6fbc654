"""All SQL about rules versions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.rulesets.models import RulesActivation, RulesVersion

# Versions of one program are numbered in order: creating or activating one first
# takes the program row (FOR NO KEY UPDATE, which does not block the foreign-key
# checks of members and keys being inserted meanwhile).
LOCK_PROGRAM = text("SELECT id FROM program WHERE id = :program_id FOR NO KEY UPDATE")


async def active(session: AsyncSession, program_id: int) -> RulesVersion | None:
    return await session.scalar(
        select(RulesVersion).where(RulesVersion.program_id == program_id, RulesVersion.active)
    )


async def versions(
    session: AsyncSession, program_id: int, *, before: int | None, limit: int
) -> list[RulesVersion]:
    """The program's versions (below `before`, if given), newest first."""
    query = select(RulesVersion).where(RulesVersion.program_id == program_id)
    if before is not None:
        query = query.where(RulesVersion.version < before)
    found = await session.scalars(query.order_by(RulesVersion.version.desc()).limit(limit))
    return list(found)


async def get(session: AsyncSession, program_id: int, version: int) -> RulesVersion | None:
    return await session.get(RulesVersion, (program_id, version))


async def insert_version(
    session: AsyncSession,
    *,
    program_id: int,
    document: dict[str, Any],
    now: datetime,
    actor_key_id: uuid.UUID | None,
    active: bool = False,
) -> RulesVersion:
    await session.execute(LOCK_PROGRAM, {"program_id": program_id})
    latest = await session.scalar(
        select(func.max(RulesVersion.version)).where(RulesVersion.program_id == program_id)
    )
    row = RulesVersion(
        program_id=program_id,
        version=(latest or 0) + 1,
        document=document,
        created_at=now,
        created_by_key_id=actor_key_id,
        active=active,
        activated_at=now if active else None,
    )
    session.add(row)
    await session.flush()
    if active:
        await _log_activation(session, program_id, row.version, now, actor_key_id)
    return row


async def activate(
    session: AsyncSession, program_id: int, version: int, now: datetime, actor_key_id: uuid.UUID | None
) -> RulesVersion | None:
    """Make `version` the active one; None if the program has no such version."""
    await session.execute(LOCK_PROGRAM, {"program_id": program_id})
    row = await get(session, program_id, version)
    if row is None:
        return None
    if row.active:
        return row
    await session.execute(
        update(RulesVersion)
        .where(RulesVersion.program_id == program_id, RulesVersion.active)
        .values(active=False)
    )
    row.active = True
    row.activated_at = now
    await session.flush()
    await _log_activation(session, program_id, version, now, actor_key_id)
    return row


async def _log_activation(
    session: AsyncSession, program_id: int, version: int, now: datetime, actor_key_id: uuid.UUID | None
) -> None:
    await session.execute(
        insert(RulesActivation).values(
            program_id=program_id, version=version, activated_at=now, actor_key_id=actor_key_id
        )
    )
