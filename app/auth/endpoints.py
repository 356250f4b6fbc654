from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Path
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import service
from app.auth.models import ApiKey
from app.auth.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut, ApiKeyPage
from app.context import Context, require
from app.errors import Forbidden, error_responses
from app.http import api_router
from app.pagination import Cursor, Limit
from app.principal import Principal

router = api_router(prefix="/v1/api-keys", tags=["api keys"])
Admin = Annotated[Principal, Depends(require("admin"))]


def _out(row: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=row.id,
        name=row.name,
        prefix=row.key_prefix,
        scopes=row.scopes,
        partner=row.partner_code,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


@router.post(
    "",
    status_code=201,
    response_model=ApiKeyCreated,
    operation_id="createApiKey",
    responses=error_responses(Forbidden, service.PartnerNotFound),
)
async def create_api_key(body: ApiKeyCreate, context: Context, principal: Admin) -> ApiKeyCreated:
    """Create an API key of the caller's program. The key is in this response only;
    the service keeps its SHA-256 digest. With `partner`, the key is that partner's:
    it holds only `partner:earn`, `partner:redeem` and `partner:convert` scopes and
    calls only the `/v1/partner/` endpoints, for its partner (404
    `partner_not_found` for a code the program has no partner with)."""
    now = context.clock.now()

    async def work(session: AsyncSession) -> tuple[ApiKey, str]:
        return await service.create_key(
            session,
            program_id=principal.program_id,
            name=body.name,
            scopes=list(body.scopes),
            partner_code=body.partner,
            now=now,
        )

    row, key = await context.db.run(work)
    return ApiKeyCreated(**_out(row).model_dump(), key=key)


@router.get("", response_model=ApiKeyPage, operation_id="listApiKeys", responses=error_responses(Forbidden))
async def list_api_keys(
    context: Context, principal: Admin, limit: Limit = 50, cursor: Cursor = None
) -> ApiKeyPage:
    """The program's keys, newest first, revoked ones included. Secrets are never shown."""
    list_id = f"api-keys:{principal.program_id}"
    before = None
    if cursor is not None:
        created, key_id = context.cursors.read(list_id, cursor)
        before = (datetime.fromisoformat(created), uuid.UUID(key_id))

    async def work(session: AsyncSession) -> list[ApiKey]:
        return await service.list_keys(session, principal.program_id, limit=limit + 1, before=before)

    rows = await context.db.run(work)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = (
        context.cursors.issue(list_id, rows[-1].created_at.isoformat(), str(rows[-1].id)) if more else None
    )
    return ApiKeyPage(items=[_out(row) for row in rows], next_cursor=next_cursor)


@router.delete(
    "/{key_id}",
    status_code=204,
    operation_id="revokeApiKey",
    responses=error_responses(Forbidden, service.ApiKeyNotFound),
)
async def revoke_api_key(
    key_id: Annotated[
        uuid.UUID,
        Path(description="id of the key to revoke", examples=["0193b1a2-7c1e-7d2a-9a4f-5a1e2f3b4c5d"]),
    ],
    context: Context,
    principal: Admin,
) -> Response:
    """Revoke a key at once: its next request is 401."""
    now = context.clock.now()

    async def work(session: AsyncSession) -> None:
        await service.revoke_key(session, principal.program_id, key_id, now)

    await context.db.run(work)
    context.auth.forget()
    return Response(status_code=204)
