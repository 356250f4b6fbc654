"""HTTP routes of the reports (scope `reports:read`): thin, the figures live in service.py."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, Query
from fastapi.responses import Response

from app.context import Context, require
from app.errors import Forbidden, ValidationFailed, error_responses
from app.fields import Instant
from app.http import api_router
from app.positions import ReplicaRead
from app.principal import Principal
from app.reports import service
from app.reports.schemas import (
    ActivityBucket,
    ActivityOut,
    BreakageOut,
    LiabilityOut,
    OverviewOut,
    RedemptionCostOut,
)
from app.tables import CSV_RESPONSE, Format
from app.tables import csv_table as _csv

router = api_router(prefix="/v1/reports", tags=["reports"])

Reader = Annotated[Principal, Depends(require("reports:read"))]
From = Annotated[
    Instant,
    Query(
        alias="from",
        description="start of the period (RFC 3339, inclusive)",
        examples=["2026-10-01T00:00:00Z"],
    ),
]
To = Annotated[
    Instant,
    Query(
        description="end of the period (RFC 3339, exclusive); not in the future",
        examples=["2026-11-01T00:00:00Z"],
    ),
]

_ERRORS = error_responses(Forbidden, ValidationFailed)
_CSV = CSV_RESPONSE


@router.get(
    "/liability",
    response_model=LiabilityOut,
    operation_id="getLiabilityReport",
    responses={**_ERRORS, **_CSV},
)
async def liability_report(
    context: Context,
    principal: Reader,
    read: ReplicaRead,
    as_of: Annotated[
        Instant | None,
        Query(description="an RFC 3339 instant; unset: now", examples=["2026-11-25T00:00:00Z"]),
    ] = None,
    format: Format = "json",
) -> LiabilityOut | Response:
    """The points members hold at `as_of` (available, pending, held), who holds
    them, the available ones by expiry month, and what they are worth at the
    valuation in force then. `?format=csv`: the expiry months."""
    report = await service.liability(context, principal, as_of, read)
    if format == "csv":
        return _csv(report.expiring, ["month", "points"], report, {"X-As-Of": report.as_of.isoformat()})
    return report


@router.get(
    "/breakage",
    response_model=BreakageOut,
    response_model_by_alias=True,
    operation_id="getBreakageReport",
    responses={**_ERRORS, **_CSV},
)
async def breakage_report(
    context: Context, principal: Reader, read: ReplicaRead, start: From, to: To, format: Format = "json"
) -> BreakageOut | Response:
    """By earn month in the period: points issued (net of refunds), how many were
    redeemed, expired, forfeited, how many are still outstanding at `to`, and the
    breakage rate so far (expired / issued). `?format=csv`: the months and the total."""
    report = await service.breakage(context, principal, start, to, read)
    if format == "csv":
        columns = ["month", "issued", "redeemed", "expired", "forfeited", "outstanding", "breakage_rate"]
        return _csv([*report.months, report.total], columns, report, _period(report))
    return report


@router.get(
    "/redemption-cost",
    response_model=RedemptionCostOut,
    response_model_by_alias=True,
    operation_id="getRedemptionCostReport",
    responses={**_ERRORS, **_CSV},
)
async def redemption_cost_report(
    context: Context, principal: Reader, read: ReplicaRead, start: From, to: To, format: Format = "json"
) -> RedemptionCostOut | Response:
    """Points redeemed in the period, their cost at `cost_per_point`, the revenue,
    the ratio, the cap and the headroom. A period over the cap writes one
    `cost.cap_exceeded` event (the first time it is reported). `?format=csv`: one row."""
    report = await service.redemption_cost(context, principal, start, to, read)
    if format == "csv":
        columns = ["points_redeemed", "cost", "revenue", "ratio", "cap", "headroom", "cap_exceeded"]
        return _csv([report], columns, report, _period(report))
    return report


@router.get(
    "/activity",
    response_model=ActivityOut,
    response_model_by_alias=True,
    operation_id="getActivityReport",
    responses={**_ERRORS, **_CSV},
)
async def activity_report(
    context: Context,
    principal: Reader,
    read: ReplicaRead,
    start: From,
    to: To,
    granularity: Annotated[
        Literal["day", "week", "month"],
        Query(description="bucket size, in the program's timezone", examples=["month"]),
    ] = "day",
    format: Format = "json",
) -> ActivityOut | Response:
    """Points issued by source, redeemed, expired, forfeited, taken back by
    refunds and the net change; orders, revenue net of refunds, new and active
    members; per day, week or month. `?format=csv`: the buckets."""
    report = await service.activity(context, principal, start, to, granularity, read)
    if format == "csv":
        columns = list(ActivityBucket.model_fields)
        return _csv(report.buckets, columns, report, _period(report))
    return report


@router.get(
    "/overview",
    response_model=OverviewOut,
    response_model_by_alias=True,
    operation_id="getOverviewReport",
    responses=_ERRORS,
)
async def overview_report(
    context: Context, principal: Reader, read: ReplicaRead, start: From, to: To
) -> OverviewOut:
    """Participation, repeat purchases, average order value, points per order and
    the redemption rate over the period."""
    return await service.overview(context, principal, start, to, read)


def _period(report: Any) -> dict[str, str]:
    return {"X-Period": f"{report.from_.isoformat()}/{report.to.isoformat()}"}
