"""HTTP routes for partners: thin, the rules live in service.py and settlement.py.

Three audiences: the program's operators (`/v1/partners`, admin), the partner's
own systems (`/v1/partner/...`, partner keys only, acting for their partner), and
the program's app backend (donations and conversions of a member)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import Depends, Path, Query, Request
from fastapi.responses import Response, StreamingResponse

from app.context import AppContext, Context, require
from app.errors import Forbidden, error_responses
from app.fields import Instant, MemberPath, ShortText
from app.http import api_router
from app.idempotency import IdempotencyKey, IdempotencyKeyRequired, IdempotencyKeyReused, keyed_request
from app.ledger.errors import (
    REDEEM_LIMIT_ERRORS,
    AlreadyReversed,
    CurrencyMismatch,
    EntryNotReversible,
    InsufficientPoints,
    MemberClosed,
    MemberNotEligible,
    MemberNotFound,
    PartnerCreditExceeded,
    PartnerFundsInsufficient,
    PointsOutOfRange,
)
from app.orders import service as orders
from app.orders.schemas import OrderIn, OrderResult, RefundIn, RefundResult
from app.pagination import Cursor, InvalidCursor, Limit
from app.partners import repository, service, settlement
from app.partners.schemas import (
    ConfirmIn,
    ConversionInIn,
    ConversionOut,
    ConversionOutIn,
    ConversionPage,
    DonationIn,
    FundingIn,
    FundingOut,
    PartnerCreate,
    PartnerMemberOut,
    PartnerOut,
    PartnerPage,
    PartnerRedemptionIn,
    PartnerRedemptionOut,
    PartnerUpdate,
    PaymentIn,
    PaymentOut,
    RateIn,
    RateOut,
    RatePage,
    RatesInForce,
    RejectIn,
    ReversalIn,
    Settlement,
    SettlementLinePage,
    StatementIn,
    StatementOut,
    StatementPage,
)
from app.principal import PARTNER_ANY, PartnerInactive, Principal

Admin = Annotated[Principal, Depends(require("admin"))]
PartnerEarner = Annotated[Principal, Depends(require("partner:earn"))]
PartnerRedeemer = Annotated[Principal, Depends(require("partner:redeem"))]
PartnerConverter = Annotated[Principal, Depends(require("partner:convert"))]
PartnerReader = Annotated[Principal, Depends(require(PARTNER_ANY))]
Burner = Annotated[Principal, Depends(require("points:burn"))]
Reader = Annotated[Principal, Depends(require("members:read"))]

CodePath = Annotated[str, Path(max_length=64, description="the partner's code", examples=["coffee-co"])]
IdPath = Annotated[uuid.UUID, Path(description="its id", examples=["0193b1a2-7c1e-7d2a-9a4f-5a1e2f3b4c5d"])]
From = Annotated[
    Instant,
    Query(
        alias="from",
        description="start of the period, recorded time (included)",
        examples=["2026-10-01T00:00:00Z"],
    ),
]
To = Annotated[Instant, Query(description="end of the period (excluded)", examples=["2026-11-01T00:00:00Z"])]
Format = Annotated[
    Literal["json", "csv"], Query(description="json pages, or every line as CSV", examples=["csv"])
]
Pin = Annotated[
    int | None,
    Query(
        ge=0,
        le=2**63 - 1,
        description="only entries the hash chain had reached by this sequence (a settlement's "
        "`chain_sequence`): the same figures whenever asked; unset: every entry recorded",
        examples=[1042],
    ),
]
CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "with ?format=csv: every line, as CSV"}
}

admin_router = api_router(prefix="/v1/partners", tags=["partners"])
partner_router = api_router(prefix="/v1/partner", tags=["partner api"])
member_router = api_router(prefix="/v1/members", tags=["partners"])

_PARTNER_ERRORS = (Forbidden, service.PartnerNotFound)
_KEYED = (IdempotencyKeyRequired, IdempotencyKeyReused)


async def _partner(context: AppContext, principal: Principal, code: str) -> asyncpg.Record:
    async with context.db.pool.acquire() as connection:
        return await service.find(connection, principal.program_id, code)


async def _own(context: AppContext, principal: Principal) -> asyncpg.Record:
    assert principal.partner_id is not None
    async with context.db.pool.acquire() as connection:
        row = await repository.partner_by_id(connection, principal.program_id, principal.partner_id)
    assert row is not None
    return row


# -- operators ----------------------------------------------------------------------------------


@admin_router.post(
    "",
    status_code=201,
    response_model=PartnerOut,
    operation_id="createPartner",
    responses=error_responses(Forbidden, service.PartnerExists),
)
async def create_partner(body: PartnerCreate, context: Context, principal: Admin) -> PartnerOut:
    """Onboard a partner brand: what it may do (`roles`), how it pays (`billing`), its
    currency and, postpaid, its credit limit. It gets its own two accounts:
    `partner_funding` and `partner_payable`."""
    return await service.create(context, principal, body)


@admin_router.get(
    "", response_model=PartnerPage, operation_id="listPartners", responses=error_responses(Forbidden)
)
async def list_partners(
    context: Context, principal: Admin, limit: Limit = 50, cursor: Cursor = None
) -> PartnerPage:
    """The program's partners, by code, with their funding and payable points."""
    return await service.page(context, principal, limit=limit, cursor=cursor)


