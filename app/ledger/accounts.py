"""Opening accounts: the ledger owns its tables, so members, programs, partners
and imports open theirs through here, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Connection
from app.ledger.entries import MEMBER_ACCOUNT_KINDS, PARTNER_ACCOUNT_KINDS, SYSTEM_ACCOUNT_KINDS
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


# Members' accounts and balance rows for a whole chunk of an import in one
# statement (thousands of members a round trip, as the chunk's members went in).
OPEN_MEMBERS_ACCOUNTS = """
WITH added AS (
    SELECT a.id FROM unnest($3::bigint[]) AS a(id)
), accounts AS (
    INSERT INTO account (program_id, member_id, kind)
    SELECT $1, a.id, k.kind FROM added a CROSS JOIN unnest($4::text[]) AS k(kind)
)
INSERT INTO member_balance (program_id, member_id, updated_at)
SELECT $1, a.id, $2 FROM added a
"""


async def open_imported_member_accounts(
    connection: Connection, program_id: int, member_ids: Sequence[int], now: datetime
) -> None:
    """New members' accounts (available, pending, held, debt) and balance rows,
    many at once (app/imports: a chunk of members just written)."""
    if member_ids:
        await connection.execute(
            OPEN_MEMBERS_ACCOUNTS, program_id, now, list(member_ids), list(MEMBER_ACCOUNT_KINDS)
        )


async def open_partner_accounts(connection: Connection, program_id: int, partner_id: int) -> None:
    """A new partner's two accounts (partner_funding, partner_payable)."""
    await connection.execute(
        "INSERT INTO account (program_id, partner_id, kind)"
        " SELECT $1, $2, kind FROM unnest($3::text[]) AS kind",
        program_id,
        partner_id,
        list(PARTNER_ACCOUNT_KINDS),
    )


async def open_migration_account(connection: Connection, program_id: int) -> None:
    """The program's `migration` account, where imported points come from
    (programs made before imports lack it; it is opened with newer ones)."""
    await connection.execute(
        "INSERT INTO account (program_id, kind) VALUES ($1, 'migration')"
        " ON CONFLICT (program_id, kind, partner_id) WHERE member_id IS NULL DO NOTHING",
        program_id,
    )
