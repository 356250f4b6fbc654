"""HTTP routes for the event log and the chain's head."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from app.context import Context, require
from app.errors import Forbidden, error_responses
from app.eventlog import service
from app.eventlog.schemas import ChainHeadOut, EventPage
from app.http import api_router
from app.ledger.errors import MemberNotFound
from app.pagination import Cursor, Limit
from app.positions import ReplicaRead
from app.principal import Principal

router = api_router(prefix="/v1", tags=["events"])
Reader = Annotated[Principal, Depends(require("events:read"))]


@router.get(
    "/events",
    response_model=EventPage,
    operation_id="listEvents",
    responses=error_responses(Forbidden, MemberNotFound),
)
async def list_events(
    context: Context,
    principal: Reader,
    read: ReplicaRead,
    after: Annotated[
        int,
        Query(
            ge=0,
            le=2**62,
            description="only events with a sequence above this (exclusive): the last one you saw",
            examples=[17],
        ),
    ] = 0,
    limit: Limit = 100,
    cursor: Cursor = None,
    type: Annotated[
        str | None,
        Query(
            max_length=512,
            pattern=r"^[a-z_.*,]+$",
            description="only these types, comma-separated; `points.*` selects a family",
            examples=["points.*,tier.changed"],
        ),
    ] = None,
    member: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=128,
            pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@+\-]*$",
            description="only events concerning this member (external id)",
            examples=["cust-10042"],
        ),
    ] = None,
) -> EventPage:
    """The program's event log in sequence order (1, 2, 3, ... with no gap): every
    journal entry as `points.<kind>` and the member, tier, rules and webhook events,
    in the order of the hash chain. A consumer that keeps the last sequence it saw
    catches up after any outage with `?after=`; a sequence it never saw is a gap."""
    return await service.events(
        context, principal, after=after, limit=limit, types=type, member=member, cursor=cursor, read=read
    )


@router.get(
    "/ledger/head",
    response_model=ChainHeadOut,
    operation_id="getLedgerHead",
    responses=error_responses(Forbidden),
)
async def ledger_head(context: Context, principal: Reader, read: ReplicaRead) -> ChainHeadOut:
    """Where the program's hash chain ends: the last chained entry's sequence and
    hash, and how many committed entries wait for the chainer."""
    return await service.head(context, principal, read)
