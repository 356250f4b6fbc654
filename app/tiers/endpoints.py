"""HTTP routes for tiers: thin, the rules live in service.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response

from app.context import Context, require
from app.errors import Forbidden, error_responses
from app.fields import MemberPath
from app.http import api_router
from app.idempotency import IdempotencyKey, IdempotencyKeyRequired, IdempotencyKeyReused, keyed_request
from app.ledger.errors import InsufficientPoints, MemberClosed, MemberNotEligible, MemberNotFound
from app.pagination import Cursor, Limit
from app.positions import ReplicaRead
from app.principal import Principal
from app.tiers import service
from app.tiers.schemas import KeepIn, OverrideIn, TierOut

router = api_router(prefix="/v1/members/{member}/tier", tags=["tiers"])


@router.get(
    "",
    response_model=TierOut,
    operation_id="getMemberTier",
    responses=error_responses(Forbidden, MemberNotFound),
)
async def get_member_tier(
    member: MemberPath,
    context: Context,
    principal: Annotated[Principal, Depends(require("members:read"))],
    read: ReplicaRead,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> TierOut:
    """The member's tier (since when, when its term ends), what is missing for the
    next tier, the qualifying activity in the window ending now, and every change
    of tier with its reason and the activity that decided it, newest first."""
    return await service.get(context, principal, member, limit=limit, cursor=cursor, read=read)


@router.post(
    "/keep",
    status_code=201,
    response_model=TierOut,
    operation_id="keepMemberTier",
    responses=error_responses(
        Forbidden,
        IdempotencyKeyRequired,
        IdempotencyKeyReused,
        MemberNotFound,
        InsufficientPoints,
        service.NotEligible,
        MemberNotEligible,
        MemberClosed,
    ),
)
async def keep_member_tier(
    http: Request,
    member: MemberPath,
    context: Context,
    key: IdempotencyKey,
    principal: Annotated[Principal, Depends(require("points:burn"))],
    body: KeepIn | None = None,
) -> Response:
    """Spend the tier's `keep_with_points` (rules `tier_policy`) to move the term's
    end forward by `term_months`, at any time during the term or its grace period.
    A tier the rules give no price, or no term (set by an operator), is 422
    `not_eligible`; not enough points, 422 `insufficient_points`."""
    body = body or KeepIn()
    result = await service.keep(context, keyed_request(http, principal, key, body), member, body)
    return result.to_response()


@router.put(
    "",
    response_model=TierOut,
    operation_id="setMemberTier",
    responses=error_responses(Forbidden, MemberNotFound, MemberClosed),
)
async def set_member_tier(
    member: MemberPath,
    body: OverrideIn,
    context: Context,
    principal: Annotated[Principal, Depends(require("admin"))],
) -> TierOut:
    """Set the member's tier by hand (an operator override, kept in the history with
    its reason). With `until`, the normal rules apply again from then, judged as at
    a term's end; without, the tier stays until changed again, though a higher tier
    the member earns still applies. Setting the same again changes nothing, so a
    retry is safe without an Idempotency-Key."""
    return await service.override(context, principal, member, body)
