from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.responses import Response

from app.context import Context, require
from app.errors import Forbidden, error_responses
from app.fields import ExternalId, MemberPath, ShortText
from app.http import api_router
from app.idempotency import IdempotencyKey, IdempotencyKeyRequired, IdempotencyKeyReused, keyed_request
from app.ledger.errors import MemberClosed, MemberNotFound
from app.members import service, status
from app.members.errors import MemberExists, MemberHasActiveHolds
from app.members.schemas import (
    CloseIn,
    ClosureOut,
    MemberCreate,
    MemberOut,
    MemberPage,
    MemberPatch,
    MemberStatus,
    StatusChangeIn,
    StatusChangeOut,
    StatusHistoryPage,
)
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
            examples=["cust-"],
        ),
    ] = None,
    tier: Annotated[
        ShortText | None, Query(description="only members holding this tier (its code)", examples=["gold"])
    ] = None,
    status: Annotated[
        MemberStatus | None, Query(description="only members with this status", examples=["active"])
    ] = None,
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
    responses=error_responses(Forbidden, MemberNotFound, MemberClosed),
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
    `null` clears it, `metadata` merges key by key. Any other field is 422. A closed
    member is 409 `member_closed`."""
    return await service.patch(context, principal, member, body)


@router.post(
    "/{member}/status",
    status_code=201,
    response_model=StatusChangeOut,
    operation_id="changeMemberStatus",
    responses=error_responses(
        Forbidden, IdempotencyKeyRequired, IdempotencyKeyReused, MemberNotFound, MemberClosed
    ),
)
async def change_member_status(
    http: Request,
    member: MemberPath,
    body: StatusChangeIn,
    context: Context,
    key: IdempotencyKey,
    principal: Annotated[Principal, Depends(require("members:write"))],
) -> Response:
    """Set a member's status: `active`; `frozen` (may still receive points from orders,
    events, awards and transfers in; may not redeem, hold, transfer out, convert or keep
    a tier with points); `suspended` (no points move: earning is refused too). What a
    status refuses is 409 `member_not_eligible`, naming the status; holds placed before
    still capture and release. With `until`, the status returns to `active` then (the
    `lift-statuses` job). Every change is kept with its reason and API key (the status
    history) and is a `member.status_changed` event. A closed member is 409
    `member_closed`."""
    result = await status.change_status(context, keyed_request(http, principal, key, body), member, body)
    return result.to_response()


@router.get(
    "/{member}/status-history",
    response_model=StatusHistoryPage,
    operation_id="listMemberStatusHistory",
    responses=error_responses(Forbidden, MemberNotFound),
)
async def list_member_status_history(
    member: MemberPath,
    context: Context,
    principal: Annotated[Principal, Depends(require("members:read"))],
    limit: Limit = 50,
    cursor: Cursor = None,
) -> StatusHistoryPage:
    """The member's status changes, newest first: each with its reason, the API key
    that made it (none when `until` lifted it) and, for a closing, its forfeit entry."""
    return await status.history(context, principal, member, limit=limit, cursor=cursor)


@router.post(
    "/{member}/close",
    status_code=201,
    response_model=ClosureOut,
    operation_id="closeMember",
    responses=error_responses(
        Forbidden,
        IdempotencyKeyRequired,
        IdempotencyKeyReused,
        MemberNotFound,
        MemberClosed,
        MemberHasActiveHolds,
    ),
)
async def close_member(
    http: Request,
    member: MemberPath,
    body: CloseIn,
    context: Context,
    key: IdempotencyKey,
    principal: Annotated[Principal, Depends(require("members:write"))],
) -> Response:
    """Close a member for good. Refused with 409 `member_has_active_holds` while points
    are held (capture or release the holds first). Its available points are forfeited
    in one `forfeit` entry to the program's forfeit account; its pending points are
    forfeited when they would become available. From then on the member accepts
    nothing new (409 `member_closed`) and stays readable. Closing a closed member is
    409 `member_closed`."""
    result = await status.close(context, keyed_request(http, principal, key, body), member, body)
    return result.to_response()