@admin_router.get(
    "/{code}",
    response_model=PartnerOut,
    operation_id="getPartner",
    responses=error_responses(*_PARTNER_ERRORS),
)
async def get_partner(code: CodePath, context: Context, principal: Admin) -> PartnerOut:
    """One partner, with its funding and payable points."""
    return await service.get(context, principal, code)


@admin_router.patch(
    "/{code}",
    response_model=PartnerOut,
    operation_id="updatePartner",
    responses=error_responses(*_PARTNER_ERRORS),
)
async def update_partner(
    code: CodePath, body: PartnerUpdate, context: Context, principal: Admin
) -> PartnerOut:
    """Rename, suspend or reactivate a partner, or change a postpaid partner's credit
    limit (null: no limit). A suspended partner's keys get 409 `partner_inactive` on
    every call, at once in every process."""
    return await service.update(context, principal, code, body)


@admin_router.post(
    "/{code}/rates",
    status_code=201,
    response_model=RateOut,
    operation_id="createPartnerRate",
    responses=error_responses(*_PARTNER_ERRORS, service.RateExists),
)
async def create_partner_rate(code: CodePath, body: RateIn, context: Context, principal: Admin) -> RateOut:
    """Add an effective-dated rate. Rates are never edited: a later `effective_from`
    supersedes one, and none may start in the past (what was recorded keeps its price)."""
    return await service.add_rate(context, principal, code, body)


@admin_router.get(
    "/{code}/rates",
    response_model=RatesInForce | RatePage,
    operation_id="listPartnerRates",
    responses=error_responses(*_PARTNER_ERRORS),
)
async def list_partner_rates(
    code: CodePath,
    context: Context,
    principal: Admin,
    at: Annotated[
        Instant | None,
        Query(
            description="the rates in force at this instant; unset: every rate",
            examples=["2026-11-25T00:00:00Z"],
        ),
    ] = None,
) -> RatesInForce | RatePage:
    """The rates in force at `at` (one per kind), or without `at` every rate."""
    return await service.rates(context, principal, code, at)


@admin_router.post(
    "/{code}/funding",
    status_code=201,
    response_model=FundingOut,
    operation_id="createPartnerFunding",
    responses=error_responses(
        *_PARTNER_ERRORS, *_KEYED, service.PartnerNotPrepaid, CurrencyMismatch, PointsOutOfRange
    ),
)
async def create_partner_funding(
    http: Request, code: CodePath, body: FundingIn, context: Context, key: IdempotencyKey, principal: Admin
) -> Response:
    """Record points a prepaid partner bought: one `funding` entry from issuance to its
    funding, priced at `price` in its settlement."""
    result = await service.fund(context, keyed_request(http, principal, key, body), code, body)
    return result.to_response()


