"""Opening accounts: the ledger owns its tables, so members and programs open
theirs through here, in the caller's transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.ledger.entries import MEMBER_ACCOUNT_KINDS, SYSTEM_ACCOUNT_KINDS
from app.ledger.models import Account, MemberBalance


async def open_member_accounts(session: AsyncSession, program_id: int, member_id: int, now: datetime) -> None:
    """A new member's accounts (available, pending, held, debt) and their balance row."""
    await session.execute(
        insert(Account),
        [{"program_id": program_id, "member_id": member_id, "kind": kind} for kind in MEMBER_ACCOUNT_KINDS],
    )
    await session.execute(
        insert(MemberBalance).values(program_id=program_id, member_id=member_id, updated_at=now)
    )


async def open_program_accounts(session: AsyncSession, program_id: int) -> None:
    """A new program's system accounts (issuance, redemption, expiry)."""
    await session.execute(
        insert(Account), [{"program_id": program_id, "kind": kind} for kind in SYSTEM_ACCOUNT_KINDS]
    )
