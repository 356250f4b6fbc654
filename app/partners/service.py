"""Partner brands: onboarding, rates, funding, and what members do with partners
(co-branded orders, redemptions at a partner, donations, conversions).

Every partner operation is one journal entry, posted by ledger_post() with the
entry's settlement line (app/partners/settlement.py reads them): points move
between the member's accounts and the partner's two (`partner_funding`,
`partner_payable`), and the partner's funding check is the database's, under the
partner's balance-row lock, so concurrent earns of a prepaid partner never take
its funding below zero."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import available_timezones

import asyncpg
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from uuid_utils.compat import uuid7

from app.auth.service import PartnerNotFound as PartnerNotFound
from app.context import AppContext
from app.db import Connection, Database
from app.errors import AppError, Forbidden, NotFound, ValidationFailed
from app.fields import LATEST, MAX_POINTS
from app.idempotency import KeyedRequest, StoredResponse
from app.ledger import accounts, posting
from app.ledger import service as ledger
from app.ledger.entries import EntryKind, Leg, PartnerLine
from app.ledger.errors import (
    AlreadyReversed,
    CurrencyMismatch,
    EntryNotReversible,
    MemberNotFound,
    PointsOutOfRange,
)
from app.ledger.jobs import run_batches
from app.orders.service import PartnerOrders, RateNotEffective
from app.outbox import emit
from app.pagination import InvalidCursor
from app.partners import repository
from app.partners.schemas import (
    ConversionInIn,
    ConversionOut,
    ConversionOutIn,
    ConversionPage,
    ConversionRate,
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
    RateIn,
    RateOut,
    RatePage,
    RatesInForce,
    RejectIn,
    ReversalIn,
)
from app.principal import PartnerInactive, Principal
from app.rules.lifecycle import lot_expiry


class PartnerExists(AppError):
    status, code, title = 409, "partner_exists", "A partner with this code already exists"


class RateExists(AppError):
    status, code, title = 409, "rate_exists", "A rate of this kind already starts at this instant"


class PartnerRoleNotAllowed(AppError):
    status, code, title = 403, "partner_role_not_allowed", "The partner's agreement does not allow this"


class PartnerNotPrepaid(AppError):
    status, code, title = 422, "partner_not_prepaid", "Only a prepaid partner buys points in advance"


class RedemptionNotFound(NotFound):
    code, title = "redemption_not_found", "Partner redemption not found"


class ConversionNotFound(NotFound):
    code, title = "conversion_not_found", "Conversion not found"


class ConversionNotPending(AppError):
    status, code, title = (
        409,
        "conversion_not_pending",
        "The conversion was already confirmed, rejected or failed",
    )


class ConversionBelowMinimum(AppError):
    status, code, title = 422, "conversion_below_minimum", "Fewer points than the rate converts at once"


class ReferenceExists(AppError):
    status, code, title = 409, "reference_exists", "The partner already used this reference"


class ConversionNotInIncrements(AppError):
    status, code, title = (
        422,
        "conversion_not_in_increments",
        "Points must be converted in the rate's increments",
    )


_TIMEZONES = frozenset(available_timezones())
_ROUNDING = {"floor": ROUND_FLOOR, "half_up": ROUND_HALF_UP, "ceil": ROUND_CEILING}


def partner_out(row: asyncpg.Record) -> PartnerOut:
    return PartnerOut(
        code=row["code"],
        name=row["name"],
        roles=row["roles"],
        billing=row["billing"],
        currency=row["currency"],
        credit_limit_points=row["credit_limit_points"],
        paid_points=row["paid_points"],
        timezone=row["timezone"],
        settlement_period=row["settlement_period"],
        status=row["status"],
        funding_points=int(row["funding_points"] or 0),
        payable_points=int(row["payable_points"] or 0),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def rate_out(row: asyncpg.Record) -> RateOut:
    return RateOut(
        id=row["id"],
        kind=row["kind"],
        effective_from=row["effective_from"],
        price_per_point=row["price_per_point"],
        partner_units_per_point=row["partner_units_per_point"],
        min_points=row["min_points"],
        increment=row["increment"],
        rounding=row["rounding"],
        created_at=row["created_at"],
    )


# -- the program's side (admin) ----------------------------------------------------------------


async def create(context: AppContext, principal: Principal, body: PartnerCreate) -> PartnerOut:
    if body.timezone not in _TIMEZONES:
        raise ValidationFailed.on("body.timezone", "must be an IANA timezone such as Europe/Berlin")
    now = context.clock.now()
    async with context.db.pool.acquire() as connection, connection.transaction():
        partner_id = await repository.insert_partner(connection, principal.program_id, body.model_dump(), now)
        if partner_id is None:
            raise PartnerExists(f"partner {body.code} already exists in this program")
        await accounts.open_partner_accounts(connection, principal.program_id, partner_id)
        await repository.spread(connection, principal.program_id, partner_id)
        row = await repository.partner_by_id(connection, principal.program_id, partner_id)
    assert row is not None
    return partner_out(row)


async def find(connection: Connection, program_id: int, code: str) -> asyncpg.Record:
    """The program's partner `code`; 404 `partner_not_found`."""
    row = await repository.partner(connection, program_id, code)
    if row is None:
        raise PartnerNotFound(f"no partner {code} in this program")
    return row