@admin_router.get(
    "/{code}/settlement",
    response_model=Settlement,
    response_model_by_alias=True,
    operation_id="getPartnerSettlement",
    responses=error_responses(*_PARTNER_ERRORS),
)
async def get_partner_settlement(
    code: CodePath, start: From, to: To, context: Context, principal: Admin, chain_sequence: Pin = None
) -> Settlement:
    """What the partner owes and is owed for the entries recorded in [from, to), by
    section, each line at the price it carried when recorded. The answer names the
    ledger head it was read at (`chain_sequence`); asked again with that
    `chain_sequence`, it is the same whenever it is asked (without it, an entry whose
    transaction began in the period and committed later may still join it)."""
    return await settlement.settlement(
        context, principal.program_id, await _partner(context, principal, code), start, to, chain_sequence
    )


@admin_router.get(
    "/{code}/settlement/lines",
    response_model=SettlementLinePage,
    operation_id="listPartnerSettlementLines",
    responses={**error_responses(*_PARTNER_ERRORS, InvalidCursor), **CSV},
)
async def list_partner_settlement_lines(
    code: CodePath,
    start: From,
    to: To,
    context: Context,
    principal: Admin,
    limit: Limit = 100,
    cursor: Cursor = None,
    format: Format = "json",
    chain_sequence: Pin = None,
) -> Response | SettlementLinePage:
    """Every line behind the settlement of [from, to), in recorded order."""
    partner = await _partner(context, principal, code)
    return await _lines(context, partner, start, to, limit, cursor, format, chain_sequence)


async def _lines(
    context: AppContext,
    partner: asyncpg.Record,
    start: datetime,
    to: datetime,
    limit: int,
    cursor: str | None,
    format: str,
    chain_sequence: int | None,
) -> Response | SettlementLinePage:
    if format == "csv":
        settlement.check_period(start, to)
        body = settlement.lines_csv(
            context,
            partner,
            repository.ALL_PERIOD_LINES,
            partner["program_id"],
            partner["id"],
            start,
            to,
            chain_sequence,
        )
        return await _streamed(body)
    return await settlement.period_lines(
        context, partner, start, to, limit=limit, cursor=cursor, chain_sequence=chain_sequence
    )


async def _streamed(body: AsyncIterator[bytes]) -> StreamingResponse:
    """A CSV stream whose first row is read before the answer starts: a problem
    getting at the lines (no connection, say) is still a problem response."""
    first = await anext(body)

    async def rows() -> AsyncIterator[bytes]:
        yield first
        async for row in body:
            yield row

    return StreamingResponse(rows(), media_type="text/csv")


@admin_router.post(
    "/{code}/statements",
    status_code=201,
    response_model=StatementOut,
    operation_id="closePartnerStatement",
    responses=error_responses(*_PARTNER_ERRORS, settlement.PeriodClosed),
)
async def close_partner_statement(
    code: CodePath, body: StatementIn, context: Context, principal: Admin
) -> StatementOut:
    """Close the period since the previous statement (or the partner's creation) up to
    `period_end` into an immutable statement. An entry recorded after a period closed
    (or not yet chained when it closed) lands in the next one."""
    partner = await _partner(context, principal, code)
    row = await settlement.close(context.db, partner, body.period_end, context.clock.now())
    return settlement.statement_out(row)


@admin_router.post(
    "/{code}/statements/{statement_id}/payment",
    status_code=201,
    response_model=PaymentOut,
    operation_id="payPartnerStatement",
    responses=error_responses(
        *_PARTNER_ERRORS,
        settlement.StatementNotFound,
        settlement.StatementPaid,
        settlement.PartnerNotPostpaid,
    ),
)
async def pay_partner_statement(
    code: CodePath, statement_id: IdPath, body: PaymentIn, context: Context, principal: Admin
) -> PaymentOut:
    """Record that a postpaid partner paid a statement: the points it gave out on
    credit in that period (earn, their refunds, conversions in) stop counting against
    its credit limit. Once per statement (again: 409 `statement_paid`)."""
    partner = await _partner(context, principal, code)
    return await settlement.pay(context.db, partner, statement_id, body.reference, context.clock.now())


