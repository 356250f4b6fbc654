from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query

from app.context import Context, require
from app.errors import Forbidden, error_responses
from app.fields import ExternalId, MemberPath, ShortText
from app.http import api_router
from app.ledger.errors import MemberNotFound
from app.members import service
from app.members.errors import MemberExists
from app.members.schemas import MemberCreate, MemberOut, MemberPage, MemberPatch, MemberStatus
from app.pagination import Cursor, Limit
from app.positions import ReplicaRead
from app.principal import Principal

router = api_router(prefix="/v1/members", tags=["members"])


@router.post(
    "",
    status_code=201,
    response_model=MemberOut,
    operation_id="createMember",
    responses=error_responses(Forbidden, MemberExists),
)
async def create_member(
    body: MemberCreate,
    context: Context,
    principal: Annotated[Principal, Depends(require("members:write"))],
) -> MemberOut:
    """Enrol a member with empty available, pending and held accounts. The external
    id is unique per program: a second enrolment is 409 `member_exists`."""
    return await service.enrol(context, principal, body)


@router.get(
    "/{member}",
    response_model=MemberOut,
    operation_id="getMember",
    responses=error_responses(Forbidden, MemberNotFound),
)
async def get_member(
    member: Annotated[ExternalId, Path(description="the member's external id")],
    context: Context,
    principal: Annotated[Principal, Depends(require("members:read"))],
    read: ReplicaRead,
) -> MemberOut:
    """A member with balances, upcoming expiries and tier."""
    return await service.view(context, principal, member, read)


@router.get(
    "",
    response_model=MemberPage,
    operation_id="listMembers",
    responses=error_responses(Forbidden),
)
async def list_members(
    context: Context,
    principal: Annotated[Principal, Depends(require("members:read"))],
    read: ReplicaRead,
    limit: Limit = 50,
    cursor: Cursor = None,
    external_id_prefix: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=128,
            pattern=r"^[A-Za-z0-9._:@+\-]+$",
            description="only members whose external id starts with this",
        ),
    ] = None,
    tier: Annotated[ShortText | None, Query(description="only members holding this tier (its code)")] = None,
    status: Annotated[MemberStatus | None, Query(description="only members with this status")] = None,
) -> MemberPage:
    """The program's members, newest enrolment first, each as the member view shows
    it (balances, tier, progress) without the upcoming expiries."""
    return await service.members(
        context,
        principal,
        limit=limit,
        cursor=cursor,
        prefix=external_id_prefix,
        tier=tier,
        status=status,
        read=read,
    )


@router.patch(
    "/{member}",
    response_model=MemberOut,
    operation_id="updateMember",
    responses=error_responses(Forbidden, MemberNotFound),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/MemberPatch"}},
                "application/merge-patch+json": {"schema": {"$ref": "#/components/schemas/MemberPatch"}},
            },
        }
    },
)
async def update_member(
    member: MemberPath,
    body: MemberPatch,
    context: Context,
    principal: Annotated[Principal, Depends(require("members:write"))],
) -> MemberOut:
    """Change a member's `birthday` and `metadata` by JSON merge patch (RFC 7396; as
    `application/json` or `application/merge-patch+json`): a field left out is kept,
    `null` clears it, `metadata` merges key by key. Any other field is 422."""
    return await service.patch(context, principal, member, body)