async def get(context: AppContext, principal: Principal, code: str) -> PartnerOut:
    async with context.db.pool.acquire() as connection:
        return partner_out(await find(connection, principal.program_id, code))


async def page(context: AppContext, principal: Principal, *, limit: int, cursor: str | None) -> PartnerPage:
    list_id = f"partners:{principal.program_id}"
    after = ""
    if cursor is not None:
        (after,) = context.cursors.read(list_id, cursor)
    async with context.db.pool.acquire() as connection:
        rows = await repository.partners(connection, principal.program_id, after, limit + 1)
    items = rows[:limit]
    next_cursor = context.cursors.issue(list_id, items[-1]["code"]) if len(rows) > limit else None
    return PartnerPage(items=[partner_out(row) for row in items], next_cursor=next_cursor)


async def update(context: AppContext, principal: Principal, code: str, body: PartnerUpdate) -> PartnerOut:
    now = context.clock.now()
    fields = body.model_fields_set
    async with context.db.pool.acquire() as connection, connection.transaction():
        current = await find(connection, principal.program_id, code)
        if "credit_limit_points" in fields and current["billing"] != "postpaid":
            raise ValidationFailed.on(
                "body.credit_limit_points", "only a postpaid partner has a credit limit"
            )
        if "status" in fields and body.status is None:
            raise ValidationFailed.on("body.status", "must be active or suspended")
        if "name" in fields and body.name is None:
            raise ValidationFailed.on("body.name", "must not be null")
        await repository.update_partner(
            connection,
            principal.program_id,
            code,
            name=body.name,
            status=body.status,
            set_limit="credit_limit_points" in fields,
            credit_limit_points=body.credit_limit_points,
            now=now,
        )
        if "credit_limit_points" in fields:  # the slots' share of the new floor
            await repository.spread(connection, principal.program_id, current["id"])
        row = await find(connection, principal.program_id, code)
    # A suspension reaches every process's key cache through the partner_status_changed
    # trigger's NOTIFY; this process forgets its own at once.
    context.auth.forget()
    return partner_out(row)


async def add_rate(context: AppContext, principal: Principal, code: str, body: RateIn) -> RateOut:
    now = context.clock.now()
    effective_from = now if body.effective_from is None else body.effective_from
    if effective_from < now:
        raise ValidationFailed.on(
            "body.effective_from",
            "must not be in the past: a new rate never reprices what was already recorded",
        )
    async with context.db.pool.acquire() as connection, connection.transaction():
        partner = await find(connection, principal.program_id, code)
        fields = {**body.model_dump(), "effective_from": effective_from}
        row = await repository.insert_rate(connection, principal.program_id, partner["id"], fields, now)
    if row is None:
        raise RateExists(f"partner {code} already has a {body.kind} rate from {effective_from.isoformat()}")
    return rate_out(row)


