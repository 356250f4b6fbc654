"""HTTP routes for holds: thin, the rules live in service.py."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.responses import Response

from app.context import Context, require
from app.errors import Forbidden, error_responses
from app.fields import MemberPath
from app.holds import service
from app.holds.schemas import CaptureIn, HoldIn, HoldOut, HoldPage, HoldStatus, ReleaseIn
from app.http import api_router
from app.idempotency import IdempotencyKey, IdempotencyKeyRequired, IdempotencyKeyReused, keyed_request
from app.ledger.errors import (
    REDEEM_LIMIT_ERRORS,
    InsufficientPoints,
    LimitExceeded,
    MemberClosed,
    MemberNotEligible,
    MemberNotFound,
)
from app.pagination import Cursor, Limit
from app.positions import ReplicaRead
from app.principal import Principal

router = api_router(prefix="/v1", tags=["holds"])
Burner = Annotated[Principal, Depends(require("points:burn"))]
HoldPath = Annotated[
    uuid.UUID, Path(description="the hold's id", examples=["0193b1a2-7c1e-7d2a-9a4f-5a1e2f3b4c5d"])
]
_CLOSE_ERRORS = (
    Forbidden,
    IdempotencyKeyRequired,
    IdempotencyKeyReused,
    service.HoldNotFound,
    service.HoldNotActive,
)


@router.post(
    "/members/{member}/holds",
    status_code=201,
    response_model=HoldOut,
    operation_id="createHold",
    responses=error_responses(
        Forbidden,
        IdempotencyKeyRequired,
        IdempotencyKeyReused,
        MemberNotFound,
        InsufficientPoints,
        LimitExceeded,
        *REDEEM_LIMIT_ERRORS,
        MemberNotEligible,
        MemberClosed,
    ),
)
async def create_hold(
    http: Request, member: MemberPath, body: HoldIn, context: Context, key: IdempotencyKey, principal: Burner
) -> Response:
    """Reserve a member's available points for a checkout: they move to held, where
    nothing else can spend them. Capture them once the order is paid, or release
    them; an active hold past `expires_at` is released by the worker. The rules'
    `redeem` limits apply (minimum, increments, and with `order_total` the largest
    share of the order points may pay), and the hold counts against the member's
    `limits.redeem_points_per_member_per_day` when placed (422 `limit_exceeded`; its
    capture does not count again). Not enough points: 422 `insufficient_points`."""
    result = await service.place(context, keyed_request(http, principal, key, body), member, body)
    return result.to_response()


@router.post(
    "/holds/{hold_id}/capture",
    status_code=201,
    response_model=HoldOut,
    operation_id="captureHold",
    responses=error_responses(*_CLOSE_ERRORS, service.CaptureExceedsHold),
)
async def capture_hold(
    http: Request,
    hold_id: HoldPath,
    body: CaptureIn,
    context: Context,
    key: IdempotencyKey,
    principal: Burner,
) -> Response:
    """Spend held points: all of them, or `points` of them with the rest going back
    to available (to the lots they came from). A hold that is no longer active
    (captured, released, or past its expiry) is 409 `hold_not_active`; more than
    held is 422 `capture_exceeds_hold`."""
    result = await service.capture(context, keyed_request(http, principal, key, body), hold_id, body)
    return result.to_response()


@router.post(
    "/holds/{hold_id}/release",
    status_code=201,
    response_model=HoldOut,
    operation_id="releaseHold",
    responses=error_responses(*_CLOSE_ERRORS),
)
async def release_hold(
    http: Request,
    hold_id: HoldPath,
    context: Context,
    key: IdempotencyKey,
    principal: Burner,
    body: ReleaseIn | None = None,
) -> Response:
    """Give all held points back to available, with their original expiry dates."""
    body = body or ReleaseIn()
    result = await service.release(context, keyed_request(http, principal, key, body), hold_id, body)
    return result.to_response()


@router.get(
    "/holds/{hold_id}",
    response_model=HoldOut,
    operation_id="getHold",
    responses=error_responses(Forbidden, service.HoldNotFound),
)
async def get_hold(
    hold_id: HoldPath,
    context: Context,
    principal: Annotated[Principal, Depends(require("members:read"))],
    read: ReplicaRead,
) -> HoldOut:
    """A hold and its status."""
    return await service.get(context, principal, hold_id, read)


@router.get(
    "/members/{member}/holds",
    response_model=HoldPage,
    operation_id="listMemberHolds",
    responses=error_responses(Forbidden, MemberNotFound),
)
async def list_member_holds(
    member: MemberPath,
    context: Context,
    principal: Annotated[Principal, Depends(require("members:read"))],
    read: ReplicaRead,
    status: Annotated[
        HoldStatus | None, Query(description="only holds with this status", examples=["active"])
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> HoldPage:
    """A member's holds, newest first: active ones and how each closed."""
    return await service.member_holds(
        context, principal, member, status=status, limit=limit, cursor=cursor, read=read
    )
