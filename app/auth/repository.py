"""All SQL about API keys."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, literal, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import ApiKey, ApiKeyLookup

# Looked up on every request (unless cached), straight through asyncpg (see
# app/db.py). The program is not known yet: the global api_key_lookup names it,
# then the key is read with its program's other rows.
PRINCIPAL_BY_HASH = """
SELECT k.id, k.program_id, p.code AS program_code, k.scopes, k.partner_code,
       pa.id AS partner_id, pa.status AS partner_status, pa.roles AS partner_roles,
       pa.billing AS partner_billing
  FROM api_key_lookup l
  JOIN api_key k ON k.program_id = l.program_id AND k.key_hash = l.key_hash
  JOIN program p ON p.id = k.program_id
  LEFT JOIN partner pa ON pa.program_id = k.program_id AND pa.code = k.partner_code
 WHERE l.key_hash = $1 AND k.revoked_at IS NULL
"""

PROGRAM_ID_BY_CODE = "SELECT id FROM program WHERE code = $1"


async def insert_key(
    session: AsyncSession,
    *,
    program_id: int,
    name: str,
    key_prefix: str,
    key_hash: str,
    scopes: list[str],
    partner_code: str | None,
    created_at: datetime,
) -> ApiKey:
    # the digest's program first: the key references it
    session.add(ApiKeyLookup(key_hash=key_hash, program_id=program_id))
    await session.flush()
    row = ApiKey(
        id=uuid.uuid4(),
        program_id=program_id,
        name=name,
        key_prefix=key_prefix,
        key_hash=key_hash,
        scopes=scopes,
        partner_code=partner_code,
        created_at=created_at,
    )
    session.add(row)
    await session.flush()
    return row


async def list_keys(
    session: AsyncSession, program_id: int, *, limit: int, before: tuple[datetime, uuid.UUID] | None
) -> list[ApiKey]:
    query = select(ApiKey).where(ApiKey.program_id == program_id)
    if before is not None:
        query = query.where(
            tuple_(ApiKey.created_at, ApiKey.id) < tuple_(literal(before[0]), literal(before[1]))
        )
    query = query.order_by(ApiKey.created_at.desc(), ApiKey.id.desc()).limit(limit)
    return list((await session.scalars(query)).all())


async def revoke_key(session: AsyncSession, program_id: int, key_id: uuid.UUID, at: datetime) -> bool:
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.program_id == program_id, ApiKey.id == key_id)
        .values(revoked_at=func.coalesce(ApiKey.revoked_at, at))
        .returning(ApiKey.id)
    )
    return result.first() is not None


async def program_of_key(session: AsyncSession, key_id: uuid.UUID) -> int | None:
    # By id alone, without the program that leads the key: a scan of a small table,
    # for the command line only (`points-ledger api-key revoke`), never a request.
    found = await session.scalar(select(ApiKey.program_id).where(ApiKey.id == key_id))
    return None if found is None else int(found)
