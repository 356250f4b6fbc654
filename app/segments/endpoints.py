"""The RFM segments report (reports:read)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from app.context import Context, require
from app.errors import Forbidden, ValidationFailed, error_responses
from app.fields import Instant
from app.http import api_router
from app.pagination import Cursor, InvalidCursor, Limit
from app.positions import ReplicaRead
from app.principal import Principal
from app.segments import service
from app.segments.schemas import SegmentMemberPage, SegmentName, SegmentReport

router = api_router(prefix="/v1/reports/segments", tags=["reports"])

AsOf = Annotated[Instant | None, Query(description="an RFC 3339 instant, not in the future; unset: now")]
WindowDays = Annotated[
    int, Query(ge=1, le=3660, description="the window of orders, in days up to as_of (1-3660)")
]


@router.get(
    "",
    response_model=SegmentReport,
    operation_id="getSegmentsReport",
    responses=error_responses(Forbidden, ValidationFailed),
)
async def get_segments(
    context: Context,
    principal: Annotated[Principal, Depends(require("reports:read"))],
    read: ReplicaRead,
    as_of: AsOf = None,
    window_days: WindowDays = service.DEFAULT_WINDOW_DAYS,
) -> SegmentReport:
    """RFM segments as of an instant: every member recorded by then in one segment
    (docs/segments.md), with counts and shares. Recorded time: a past `as_of` gives
    the same answer whenever it is asked."""
    return await service.report(context, principal, as_of, window_days, read)


@router.get(
    "/members",
    response_model=SegmentMemberPage,
    operation_id="listSegmentMembers",
    responses=error_responses(Forbidden, ValidationFailed, InvalidCursor),
)
async def list_segment_members(
    context: Context,
    principal: Annotated[Principal, Depends(require("reports:read"))],
    read: ReplicaRead,
    segment: Annotated[SegmentName, Query(description="the segment whose members to list")],
    as_of: AsOf = None,
    window_days: WindowDays = service.DEFAULT_WINDOW_DAYS,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> SegmentMemberPage:
    """One segment's members as of an instant, with their scores, by member id. A
    cursor keeps the first page's `as_of`."""
    return await service.members(
        context,
        principal,
        segment=segment,
        as_of=as_of,
        window_days=window_days,
        limit=limit,
        cursor=cursor,
        read=read,
    )