@admin_router.get(
    "/{code}/statements",
    response_model=StatementPage,
    operation_id="listPartnerStatements",
    responses=error_responses(*_PARTNER_ERRORS, InvalidCursor),
)
async def list_partner_statements(
    code: CodePath, context: Context, principal: Admin, limit: Limit = 50, cursor: Cursor = None
) -> StatementPage:
    """The partner's closed statements, newest period first."""
    return await settlement.statements(
        context, await _partner(context, principal, code), limit=limit, cursor=cursor
    )


@admin_router.get(
    "/{code}/statements/{statement_id}",
    response_model=StatementOut,
    operation_id="getPartnerStatement",
    responses=error_responses(*_PARTNER_ERRORS, settlement.StatementNotFound),
)
async def get_partner_statement(
    code: CodePath, statement_id: IdPath, context: Context, principal: Admin
) -> StatementOut:
    """One closed statement."""
    partner = await _partner(context, principal, code)
    async with context.db.pool.acquire() as connection:
        return settlement.statement_out(await settlement.statement(connection, partner, statement_id))


@admin_router.get(
    "/{code}/statements/{statement_id}/lines",
    response_model=SettlementLinePage,
    operation_id="listPartnerStatementLines",
    responses={**error_responses(*_PARTNER_ERRORS, settlement.StatementNotFound, InvalidCursor), **CSV},
)
async def list_partner_statement_lines(
    code: CodePath,
    statement_id: IdPath,
    context: Context,
    principal: Admin,
    limit: Limit = 100,
    cursor: Cursor = None,
    format: Format = "json",
) -> Response | SettlementLinePage:
    """The lines a statement closed, in recorded order."""
    partner = await _partner(context, principal, code)
    return await _statement_lines(context, partner, statement_id, limit, cursor, format)


async def _statement_lines(
    context: AppContext,
    partner: asyncpg.Record,
    statement_id: uuid.UUID,
    limit: int,
    cursor: str | None,
    format: str,
) -> Response | SettlementLinePage:
    if format == "csv":
        async with context.db.pool.acquire() as connection:
            await settlement.statement(connection, partner, statement_id)
        body = settlement.lines_csv(
            context, partner, repository.ALL_STATEMENT_LINES, partner["program_id"], statement_id
        )
        return await _streamed(body)
    return await settlement.statement_lines(context, partner, statement_id, limit=limit, cursor=cursor)


# -- the partner's own systems ------------------------------------------------------------------

_PARTNER_KEY_ERRORS = (Forbidden, PartnerInactive, service.PartnerRoleNotAllowed)


@partner_router.post(
    "/orders",
    status_code=201,
    response_model=OrderResult,
    operation_id="createPartnerOrder",
    responses=error_responses(
        *_PARTNER_KEY_ERRORS,
        *_KEYED,
        MemberNotFound,
        orders.OrderExists,
        orders.PartnerNotEarning,
        orders.RateNotEffective,
        PartnerFundsInsufficient,
        PartnerCreditExceeded,
        CurrencyMismatch,
        PointsOutOfRange,
        MemberNotEligible,
        MemberClosed,
    ),
)
async def create_partner_order(
    http: Request, body: OrderIn, context: Context, key: IdempotencyKey, principal: PartnerEarner
) -> Response:
    """A purchase in the partner's shops: the same body and answer as `POST
    /v1/orders`. The points come from the rules' `partner_earn` section for this
    partner and are funded by the partner (422 `partner_funds_insufficient` when a
    prepaid partner's funding is short, `partner_credit_exceeded` past a postpaid
    partner's limit; nothing written). `order_id` is unique per partner."""
    partner = service.partner_orders(principal)
    result = await orders.place(context, keyed_request(http, principal, key, body), body, partner)
    return result.to_response()


@partner_router.post(
    "/orders/preview",
    response_model=OrderResult,
    operation_id="previewPartnerOrder",
    responses=error_responses(
        *_PARTNER_KEY_ERRORS, MemberNotFound, orders.PartnerNotEarning, CurrencyMismatch, PointsOutOfRange
    ),
)
async def preview_partner_order(body: OrderIn, context: Context, principal: PartnerEarner) -> OrderResult:
    """What the order would earn now; nothing is written."""
    return await orders.preview(context, principal.program_id, body, service.partner_orders(principal))


