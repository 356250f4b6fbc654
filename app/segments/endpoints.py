"""The RFM segments report (reports:read)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query
from fastapi.responses import Response

from app.context import Context, require
from app.errors import Forbidden, ValidationFailed, error_responses
from app.fields import Instant
from app.http import api_router
from app.pagination import Cursor, InvalidCursor, Limit
from app.positions import ReplicaRead
from app.principal import Principal
from app.segments import service
from app.segments.schemas import SegmentMember, SegmentMemberPage, SegmentName, SegmentReport
from app.tables import CSV_RESPONSE, Format, csv_table

router = api_router(prefix="/v1/reports/segments", tags=["reports"])

AsOf = Annotated[
    Instant | None,
    Query(
        description="an RFC 3339 instant, not in the future; unset: now", examples=["2026-11-25T00:00:00Z"]
    ),
]
WindowDays = Annotated[
    int,
    Query(ge=1, le=3660, description="the window of orders, in days up to as_of (1-3660)", examples=[365]),
]


@router.get(
    "",
    response_model=SegmentReport,
    operation_id="getSegmentsReport",
    responses={**error_responses(Forbidden, ValidationFailed), **CSV_RESPONSE},
)
async def get_segments(
    context: Context,
    principal: Annotated[Principal, Depends(require("reports:read"))],
    read: ReplicaRead,
    as_of: AsOf = None,
    window_days: WindowDays = service.DEFAULT_WINDOW_DAYS,
    format: Format = "json",
) -> SegmentReport | Response:
    """RFM segments as of an instant: every member recorded by then in one segment
    (docs/segments.md), with counts and shares. Recorded time: a past `as_of` gives
    the same answer whenever it is asked. `?format=csv`: a row a segment."""
    report = await service.report(context, principal, as_of, window_days, read)
    if format == "csv":
        return csv_table(report.segments, ["segment", "members", "share"], report, _headers(report))
    return report


@router.get(
    "/members",
    response_model=SegmentMemberPage,
    operation_id="listSegmentMembers",
    responses={**error_responses(Forbidden, ValidationFailed, InvalidCursor), **CSV_RESPONSE},
)
async def list_segment_members(
    context: Context,
    principal: Annotated[Principal, Depends(require("reports:read"))],
    read: ReplicaRead,
    segment: Annotated[
        SegmentName, Query(description="the segment whose members to list", examples=["core"])
    ],
    as_of: AsOf = None,
    window_days: WindowDays = service.DEFAULT_WINDOW_DAYS,
    limit: Limit = 50,
    cursor: Cursor = None,
    format: Format = "json",
) -> SegmentMemberPage | Response:
    """One segment's members as of an instant, with their scores, by member id. A
    cursor keeps the first page's `as_of`. `?format=csv`: the page's members, a row
    each; the next page's cursor in `X-Next-Cursor` (absent on the last page)."""
    page = await service.members(
        context,
        principal,
        segment=segment,
        as_of=as_of,
        window_days=window_days,
        limit=limit,
        cursor=cursor,
        read=read,
    )
    if format == "csv":
        headers = _headers(page)
        if page.next_cursor is not None:
            headers["X-Next-Cursor"] = page.next_cursor
        return csv_table(page.items, list(SegmentMember.model_fields), page, headers)
    return page


def _headers(report: SegmentReport | SegmentMemberPage) -> dict[str, str]:
    """The instant, and the currency monetary is in (when there is one)."""
    headers = {"X-As-Of": report.as_of.isoformat()}
    if report.currency is not None:
        headers["X-Currency"] = report.currency
    return headers
