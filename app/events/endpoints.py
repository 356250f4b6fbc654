"""HTTP route for member events: thin, the rules live in service.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response

from app.context import Context, require
from app.errors import Forbidden, error_responses
from app.events import service
from app.events.schemas import EventIn
from app.fields import MemberPath
from app.http import api_router
from app.idempotency import IdempotencyKey, IdempotencyKeyRequired, IdempotencyKeyReused, keyed_request
from app.ledger.errors import MemberClosed, MemberNotEligible, MemberNotFound, PointsOutOfRange
from app.ledger.schemas import EntryOut
from app.principal import Principal

router = api_router(prefix="/v1/members", tags=["points"])


@router.post(
    "/{member}/events",
    status_code=201,
    response_model=EntryOut,
    operation_id="createMemberEvent",
    responses=error_responses(
        Forbidden,
        IdempotencyKeyRequired,
        IdempotencyKeyReused,
        MemberNotFound,
        service.UnknownEventType,
        service.EventLimitReached,
        service.NoReferrer,
        PointsOutOfRange,
        MemberNotEligible,
        MemberClosed,
    ),
)
async def create_member_event(
    http: Request,
    member: MemberPath,
    body: EventIn,
    context: Context,
    key: IdempotencyKey,
    principal: Annotated[Principal, Depends(require("points:earn"))],
) -> Response:
    """Record a non-order activity (sign-up, review, check-in, referral, or a type of
    the program's own) and give the points the active rules set for it. Limits per
    local day are the rules' `max_per_day` (422 `event_limit_reached`). A `referral`
    event is posted for the new member and also pays the member who referred them
    (set at enrolment with `referred_by`), once."""
    result = await service.record(context, keyed_request(http, principal, key, body), member, body)
    return result.to_response()