async def rates(
    context: AppContext, principal: Principal, code: str, at: datetime | None
) -> RatesInForce | RatePage:
    async with context.db.pool.acquire() as connection:
        partner = await find(connection, principal.program_id, code)
        if at is None:
            return RatePage(
                items=[
                    rate_out(row)
                    for row in await repository.rates(connection, principal.program_id, partner["id"])
                ]
            )
        rows = await repository.rates_at(connection, principal.program_id, partner["id"], at)
    return RatesInForce(at=at, rates=[rate_out(row) for row in rows])


async def fund(context: AppContext, request: KeyedRequest, code: str, body: FundingIn) -> StoredResponse:
    """Points a prepaid partner bought: one `funding` entry from issuance to its funding."""
    now = context.clock.now()

    async def work(connection: Connection) -> StoredResponse:
        async with connection.transaction():
            found = await posting.stored(connection, request)
            if found is not None:
                return found
            partner = await find(connection, request.principal.program_id, code)
            # the balance row's lock first: the answer's funding is the one right after it
            funding = await repository.lock_balance(connection, request.principal.program_id, partner["id"])
            if partner["billing"] != "prepaid":
                raise PartnerNotPrepaid(
                    f"partner {code} is postpaid: it is billed for the points it gives out"
                )
            if body.price.currency != partner["currency"]:
                raise CurrencyMismatch(f"partner {code} settles in {partner['currency']}")
            if funding + body.points > MAX_POINTS:
                raise PointsOutOfRange(f"partner {code}'s funding would pass {MAX_POINTS} points")
            entry_id = uuid7()
            out = FundingOut(
                entry_id=entry_id,
                partner=code,
                points=body.points,
                price=body.price,
                reference=body.reference,
                funding_points=funding + body.points,
                recorded_at=now,
            )
            return await posting.post_in_transaction(
                connection,
                request,
                "funding",
                [
                    Leg(None, "issuance", -body.points),
                    Leg(None, "partner_funding", body.points, partner=partner["id"]),
                ],
                now,
                response_body=out.model_dump_json().encode(),
                replay_ok=True,
                entry_id=entry_id,
                reason=f"funding {body.reference}",
                partner_line=PartnerLine(partner["id"], "funding", body.points, price=body.price.amount),
            )

    return await context.db.call(work)


# -- the partner's side (partner keys) --------------------------------------------------------


def require_role(principal: Principal, role: str) -> tuple[int, str]:
    """A partner key's partner, which must have `role` in its agreement: (id, code)."""
    if principal.partner_id is None or principal.partner_code is None:
        raise Forbidden("the /v1/partner/ endpoints are called with a partner's key")
    if role not in principal.partner_roles:
        raise PartnerRoleNotAllowed(f"partner {principal.partner_code}'s agreement has no {role} role")
    return principal.partner_id, principal.partner_code


def partner_orders(principal: Principal) -> PartnerOrders:
    """The partner a partner key acts for, as the orders domain takes it."""
    partner_id, code = require_role(principal, "earn")
    return PartnerOrders(partner_id, code, priced=principal.partner_billing == "postpaid")


async def _active_partner(connection: Connection, program_id: int, code: str, role: str) -> asyncpg.Record:
    """A partner named in a program key's request: it exists, is active and has `role`."""
    partner = await find(connection, program_id, code)
    if partner["status"] != "active":
        raise PartnerInactive(f"partner {code} is suspended")
    if role not in partner["roles"]:
        raise PartnerRoleNotAllowed(f"partner {code}'s agreement has no {role} role")
    return partner


async def _rate(
    connection: Connection, program_id: int, partner_id: int, code: str, kind: str, at: datetime
) -> asyncpg.Record:
    row = await repository.rate_at(connection, program_id, partner_id, kind, at)
    if row is None:
        raise RateNotEffective(f"partner {code} has no {kind} rate in force at {at.isoformat()}")
    return row


