"""HTTP routes of four-eyes approvals: thin, the rules live in service.py."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Path, Query

from app.approvals import service
from app.approvals.schemas import ApprovalOut, ApprovalPage, ApprovalStatus, DecisionIn
from app.context import Context, require
from app.errors import Forbidden, error_responses
from app.http import api_router
from app.ledger.errors import LimitExceeded, PointsOutOfRange
from app.pagination import Cursor, Limit
from app.principal import Principal

router = api_router(prefix="/v1", tags=["approvals"])
Admin = Annotated[Principal, Depends(require("admin"))]
ApprovalPath = Annotated[
    uuid.UUID, Path(description="the approval's id", examples=["0193b1a2-7c1e-7d2a-9a4f-5a1e2f3b4c5d"])
]
_DECISION_ERRORS = (
    Forbidden,
    service.ApprovalByRequester,
    service.ApprovalNotFound,
    service.ApprovalAlreadyDecided,
    service.ApprovalExpired,
)


@router.get(
    "/approvals",
    response_model=ApprovalPage,
    operation_id="listApprovals",
    responses=error_responses(Forbidden),
)
async def list_approvals(
    context: Context,
    principal: Admin,
    status: Annotated[
        ApprovalStatus | None,
        Query(description="only approvals in this status; unset: all", examples=["pending_approval"]),
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ApprovalPage:
    """Awards that waited for a second key, newest first."""
    return await service.page(context, principal, status=status, limit=limit, cursor=cursor)


@router.get(
    "/approvals/{approval_id}",
    response_model=ApprovalOut,
    operation_id="getApproval",
    responses=error_responses(Forbidden, service.ApprovalNotFound),
)
async def get_approval(approval_id: ApprovalPath, context: Context, principal: Admin) -> ApprovalOut:
    """One approval: the award it holds, who asked, and who decided it and how. A
    pending one past its `expires_at` reads `expired`."""
    return await service.get(context, principal, approval_id)


@router.post(
    "/approvals/{approval_id}/approve",
    response_model=ApprovalOut,
    operation_id="approveAward",
    responses=error_responses(*_DECISION_ERRORS, LimitExceeded, PointsOutOfRange),
)
async def approve_award(
    approval_id: ApprovalPath, body: DecisionIn, context: Context, principal: Admin
) -> ApprovalOut:
    """Post the award, as asked, under the rules active now (its `award_max_points`
    and the requesting key's `award_points_per_key_per_day` apply: 422
    `limit_exceeded` leaves it pending). Only an admin key other than the one that
    asked may: 403 `approval_by_requester`. Approving again answers the same
    approval and posts nothing more (the approval is its own idempotency key: no
    Idempotency-Key header is needed); a rejected one is 409
    `approval_already_decided`, an expired one 409 `approval_expired`."""
    return await service.decide(context, principal, approval_id, body, approve=True)


@router.post(
    "/approvals/{approval_id}/reject",
    response_model=ApprovalOut,
    operation_id="rejectAward",
    responses=error_responses(*_DECISION_ERRORS),
)
async def reject_award(
    approval_id: ApprovalPath, body: DecisionIn, context: Context, principal: Admin
) -> ApprovalOut:
    """Drop the award: nothing is posted. Only an admin key other than the one that
    asked may (403 `approval_by_requester`). Rejecting again answers the same
    approval; an approved one is 409 `approval_already_decided`, an expired one 409
    `approval_expired`."""
    return await service.decide(context, principal, approval_id, body, approve=False)
