from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path

from app.context import Context, require
from app.errors import Forbidden, error_responses
from app.fields import ExternalId
from app.http import api_router
from app.ledger.errors import MemberNotFound
from app.members import service
from app.members.errors import MemberExists
from app.members.schemas import MemberCreate, MemberOut
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
) -> MemberOut:
    """A member with balances, upcoming expiries and tier."""
    return await service.view(context, principal, member)