async def member_view(context: AppContext, principal: Principal, member: str) -> PartnerMemberOut:
    async with context.db.pool.acquire() as connection:
        row = await repository.member_view(connection, principal.program_id, member)
    if row is None:
        raise MemberNotFound(f"no member {member} in this program")
    return PartnerMemberOut(member=row["member"], available_points=row["available"], tier=row["tier"])


def _redemption_out(row: asyncpg.Record | dict[str, Any]) -> PartnerRedemptionOut:
    return PartnerRedemptionOut(
        id=row["id"],
        partner=row["partner"],
        member=row["member"],
        points=row["points"],
        reference=row["reference"],
        donation=row["donation"],
        status="reversed" if row["reversal_entry_id"] is not None else "completed",
        created_at=row["created_at"],
        reversed_at=row["reversed_at"],
        reversal_entry_id=row["reversal_entry_id"],
    )


async def _spend_with_partner(
    context: AppContext,
    request: KeyedRequest,
    role: str | None,
    *,
    code: str,
    member: str,
    points: int,
    reference: str | None,
    donation: bool,
    check: Any,
) -> StoredResponse:
    """A member's points into the partner's payable: a partner redemption (for the
    partner key's own partner: `role` None), or a donation (to a partner named by the
    program's key, which must be active and have `role`)."""
    now = context.clock.now()
    program_id = request.principal.program_id

    async def work(connection: Connection) -> StoredResponse:
        async with connection.transaction():
            found = await posting.stored(connection, request)
            if found is not None:  # a retry: its checks held when it was first made
                return found
            if role is None:  # the partner key's own partner: its key was checked
                payee = await find(connection, program_id, code)
            else:  # a partner the program's key names: after the replay lookup above
                payee = await _active_partner(connection, program_id, code, role)
            rules_version, rules = await context.rules.active(connection, program_id)
            check(rules)
            rate = await _rate(connection, program_id, payee["id"], code, "redeem", now)
            entry_id = uuid7()
            out = _redemption_out(
                {
                    "id": entry_id,
                    "partner": code,
                    "member": member,
                    "points": points,
                    "reference": reference,
                    "donation": donation,
                    "created_at": now,
                    "reversed_at": None,
                    "reversal_entry_id": None,
                }
            )
            section = "donations" if donation else "redemptions"
            kind: EntryKind = "donation" if donation else "redemption"
            response = await posting.post_in_transaction(
                connection,
                request,
                kind,
                [
                    Leg(member, "available", -points),
                    Leg(None, "partner_payable", points, partner=payee["id"]),
                ],
                now,
                response_body=out.model_dump_json().encode(),
                replay_ok=True,
                entry_id=entry_id,
                rules_version=rules_version,
                reason=f"donation to {code}" if donation else f"spent with {code}: {reference}",
                partner_line=PartnerLine(
                    payee["id"], section, points, rate_id=rate["id"], price_per_point=rate["price_per_point"]
                ),
            )
            if not response.replayed:
                await _once_per_reference(
                    repository.insert_redemption(
                        connection,
                        redemption_id=entry_id,
                        program_id=program_id,
                        partner_id=payee["id"],
                        member=member,
                        points=points,
                        reference=reference,
                        donation=donation,
                        now=now,
                    ),
                    code,
                    reference,
                )
            return response

    return await context.db.call(work)


async def _once_per_reference(insert: Awaitable[None], code: str, reference: str | None) -> None:
    """Record a partner's operation under its own reference, once: a second one with
    the same reference (a retry under a new Idempotency-Key) is refused, and its
    transaction, entry included, rolls back."""
    try:
        await insert
    except asyncpg.UniqueViolationError as exc:
        raise ReferenceExists(
            f"partner {code} already used reference {reference}; retry with the first Idempotency-Key "
            "to get its answer"
        ) from exc


async def redeem(context: AppContext, request: KeyedRequest, body: PartnerRedemptionIn) -> StoredResponse:
    """POST /v1/partner/redemptions: a member spends points with the key's partner."""
    principal = request.principal
    _, code = require_role(principal, "redeem")

    def check(rules: Any) -> None:
        ledger.check_redeem_limits(rules, body.points, body.order_total)

    return await _spend_with_partner(
        context,
        request,
        None,
        code=code,
        member=body.member,
        points=body.points,
        reference=body.reference,
        donation=False,
        check=check,
    )