@partner_router.post(
    "/orders/{order_id}/refunds",
    status_code=201,
    response_model=RefundResult,
    operation_id="createPartnerOrderRefund",
    responses=error_responses(
        *_PARTNER_KEY_ERRORS,
        *_KEYED,
        orders.OrderNotFound,
        orders.RefundExists,
        orders.RefundExceedsOrder,
        CurrencyMismatch,
        MemberClosed,
    ),
)
async def create_partner_order_refund(
    http: Request,
    order_id: Annotated[ShortText, Path(description="the partner order's order_id", examples=["o-1001"])],
    body: RefundIn,
    context: Context,
    key: IdempotencyKey,
    principal: PartnerEarner,
) -> Response:
    """Like an order refund: the refunded part's points are taken back (pending first,
    then available) and returned to the partner's funding."""
    partner = service.partner_orders(principal)
    result = await orders.refund(context, keyed_request(http, principal, key, body), order_id, body, partner)
    return result.to_response()


@partner_router.post(
    "/redemptions",
    status_code=201,
    response_model=PartnerRedemptionOut,
    operation_id="createPartnerRedemption",
    responses=error_responses(
        *_PARTNER_KEY_ERRORS,
        *_KEYED,
        MemberNotFound,
        InsufficientPoints,
        orders.RateNotEffective,
        *REDEEM_LIMIT_ERRORS,
        MemberNotEligible,
        MemberClosed,
    ),
)
async def create_partner_redemption(
    http: Request,
    body: PartnerRedemptionIn,
    context: Context,
    key: IdempotencyKey,
    principal: PartnerRedeemer,
) -> Response:
    """A member spends available points with the partner (the rules' `redeem` limits
    apply); they go to the partner's payable, which the program settles at the
    partner's `redeem` rate."""
    result = await service.redeem(context, keyed_request(http, principal, key, body), body)
    return result.to_response()


@partner_router.get(
    "/redemptions/{redemption_id}",
    response_model=PartnerRedemptionOut,
    operation_id="getPartnerRedemption",
    responses=error_responses(*_PARTNER_KEY_ERRORS, service.RedemptionNotFound),
)
async def get_partner_redemption(
    redemption_id: IdPath, context: Context, principal: PartnerRedeemer
) -> PartnerRedemptionOut:
    """One of the partner's redemptions."""
    return await service.redemption(context, principal, redemption_id)


@partner_router.post(
    "/redemptions/{redemption_id}/reversal",
    status_code=201,
    response_model=PartnerRedemptionOut,
    operation_id="reversePartnerRedemption",
    responses=error_responses(
        *_PARTNER_KEY_ERRORS,
        *_KEYED,
        service.RedemptionNotFound,
        AlreadyReversed,
        EntryNotReversible,
        MemberClosed,
    ),
)
async def reverse_partner_redemption(
    http: Request,
    redemption_id: IdPath,
    context: Context,
    key: IdempotencyKey,
    principal: PartnerRedeemer,
    body: ReversalIn | None = None,
) -> Response:
    """Give a redemption's points back to the member's own lots, with their own
    expiry dates; once (again: 409 `already_reversed`). The body is optional."""
    body = body or ReversalIn()
    result = await service.reverse_redemption(
        context, keyed_request(http, principal, key, body), redemption_id, body
    )
    return result.to_response()


@partner_router.get(
    "/members/{member}",
    response_model=PartnerMemberOut,
    operation_id="getPartnerMember",
    responses=error_responses(*_PARTNER_KEY_ERRORS, MemberNotFound),
)
async def get_partner_member(
    member: MemberPath, context: Context, principal: PartnerRedeemer
) -> PartnerMemberOut:
    """What a partner's till needs: the member's available points and tier code."""
    return await service.member_view(context, principal, member)


