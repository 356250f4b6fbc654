"""HTTP routes of the ledger: thin, the rules live in service.py."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.responses import Response

from app.approvals.schemas import ApprovalOut
from app.context import Context, require
from app.errors import Forbidden, error_responses
from app.fields import Instant, MemberPath
from app.http import api_router
from app.idempotency import IdempotencyKey, IdempotencyKeyRequired, IdempotencyKeyReused, keyed_request
from app.ledger import service
from app.ledger.errors import (
    REDEEM_LIMIT_ERRORS,
    AlreadyReversed,
    EntryNotFound,
    EntryNotReversible,
    InsufficientPoints,
    LimitExceeded,
    MemberClosed,
    MemberNotEligible,
    MemberNotFound,
    PointsOutOfRange,
)
from app.ledger.schemas import (
    AwardIn,
    BalanceOut,
    EntryOut,
    EntryView,
    RedemptionIn,
    ReversalIn,
    StatementPage,
    TransferIn,
)
from app.pagination import Cursor, Limit
from app.positions import ReplicaRead
from app.principal import Principal

router = api_router(prefix="/v1", tags=["points"])

_POST_ERRORS = (
    Forbidden,
    IdempotencyKeyRequired,
    IdempotencyKeyReused,
    MemberNotFound,
    PointsOutOfRange,
    MemberNotEligible,
    MemberClosed,
)


@router.post(
    "/members/{member}/awards",
    status_code=201,
    response_model=EntryOut,
    operation_id="createAward",
    responses={
        202: {
            "model": ApprovalOut,
            "description": "The award is above the rules' `limits.award_approval_above`: nothing is "
            "posted until another admin key approves it (`POST /v1/approvals/{approval_id}/approve`)",
        },
        **error_responses(*_POST_ERRORS, LimitExceeded),
    },
)
async def create_award(
    http: Request,
    member: MemberPath,
    body: AwardIn,
    context: Context,
    key: IdempotencyKey,
    principal: Annotated[Principal, Depends(require("points:adjust"))],
) -> Response:
    """Give a member points outside an order (goodwill, migration, campaign).

    The points come from the program's issuance account. With `pending_until` in the
    future they wait in the member's pending account. The rules' `limits` apply: an
    award above `award_max_points`, or past the key's `award_points_per_key_per_day`,
    is 422 `limit_exceeded`; one above `award_approval_above` answers 202 with a
    pending approval and posts nothing until another admin key approves it."""
    result = await service.award(context, keyed_request(http, principal, key, body), member, body)
    return result.to_response()


@router.post(
    "/members/{member}/redemptions",
    status_code=201,
    response_model=EntryOut,
    operation_id="createRedemption",
    responses=error_responses(*_POST_ERRORS, InsufficientPoints, LimitExceeded, *REDEEM_LIMIT_ERRORS),
)
async def create_redemption(
    http: Request,
    member: MemberPath,
    body: RedemptionIn,
    context: Context,
    key: IdempotencyKey,
    principal: Annotated[Principal, Depends(require("points:burn"))],
) -> Response:
    """Spend a member's available points on a reward. Not enough points: 422
    `insufficient_points`, and nothing changes. The rules' `redeem` limits apply:
    `min_points`, `increment`, and with `order_total`, `max_share_of_order`; and its
    `limits.redeem_points_per_member_per_day` (422 `limit_exceeded`)."""
    result = await service.redeem(context, keyed_request(http, principal, key, body), member, body)
    return result.to_response()


@router.post(
    "/transfers",
    status_code=201,
    response_model=EntryOut,
    operation_id="createTransfer",
    responses=error_responses(*_POST_ERRORS, InsufficientPoints, LimitExceeded),
)
async def create_transfer(
    http: Request,
    body: TransferIn,
    context: Context,
    key: IdempotencyKey,
    principal: Annotated[Principal, Depends(require("points:transfer"))],
) -> Response:
    """Move available points from one member to another of the same program. The
    rules' `limits.transfer_points_per_member_per_day` and
    `transfers_per_member_per_day` apply to the giving member (422 `limit_exceeded`)."""
    result = await service.transfer(context, keyed_request(http, principal, key, body), body)
    return result.to_response()


@router.post(
    "/entries/{entry_id}/reversal",
    status_code=201,
    response_model=EntryOut,
    operation_id="reverseEntry",
    responses=error_responses(
        *_POST_ERRORS,
        InsufficientPoints,
        EntryNotFound,
        AlreadyReversed,
        EntryNotReversible,
    ),
)
async def reverse_entry(
    http: Request,
    entry_id: Annotated[
        uuid.UUID, Path(description="the entry to reverse", examples=["0193b1a2-7c1e-7d2a-9a4f-5a1e2f3b4c5d"])
    ],
    body: ReversalIn,
    context: Context,
    key: IdempotencyKey,
    principal: Annotated[Principal, Depends(require("points:adjust"))],
) -> Response:
    """Undo an entry with a new entry of opposite postings. An entry is reversed at
    most once (409 `already_reversed`); reversing points the member no longer has is
    422 `insufficient_points`."""
    result = await service.reverse(context, keyed_request(http, principal, key, body), entry_id, body)
    return result.to_response()


@router.get(
    "/entries/{entry_id}",
    response_model=EntryView,
    operation_id="getEntry",
    responses=error_responses(Forbidden, EntryNotFound),
)
async def get_entry(
    entry_id: Annotated[
        uuid.UUID, Path(description="the entry", examples=["0193b1a2-7c1e-7d2a-9a4f-5a1e2f3b4c5d"])
    ],
    context: Context,
    principal: Annotated[Principal, Depends(require("members:read"))],
    read: ReplicaRead,
) -> EntryView:
    """One journal entry as the ledger's POSTs answer it: what moved on which accounts,
    and each member's balances right after it; and its `sequence` and `hash` in the
    program's hash chain (null for the few seconds before the chainer reaches it)."""
    return await service.entry(context, principal, entry_id, read)


@router.get(
    "/members/{member}/entries",
    response_model=StatementPage,
    operation_id="listMemberEntries",
    responses=error_responses(Forbidden, MemberNotFound),
)
async def list_member_entries(
    member: MemberPath,
    context: Context,
    principal: Annotated[Principal, Depends(require("members:read"))],
    read: ReplicaRead,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> StatementPage:
    """The member's statement, newest first: every entry that touched the member,
    with the change and the balances right after it."""
    return await service.statement(context, principal, member, limit=limit, cursor=cursor, read=read)


@router.get(
    "/members/{member}/balance",
    response_model=BalanceOut,
    operation_id="getMemberBalance",
    responses=error_responses(Forbidden, MemberNotFound),
)
async def get_member_balance(
    member: MemberPath,
    context: Context,
    principal: Annotated[Principal, Depends(require("members:read"))],
    read: ReplicaRead,
    as_of: Annotated[
        Instant | None,
        Query(description="an RFC 3339 instant; unset: now", examples=["2026-11-25T00:00:00Z"]),
    ] = None,
) -> BalanceOut:
    """The member's balances as the ledger had recorded them at `as_of`."""
    return await service.balance(context, principal, member, as_of, read)