async def donate(context: AppContext, request: KeyedRequest, member: str, body: DonationIn) -> StoredResponse:
    """POST /v1/members/{id}/donations: points given to a charity partner."""

    def check(rules: Any) -> None:
        ledger.check_redeem_limits(rules, body.points, None)

    return await _spend_with_partner(
        context,
        request,
        "donation",
        code=body.partner,
        member=member,
        points=body.points,
        reference=None,
        donation=True,
        check=check,
    )


async def reverse_redemption(
    context: AppContext, request: KeyedRequest, redemption_id: uuid.UUID, body: ReversalIn
) -> StoredResponse:
    """POST /v1/partner/redemptions/{id}/reversal: the points back to the member's own
    lots, once; the line undoes the redemption's at its price."""
    principal = request.principal
    partner_id, code = require_role(principal, "redeem")
    now = context.clock.now()

    async def work(connection: Connection) -> StoredResponse:
        async with connection.transaction():
            row = await repository.redemption(
                connection, principal.program_id, redemption_id, partner_id, lock=True
            )
            if row is None:
                raise RedemptionNotFound(f"no redemption {redemption_id} with this partner")
            found = await posting.stored(connection, request)
            if found is not None:
                return found
            if row["donation"]:
                raise EntryNotReversible("a donation is not reversed by the charity partner")
            if row["reversal_entry_id"] is not None:
                raise AlreadyReversed(
                    f"redemption {redemption_id} was reversed at {row['reversed_at'].isoformat()}"
                )
            entry_id = uuid7()
            out = _redemption_out({**dict(row.items()), "reversal_entry_id": entry_id, "reversed_at": now})
            response = await posting.post_in_transaction(
                connection,
                request,
                "reversal",
                [
                    Leg(None, "partner_payable", -row["points"], partner=partner_id),
                    Leg(row["member"], "available", row["points"]),
                ],
                now,
                response_body=out.model_dump_json().encode(),
                entry_id=entry_id,
                reverses=redemption_id,
                reason=body.reason or f"redemption with {code} reversed",
                partner_line=PartnerLine(
                    partner_id,
                    "redemption_reversals",
                    -row["points"],
                    rate_id=row["rate_id"],
                    price_per_point=row["price_per_point"],
                    undoes=redemption_id,
                ),
            )
            await repository.reverse_redemption(
                connection, principal.program_id, redemption_id, entry_id, now
            )
            return response

    return await context.db.call(work)


async def redemption(
    context: AppContext, principal: Principal, redemption_id: uuid.UUID
) -> PartnerRedemptionOut:
    partner_id, _ = require_role(principal, "redeem")
    async with context.db.pool.acquire() as connection:
        row = await repository.redemption(connection, principal.program_id, redemption_id, partner_id)
    if row is None:
        raise RedemptionNotFound(f"no redemption {redemption_id} with this partner")
    return _redemption_out(row)


# -- conversions --------------------------------------------------------------------------------


def _conversion_out(row: asyncpg.Record | dict[str, Any]) -> ConversionOut:
    return ConversionOut(
        id=row["id"],
        direction=row["direction"],
        status=row["status"],
        partner=row["partner"],
        member=row["member"],
        points=row["points"],
        partner_units=row["partner_units"],
        rate=ConversionRate(
            id=row["rate_id"],
            partner_units_per_point=row["partner_units_per_point"],
            rounding=row["rounding"],
        ),
        partner_member_id=row["partner_member_id"],
        reference=row["reference"],
        reason=row["reason"],
        created_at=row["created_at"],
        closed_at=row["closed_at"],
    )


def partner_units(points: int, rate: asyncpg.Record) -> int:
    """Partner units for `points` at a convert_out rate, rounded by the rate's rule."""
    exact = Decimal(points) * rate["partner_units_per_point"]
    return int(exact.to_integral_value(rounding=_ROUNDING[rate["rounding"]]))