@partner_router.post(
    "/conversions",
    status_code=201,
    response_model=ConversionOut,
    operation_id="createPartnerConversion",
    responses=error_responses(
        *_PARTNER_KEY_ERRORS,
        *_KEYED,
        MemberNotFound,
        orders.RateNotEffective,
        service.ConversionBelowMinimum,
        PartnerFundsInsufficient,
        PartnerCreditExceeded,
        PointsOutOfRange,
        MemberNotEligible,
        MemberClosed,
    ),
)
async def create_partner_conversion(
    http: Request, body: ConversionInIn, context: Context, key: IdempotencyKey, principal: PartnerConverter
) -> Response:
    """The partner's units become points for a member: `partner_units` divided by the
    `convert_in` rate, rounded down, funded by the partner like its orders."""
    result = await service.convert_in(context, keyed_request(http, principal, key, body), body)
    return result.to_response()


@partner_router.get(
    "/conversions/{conversion_id}",
    response_model=ConversionOut,
    operation_id="getPartnerConversion",
    responses=error_responses(*_PARTNER_KEY_ERRORS, service.ConversionNotFound),
)
async def get_partner_conversion(
    conversion_id: IdPath, context: Context, principal: PartnerConverter
) -> ConversionOut:
    """One conversion to or from the partner."""
    return await service.conversion(context, principal, conversion_id)


_DECIDE_ERRORS = (*_PARTNER_KEY_ERRORS, *_KEYED, service.ConversionNotFound, service.ConversionNotPending)


@partner_router.post(
    "/conversions/{conversion_id}/confirm",
    status_code=201,
    response_model=ConversionOut,
    operation_id="confirmPartnerConversion",
    responses=error_responses(*_DECIDE_ERRORS),
)
async def confirm_partner_conversion(
    http: Request,
    conversion_id: IdPath,
    context: Context,
    key: IdempotencyKey,
    principal: PartnerConverter,
    body: ConfirmIn | None = None,
) -> Response:
    """The partner credited the units: the held points are spent into its payable.
    The body is optional."""
    body = body or ConfirmIn()
    result = await service.confirm(context, keyed_request(http, principal, key, body), conversion_id)
    return result.to_response()


@partner_router.post(
    "/conversions/{conversion_id}/reject",
    status_code=201,
    response_model=ConversionOut,
    operation_id="rejectPartnerConversion",
    responses=error_responses(*_DECIDE_ERRORS),
)
async def reject_partner_conversion(
    http: Request,
    conversion_id: IdPath,
    body: RejectIn,
    context: Context,
    key: IdempotencyKey,
    principal: PartnerConverter,
) -> Response:
    """The partner refused it: the held points go back to the member."""
    result = await service.reject(context, keyed_request(http, principal, key, body), conversion_id, body)
    return result.to_response()


@partner_router.get(
    "/settlement",
    response_model=Settlement,
    response_model_by_alias=True,
    operation_id="getOwnSettlement",
    responses=error_responses(*_PARTNER_KEY_ERRORS),
)
async def get_own_settlement(
    start: From, to: To, context: Context, principal: PartnerReader, chain_sequence: Pin = None
) -> Settlement:
    """The partner's own settlement for [from, to), as the program sees it (with
    `chain_sequence`: pinned to that ledger head, the same whenever asked)."""
    return await settlement.settlement(
        context, principal.program_id, await _own(context, principal), start, to, chain_sequence
    )


@partner_router.get(
    "/settlement/lines",
    response_model=SettlementLinePage,
    operation_id="listOwnSettlementLines",
    responses={**error_responses(*_PARTNER_KEY_ERRORS, InvalidCursor), **CSV},
)
async def list_own_settlement_lines(
    start: From,
    to: To,
    context: Context,
    principal: PartnerReader,
    limit: Limit = 100,
    cursor: Cursor = None,
    format: Format = "json",
    chain_sequence: Pin = None,
) -> Response | SettlementLinePage:
    """The lines behind the partner's own settlement."""
    return await _lines(
        context, await _own(context, principal), start, to, limit, cursor, format, chain_sequence
    )


@partner_router.get(
    "/statements",
    response_model=StatementPage,
    operation_id="listOwnStatements",
    responses=error_responses(*_PARTNER_KEY_ERRORS, InvalidCursor),
)
async def list_own_statements(
    context: Context, principal: PartnerReader, limit: Limit = 50, cursor: Cursor = None
) -> StatementPage:
    """The partner's closed statements, newest period first."""
    return await settlement.statements(context, await _own(context, principal), limit=limit, cursor=cursor)


