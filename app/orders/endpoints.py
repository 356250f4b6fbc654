"""HTTP routes for checkout orders: thin, the rules live in service.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.responses import Response

from app.context import Context, require
from app.errors import Forbidden, error_responses
from app.fields import MemberPath, RulesVersionPath, ShortText
from app.http import api_router
from app.idempotency import IdempotencyKey, IdempotencyKeyRequired, IdempotencyKeyReused, keyed_request
from app.ledger.errors import (
    CurrencyMismatch,
    MemberClosed,
    MemberNotEligible,
    MemberNotFound,
    PointsOutOfRange,
)
from app.orders import service, simulation
from app.orders.schemas import (
    OrderIn,
    OrderOut,
    OrderPage,
    OrderResult,
    RefundIn,
    RefundResult,
    SimulationIn,
    SimulationOut,
)
from app.pagination import Cursor, Limit
from app.positions import ReplicaRead
from app.principal import Principal
from app.rulesets.service import RulesVersionNotFound

router = api_router(prefix="/v1/orders", tags=["orders"])
Earner = Annotated[Principal, Depends(require("points:earn"))]
Reader = Annotated[Principal, Depends(require("members:read"))]


@router.post(
    "",
    status_code=201,
    response_model=OrderResult,
    operation_id="createOrder",
    responses=error_responses(
        Forbidden,
        IdempotencyKeyRequired,
        IdempotencyKeyReused,
        MemberNotFound,
        service.OrderExists,
        CurrencyMismatch,
        PointsOutOfRange,
        MemberNotEligible,
        MemberClosed,
    ),
)
async def create_order(
    http: Request, body: OrderIn, context: Context, key: IdempotencyKey, principal: Earner
) -> Response:
    """Record a paid order and give the member the points the active rules decide.

    `order_id` is unique per program: the same order again (any Idempotency-Key)
    replays the first answer; another body under the same `order_id` is 409
    `order_exists`. Points stay pending for the rules' `pending_days` after
    `paid_at`, then become available (job `activate-pending`)."""
    result = await service.place(context, keyed_request(http, principal, key, body), body)
    return result.to_response()


@router.post(
    "/preview",
    response_model=OrderResult,
    operation_id="previewOrder",
    responses=error_responses(Forbidden, MemberNotFound, CurrencyMismatch, PointsOutOfRange),
)
async def preview_order(body: OrderIn, context: Context, principal: Earner) -> OrderResult:
    """What the order would earn now, with the same breakdown; nothing is written."""
    return await service.preview(context, principal.program_id, body)


@router.post(
    "/{order_id}/refunds",
    status_code=201,
    response_model=RefundResult,
    operation_id="createOrderRefund",
    responses=error_responses(
        Forbidden,
        IdempotencyKeyRequired,
        IdempotencyKeyReused,
        service.OrderNotFound,
        service.RefundExists,
        service.RefundExceedsOrder,
        CurrencyMismatch,
        MemberClosed,
    ),
)
async def create_order_refund(
    http: Request,
    order_id: Annotated[ShortText, Path(description="the order's order_id", examples=["o-1001"])],
    body: RefundIn,
    context: Context,
    key: IdempotencyKey,
    principal: Earner,
) -> Response:
    """Take back the points the refunded part of the order earned: pending points
    first, then available ones. Refunds add up: refunding the whole order, in any
    number of steps, takes back exactly what it earned. Points the member already
    spent are recorded as `shortfall`, or become `debt` if the rules say so. More
    than is left of the order is 422 `refund_exceeds_order`."""
    result = await service.refund(context, keyed_request(http, principal, key, body), order_id, body)
    return result.to_response()


@router.get(
    "/{order_id}",
    response_model=OrderOut,
    operation_id="getOrder",
    responses=error_responses(Forbidden, service.OrderNotFound),
)
async def get_order(
    order_id: Annotated[ShortText, Path(description="the order's order_id", examples=["o-1001"])],
    context: Context,
    principal: Reader,
    read: ReplicaRead,
) -> OrderOut:
    """An order as recorded: member, total, lines, channel, when it was paid, the
    rules version that decided it, its points and their status, the breakdown, and
    its refunds."""
    return await service.order(context, principal, order_id, read)


member_orders_router = api_router(prefix="/v1/members", tags=["orders"])


@member_orders_router.get(
    "/{member}/orders",
    response_model=OrderPage,
    operation_id="listMemberOrders",
    responses=error_responses(Forbidden, MemberNotFound),
)
async def list_member_orders(
    member: MemberPath,
    context: Context,
    principal: Reader,
    read: ReplicaRead,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> OrderPage:
    """A member's orders, newest payment first, each as `GET /v1/orders/{order_id}`
    shows it."""
    return await service.member_orders(context, principal, member, limit=limit, cursor=cursor, read=read)


# The what-if replay answers under the rules paths (it simulates a rules version).
simulation_router = api_router(prefix="/v1/rules", tags=["rules"])
RulesReader = Annotated[Principal, Depends(require("rules:read"))]


@simulation_router.post(
    "/{version}/simulate",
    response_model=SimulationOut,
    response_model_by_alias=True,
    operation_id="simulateRulesVersion",
    responses=error_responses(Forbidden, RulesVersionNotFound),
)
async def simulate_rules_version(
    version: RulesVersionPath, body: SimulationIn, context: Context, principal: RulesReader
) -> SimulationOut:
    """What the program's orders paid in [`from`, `to`) would have earned under this
    version (a draft, say), beside what they did earn, in total and rule by rule.
    Nothing is written."""
    return await simulation.simulate(context, principal, version, body)