def _check_conversion(points: int, rate: asyncpg.Record) -> int:
    minimum = rate["min_points"]
    if minimum is not None and points < minimum:
        raise ConversionBelowMinimum(f"the rate converts at least {minimum} points at once")
    increment = rate["increment"]
    if increment is not None and points % increment:
        raise ConversionNotInIncrements(f"the rate converts points in multiples of {increment}")
    units = partner_units(points, rate)
    if units > MAX_POINTS:
        raise PointsOutOfRange(f"{points} points are worth more partner units than the service counts")
    if units < 1:
        raise ConversionBelowMinimum(f"{points} points are worth less than one of the partner's units")
    return units


async def _conversion_event(
    connection: Connection, row: asyncpg.Record | dict[str, Any], type_: str, now: datetime
) -> None:
    out = _conversion_out(row)
    await emit(
        connection,
        row["program_id"],
        type_,
        out.model_dump(mode="json"),
        occurred_at=now,
        now=now,
        members=[row["member_id"]],
    )


async def convert_out(
    context: AppContext, request: KeyedRequest, member: str, body: ConversionOutIn
) -> StoredResponse:
    """POST /v1/members/{id}/conversions: hold the points; the partner confirms or rejects."""
    now = context.clock.now()
    program_id = request.principal.program_id

    async def work(connection: Connection) -> StoredResponse:
        async with connection.transaction():
            found = await posting.stored(connection, request)
            if found is not None:
                return found
            partner = await _active_partner(connection, program_id, body.partner, "convert_out")
            rate = await _rate(connection, program_id, partner["id"], body.partner, "convert_out", now)
            units = _check_conversion(body.points, rate)
            conversion_id = uuid7()
            fields: dict[str, Any] = {
                "id": conversion_id,
                "program_id": program_id,
                "partner_id": partner["id"],
                "partner": body.partner,
                "member": member,
                "direction": "out",
                "status": "pending",
                "points": body.points,
                "partner_units": units,
                "rate_id": rate["id"],
                "partner_units_per_point": rate["partner_units_per_point"],
                "rounding": rate["rounding"],
                "partner_member_id": body.partner_member_id,
                "reference": None,
                "reason": None,
                "created_at": now,
                "closed_at": None,
            }
            response = await posting.post_in_transaction(
                connection,
                request,
                "hold",
                [Leg(member, "available", -body.points), Leg(member, "held", body.points)],
                now,
                response_body=_conversion_out(fields).model_dump_json().encode(),
                replay_ok=True,
                entry_id=conversion_id,
                reason=f"conversion to {body.partner} requested",
            )
            if not response.replayed:
                await repository.insert_conversion(connection, fields)
                row = await repository.conversion(connection, program_id, conversion_id, partner["id"])
                assert row is not None
                await _conversion_event(connection, row, "conversion.requested", now)
            return response

    return await context.db.call(work)


async def _close_conversion(
    connection: Connection,
    row: asyncpg.Record,
    *,
    status: str,
    reason: str | None,
    now: datetime,
    request: KeyedRequest | None,
) -> StoredResponse | None:
    """Capture (confirmed) or release (rejected, failed) a pending conversion's points."""
    entry_id = uuid7()
    captured = status == "confirmed"
    if captured:
        legs = [
            Leg(row["member"], "held", -row["points"]),
            Leg(None, "partner_payable", row["points"], partner=row["partner_id"]),
        ]
        line = PartnerLine(
            row["partner_id"],
            "conversions_out",
            row["points"],
            rate_id=row["rate_id"],
            price_per_point=row["price_per_point"],
        )
    else:
        legs = [Leg(row["member"], "held", -row["points"]), Leg(row["member"], "available", row["points"])]
        line = None
    closed = {**dict(row.items()), "status": status, "reason": reason, "closed_at": now}
    body = _conversion_out(closed).model_dump_json().encode()
    kind: EntryKind = "capture" if captured else "release"
    why = f"conversion to {row['partner']} {status}" + (f": {reason}" if reason else "")
    response: StoredResponse | None = None
    if request is not None:
        response = await posting.post_in_transaction(
            connection,
            request,
            kind,
            legs,
            now,
            response_body=body,
            entry_id=entry_id,
            source_entry_id=row["id"],
            reason=why,
            partner_line=line,
        )
    else:
        entry = posting.job_entry(
            "fail-conversions",
            row["id"],
            program_id=row["program_id"],
            kind=kind,
            occurred_at=now,
            now=now,
            legs=tuple(legs),
            reason=why,
            source_entry_id=row["id"],
        )
        entry_id = entry.id
        await posting.post_job_entry(connection, entry, body)
    await repository.close_conversion(
        connection, row["program_id"], row["id"], status=status, reason=reason, now=now, entry_id=entry_id
    )
    await _conversion_event(connection, closed, f"conversion.{status}", now)
    return response