@partner_router.get(
    "/statements/{statement_id}",
    response_model=StatementOut,
    operation_id="getOwnStatement",
    responses=error_responses(*_PARTNER_KEY_ERRORS, settlement.StatementNotFound),
)
async def get_own_statement(statement_id: IdPath, context: Context, principal: PartnerReader) -> StatementOut:
    """One of the partner's closed statements."""
    partner = await _own(context, principal)
    async with context.db.pool.acquire() as connection:
        return settlement.statement_out(await settlement.statement(connection, partner, statement_id))


@partner_router.get(
    "/statements/{statement_id}/lines",
    response_model=SettlementLinePage,
    operation_id="listOwnStatementLines",
    responses={**error_responses(*_PARTNER_KEY_ERRORS, settlement.StatementNotFound, InvalidCursor), **CSV},
)
async def list_own_statement_lines(
    statement_id: IdPath,
    context: Context,
    principal: PartnerReader,
    limit: Limit = 100,
    cursor: Cursor = None,
    format: Format = "json",
) -> Response | SettlementLinePage:
    """The lines one of the partner's statements closed."""
    return await _statement_lines(
        context, await _own(context, principal), statement_id, limit, cursor, format
    )


# -- the program's app backend, for a member --------------------------------------------------


@member_router.post(
    "/{member}/donations",
    status_code=201,
    response_model=PartnerRedemptionOut,
    operation_id="createDonation",
    responses=error_responses(
        Forbidden,
        *_KEYED,
        MemberNotFound,
        service.PartnerNotFound,
        PartnerInactive,
        service.PartnerRoleNotAllowed,
        orders.RateNotEffective,
        InsufficientPoints,
        *REDEEM_LIMIT_ERRORS,
        MemberNotEligible,
        MemberClosed,
    ),
)
async def create_donation(
    http: Request,
    member: MemberPath,
    body: DonationIn,
    context: Context,
    key: IdempotencyKey,
    principal: Burner,
) -> Response:
    """Give a member's points to a charity partner (one with the `donation` role): a
    redemption whose value, at the charity's `redeem` rate, the program owes it."""
    result = await service.donate(context, keyed_request(http, principal, key, body), member, body)
    return result.to_response()


@member_router.post(
    "/{member}/conversions",
    status_code=201,
    response_model=ConversionOut,
    operation_id="createConversion",
    responses=error_responses(
        Forbidden,
        *_KEYED,
        MemberNotFound,
        service.PartnerNotFound,
        PartnerInactive,
        service.PartnerRoleNotAllowed,
        orders.RateNotEffective,
        service.ConversionBelowMinimum,
        service.ConversionNotInIncrements,
        InsufficientPoints,
        MemberNotEligible,
        MemberClosed,
    ),
)
async def create_conversion(
    http: Request,
    member: MemberPath,
    body: ConversionOutIn,
    context: Context,
    key: IdempotencyKey,
    principal: Burner,
) -> Response:
    """Convert a member's points to a partner's units (miles...): the points are held
    and the answer is `pending` with `partner_units` = points x the `convert_out`
    rate, rounded by its rule. The partner then confirms (points spent into its
    payable) or rejects (points released); one it leaves pending longer than
    LEDGER_CONVERSION_TIMEOUT_SECONDS is failed and released by the worker."""
    result = await service.convert_out(context, keyed_request(http, principal, key, body), member, body)
    return result.to_response()


@member_router.get(
    "/{member}/conversions",
    response_model=ConversionPage,
    operation_id="listMemberConversions",
    responses=error_responses(Forbidden, MemberNotFound, InvalidCursor),
)
async def list_member_conversions(
    member: MemberPath, context: Context, principal: Reader, limit: Limit = 50, cursor: Cursor = None
) -> ConversionPage:
    """A member's conversions, out and in, newest first."""
    return await service.member_conversions(context, principal, member, limit=limit, cursor=cursor)