async def _decide(
    context: AppContext, request: KeyedRequest, conversion_id: uuid.UUID, *, status: str, reason: str | None
) -> StoredResponse:
    principal = request.principal
    partner_id, _ = require_role(principal, "convert_out")
    now = context.clock.now()

    async def work(connection: Connection) -> StoredResponse:
        async with connection.transaction():
            row = await repository.conversion(
                connection, principal.program_id, conversion_id, partner_id, lock=True
            )
            if row is None or row["direction"] != "out":
                raise ConversionNotFound(f"no conversion {conversion_id} to this partner")
            found = await posting.stored(connection, request)
            if found is not None:
                return found
            if row["status"] != "pending":
                raise ConversionNotPending(f"conversion {conversion_id} is {row['status']}")
            response = await _close_conversion(
                connection, row, status=status, reason=reason, now=now, request=request
            )
            assert response is not None
            return response

    return await context.db.call(work)


async def confirm(context: AppContext, request: KeyedRequest, conversion_id: uuid.UUID) -> StoredResponse:
    return await _decide(context, request, conversion_id, status="confirmed", reason=None)


async def reject(
    context: AppContext, request: KeyedRequest, conversion_id: uuid.UUID, body: RejectIn
) -> StoredResponse:
    return await _decide(context, request, conversion_id, status="rejected", reason=body.reason)


async def convert_in(context: AppContext, request: KeyedRequest, body: ConversionInIn) -> StoredResponse:
    """POST /v1/partner/conversions: the partner's units become points, rounded down,
    funded by the partner like its co-branded orders."""
    principal = request.principal
    partner_id, code = require_role(principal, "convert_in")
    now = context.clock.now()
    program_id = principal.program_id

    async def work(connection: Connection) -> StoredResponse:
        async with connection.transaction():
            found = await posting.stored(connection, request)
            if found is not None:
                return found
            rate = await _rate(connection, program_id, partner_id, code, "convert_in", now)
            points = int(
                (Decimal(body.partner_units) / rate["partner_units_per_point"]).to_integral_value(ROUND_FLOOR)
            )
            if points < 1:
                raise ConversionBelowMinimum(f"{body.partner_units} units are worth less than one point")
            if points > MAX_POINTS:
                raise PointsOutOfRange(
                    f"{body.partner_units} units are worth more points than a balance holds"
                )
            rules_version, rules = await context.rules.active(connection, program_id)
            conversion_id = uuid7()
            fields: dict[str, Any] = {
                "id": conversion_id,
                "program_id": program_id,
                "partner_id": partner_id,
                "partner": code,
                "member": body.member,
                "direction": "in",
                "status": "completed",
                "points": points,
                "partner_units": body.partner_units,
                "rate_id": rate["id"],
                "partner_units_per_point": rate["partner_units_per_point"],
                "rounding": "floor",
                "partner_member_id": None,
                "reference": body.reference,
                "reason": None,
                "created_at": now,
                "closed_at": now,
            }
            priced = principal.partner_billing == "postpaid"
            response = await posting.post_in_transaction(
                connection,
                request,
                "conversion",
                [
                    Leg(body.member, "available", points),
                    Leg(None, "partner_funding", -points, partner=partner_id),
                ],
                now,
                response_body=_conversion_out(fields).model_dump_json().encode(),
                replay_ok=True,
                entry_id=conversion_id,
                rules_version=rules_version,
                expires_at=lot_expiry(rules, now),
                reason=f"converted from {code}: {body.reference}",
                partner_line=PartnerLine(
                    partner_id,
                    "conversions_in",
                    points,
                    rate_id=rate["id"],
                    price_per_point=rate["price_per_point"] if priced else None,
                ),
            )
            if not response.replayed:
                await _once_per_reference(
                    repository.insert_conversion(connection, fields), code, body.reference
                )
            return response

    return await context.db.call(work)


async def member_conversions(
    context: AppContext, principal: Principal, member: str, *, limit: int, cursor: str | None
) -> ConversionPage:
    async with context.db.pool.acquire() as connection:
        member_id = await ledger.internal_member_id(connection, principal.program_id, member)
        list_id = f"member-conversions:{member_id}"
        before: tuple[datetime, uuid.UUID] = (LATEST, uuid.UUID(int=2**128 - 1))
        if cursor is not None:
            created, conversion_id = context.cursors.read(list_id, cursor)
            try:
                before = (datetime.fromisoformat(created), uuid.UUID(conversion_id))
            except (TypeError, ValueError):
                raise InvalidCursor("this cursor was not issued for this list") from None
        rows = await repository.member_conversions(
            connection, principal.program_id, member_id, before, limit + 1
        )
    items = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = context.cursors.issue(
            list_id, items[-1]["created_at"].isoformat(), str(items[-1]["id"])
        )
    return ConversionPage(items=[_conversion_out(row) for row in items], next_cursor=next_cursor)


async def conversion(context: AppContext, principal: Principal, conversion_id: uuid.UUID) -> ConversionOut:
    if principal.partner_id is None:
        raise Forbidden("the /v1/partner/ endpoints are called with a partner's key")
    partner_id = principal.partner_id
    async with context.db.pool.acquire() as connection:
        row = await repository.conversion(connection, principal.program_id, conversion_id, partner_id)
    if row is None:
        raise ConversionNotFound(f"no conversion {conversion_id} with this partner")
    return _conversion_out(row)


async def fail_conversions(
    db: Database,
    *,
    program_id: int | None,
    timeout_seconds: float,
    as_of: datetime,
    now: datetime,
    batch: int = 200,
) -> tuple[int, int]:
    """Fail and release every pending conversion requested more than
    `timeout_seconds` before `as_of` (job `fail-conversions`): (conversions, points)."""
    cutoff = as_of.astimezone(UTC).timestamp() - timeout_seconds
    requested_before = datetime.fromtimestamp(cutoff, UTC)

    async def work(connection: Connection) -> list[asyncpg.Record]:
        async with connection.transaction():
            due = await repository.due_conversions(connection, requested_before, batch, program_id)
            for row in sorted(due, key=lambda row: row["member_id"]):
                await _close_conversion(
                    connection,
                    row,
                    status="failed",
                    reason="the partner did not answer in time",
                    now=now,
                    request=None,
                )
            return due

    return await run_batches(db, work, "release", "points", None)


class _Families:
    """A collector answering metric families read once (for one scrape)."""

    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self.families = families

    def collect(self) -> list[GaugeMetricFamily]:
        return self.families


async def balance_metrics(db: Database) -> bytes:
    """Each partner's funding and payable points, for /metrics: read from the
    database at scrape time (the same figures whichever process answers)."""
    async with db.pool.acquire() as connection:
        rows = await repository.balances(connection)
    funding = GaugeMetricFamily(
        "points_ledger_partner_funding_points",
        "points a partner has paid for and not given out (below zero: given out on credit)",
        labels=("program", "partner"),
    )
    payable = GaugeMetricFamily(
        "points_ledger_partner_payable_points",
        "points members spent with a partner, which the program owes it for",
        labels=("program", "partner"),
    )
    for row in rows:
        funding.add_metric((row["program"], row["partner"]), float(row["funding"]))
        payable.add_metric((row["program"], row["partner"]), float(row["payable"]))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families([funding, payable]))
    return generate_latest(registry)
