"""Where an order earns, and where a refund takes points back.

An order: one read of the member's facts, the rules module's computation, one call
to ledger_post_order() that records the order and posts its points (or finds the
order already there, or finds the member changed meanwhile, and then everything is
read and computed again). Two round trips on the checkout's hot path.

A refund: one transaction that locks the order, computes what the refunded part
earned (app.rules.refunds), takes it back from the order's pending points first,
then from available points, and records any shortfall or debt.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Literal

import asyncpg
from uuid_utils.compat import uuid7

from app.budgets import service as budgets
from app.context import AppContext
from app.db import PRIMARY, Connection, ReadFrom
from app.errors import AppError, NotFound, ServiceUnavailable, ValidationFailed
from app.fields import LATEST, Money, money
from app.idempotency import KeyedRequest, StoredResponse
from app.ledger import posting
from app.ledger import service as ledger
from app.ledger.entries import Leg, MemberAccount, PartnerLine
from app.ledger.errors import (
    EARN_REFUSED,
    CurrencyMismatch,
    MemberNotFound,
    PointsOutOfRange,
    as_app_error,
    status_refusal,
)
from app.orders import repository
from app.orders.repository import MemberFacts, NewOrder, NewRefund
from app.orders.schemas import (
    BreakdownLine,
    OrderIn,
    OrderLineIn,
    OrderOut,
    OrderPage,
    OrderRefundOut,
    OrderResult,
    RefundIn,
    RefundResult,
)
from app.principal import Principal
from app.rules import (
    OrderEarning,
    OrderFacts,
    OrderLine,
    RefundLine,
    RefundState,
    RulesDocument,
    RulesError,
    Segment,
    earn_order,
    refund_amount,
    refund_lines,
)
from app.rules.budgets import (
    budget_limits,
    charge_from_json,
    charge_json,
    earn_within_budgets,
    exhausted_detail,
    given_back,
    section_path,
)
from app.rules.document import uses_referrals, uses_segments
from app.rules.earning import RuleRef, local_time
from app.rules.lifecycle import lot_expiry
from app.rules.tier_machine import TierDecision, Window, upgrade_windows
from app.rules.tiers import Activity
from app.tiers import service as tiers


class OrderExists(AppError):
    status, code, title = 409, "order_exists", "An order with this order_id already exists"


class OrderNotFound(NotFound):
    code, title = "order_not_found", "Order not found"


class RefundExists(AppError):
    status, code, title = 409, "refund_exists", "This order already has a refund with this refund_id"


class RefundExceedsOrder(AppError):
    status, code, title = 422, "refund_exceeds_order", "The refund exceeds what is left of the order"


class PartnerNotEarning(AppError):
    status, code, title = 422, "partner_not_earning", "The rules give this partner's orders no points"


class RateNotEffective(AppError):
    status, code, title = 422, "rate_not_effective", "No rate of this kind is in force for the partner"


@dataclass(frozen=True, slots=True)
class PartnerOrders:
    """Whose orders: a partner's co-branded ones (POST /v1/partner/orders) are
    earned by its `partner_earn` section and funded by its partner_funding account;
    a postpaid partner's points are priced at its earn rate in force."""

    partner_id: int
    code: str
    priced: bool


def rules_problem(error: RulesError) -> AppError:
    """The HTTP problem for a rules module refusal."""
    if error.field is not None and error.code == "validation_error":
        return ValidationFailed.on(error.field, error.message)
    kinds: dict[str, type[AppError]] = {
        "refund_exceeds_order": RefundExceedsOrder,
        "currency_mismatch": CurrencyMismatch,
        "points_out_of_range": PointsOutOfRange,
    }
    kind = kinds.get(error.code)
    if kind is None:
        raise error
    return kind(error.message)


def _order_facts(body: OrderIn, facts: MemberFacts, local_day: date) -> OrderFacts:
    return OrderFacts(
        total=body.total.amount,
        currency=body.total.currency,
        paid_at=body.paid_at,
        lines=tuple(
            OrderLine(line.sku, line.quantity, line.unit_price.amount, line.category)
            for line in body.lines or ()
        ),
        channel=body.channel,
        tier=facts.tier,  # as before this order: an upgrade it makes counts from the next
        segment=facts.segment,
        birthday=facts.birthday,
        first_order=not facts.has_orders,
        earned_today=facts.earned_by_day.get(local_day, 0),
    )


def _compute(
    rules: RulesDocument,
    body: OrderIn,
    facts: MemberFacts,
    partner: PartnerOrders | None = None,
    skip: Mapping[RuleRef, str] | None = None,
) -> tuple[OrderFacts, OrderEarning]:
    """The order's points; `skip`: budgeted rules their budget can't cover."""
    local_day = local_time(rules, body.paid_at).date()
    order_facts = _order_facts(body, facts, local_day)
    section = None
    if partner is not None:
        section = rules.partner_earn.get(partner.code)
        if section is None:
            raise PartnerNotEarning(f"the active rules have no partner_earn section for {partner.code}")
    try:
        return order_facts, earn_order(rules, order_facts, section=section, skip=skip)
    except RulesError as exc:
        raise rules_problem(exc) from exc


def _budget_path(partner: PartnerOrders | None) -> str:
    return section_path(None if partner is None else partner.code)


class _BudgetShort(Exception):
    """A rule of the order its budget could not cover; nothing was written."""

    def __init__(self, rule: RuleRef, detail: str) -> None:
        super().__init__(detail)
        self.rule = rule
        self.detail = detail


def _budget_short(
    exc: asyncpg.PostgresError, rules: RulesDocument, charges: list[dict[str, object]] | None
) -> _BudgetShort | None:
    short = budgets.exhausted(exc)
    if short is None:
        return None
    for charge in charges or ():
        if charge["budget"] == short.key:
            _, taken = charge_from_json(charge)
            limit = next((limit for limit in budget_limits(rules) if limit.key == short.key), None)
            per_member = None if limit is None else limit.per_member
            return _BudgetShort(taken.rule, exhausted_detail(short.scope, per_member))
    raise AssertionError(f"the database refused budget {short.key}, which the order did not charge")


def _pending_days(rules: RulesDocument, partner: PartnerOrders | None) -> int:
    if partner is not None and partner.code in rules.partner_earn:
        return rules.partner_earn[partner.code].pending_days
    return rules.earn.pending_days


def _result(
    body: OrderIn,
    rules: RulesDocument,
    rules_version: int,
    earning: OrderEarning,
    debt_repaid: int,
    now: datetime,
    entry_id: uuid.UUID | None,
    tier_reached: str | None = None,
    partner: PartnerOrders | None = None,
) -> tuple[OrderResult, datetime | None]:
    pending_until = body.paid_at + timedelta(days=_pending_days(rules, partner))
    pending = earning.points - debt_repaid > 0 and pending_until > now
    result = OrderResult(
        order_id=body.order_id,
        member=body.member,
        points=earning.points,
        status="pending" if pending else "available",
        available_at=pending_until if pending else now,
        breakdown=[
            BreakdownLine(rule=line.rule, points=line.points, detail=line.detail) for line in earning.lines
        ],
        rules_version=rules_version,
        debt_repaid=debt_repaid,
        entry_id=entry_id,
        tier_reached=tier_reached,
    )
    return result, pending_until if pending else None


def _day_window(body: OrderIn) -> tuple[date, date]:
    # The order's local day is within a day of its UTC date, in any timezone.
    day = body.paid_at.astimezone(UTC).date()
    return day - timedelta(days=1), day + timedelta(days=1)


async def preview(
    context: AppContext, program_id: int, body: OrderIn, partner: PartnerOrders | None = None
) -> OrderResult:
    now = context.clock.now()
    _refuse_future(body, now)
    async with context.db.pool.acquire() as connection:
        facts, rules = await _facts(context, connection, program_id, body, partner=partner, now=now)
        order_facts, earning = _compute(rules, body, facts, partner)
        if earning.charges:
            earning = await _within_budgets(
                connection, program_id, rules, facts, order_facts, earning, partner
            )
    result, _ = _result(
        body,
        rules,
        facts.rules_version,
        earning,
        min(earning.points, -facts.debt),
        now,
        None,
        partner=partner,
    )
    return result


async def _within_budgets(
    connection: Connection,
    program_id: int,
    rules: RulesDocument,
    facts: MemberFacts,
    order_facts: OrderFacts,
    earning: OrderEarning,
    partner: PartnerOrders | None,
) -> OrderEarning:
    """A preview's points with the rules whose budgets look spent left out (read
    without locks: the order itself may find otherwise)."""
    path = _budget_path(partner)
    limits = [limit for limit in budget_limits(rules) if limit.key.startswith(f"{path}.")]
    room = await budgets.room(connection, program_id, [limit.key for limit in limits], facts.member_id)

    def covers(key: str, points: int) -> Literal["budget", "member"] | None:
        found = room.get(key)
        if found is None:
            return None  # not activated yet: the order will say
        if found.member_left is not None and found.member_left < points:
            return "member"
        return "budget" if found.left_over < points else None

    section = None if partner is None else rules.partner_earn.get(partner.code)
    try:
        return earn_within_budgets(rules, order_facts, path, covers, section=section, limits=limits)
    except RulesError as exc:
        raise rules_problem(exc) from exc


def _refuse_future(body: OrderIn, now: datetime) -> None:
    if body.paid_at > now:
        raise ValidationFailed.on("body.paid_at", "must not be in the future")


@dataclass(frozen=True, slots=True)
class _Known:
    """What a request knows before its first query: the program's active rules, if
    this process has them (RulesCache.cached_active), and so the windows an upgrade
    would be judged on, read with the member's facts in the same round trip."""

    generation: int  # the rules cache's, when asked
    version: int | None = None
    rules: RulesDocument | None = None
    windows: tuple[Window, ...] | None = None
    top_tier: str | None = None
    referrals: bool = False  # the rules' tiers name `referrals`: the windows count them
    # the member's segment is read with the facts: unless the rules are known and
    # name no `when: {segment}` (then _facts() reads it only if other rules are in force)
    segment: bool = True

    @staticmethod
    def of(context: AppContext, program_id: int, body: OrderIn, now: datetime) -> _Known:
        cached, generation = context.rules.cached_active(program_id)
        if cached is None:
            return _Known(generation)
        version, rules = cached
        segment = uses_segments(rules)
        if not rules.tiers:
            return _Known(generation, version, rules, segment=segment)
        top = max(rules.tiers, key=lambda tier: tier.rank).code
        return _Known(
            generation,
            version,
            rules,
            upgrade_windows(rules, body.paid_at, now),
            top,
            uses_referrals(rules),
            segment,
        )


async def _facts(
    context: AppContext,
    connection: Connection,
    program_id: int,
    body: OrderIn,
    *,
    lock: bool = False,
    partner: PartnerOrders | None = None,
    now: datetime | None = None,
    known: _Known | None = None,
) -> tuple[MemberFacts, RulesDocument]:
    first, last = _day_window(body)
    facts = await repository.member_facts(
        connection,
        program_id,
        body.member,
        first,
        last,
        lock=lock,
        partner_id=None if partner is None else partner.partner_id,
        now=now,
        windows=None if known is None or known.windows is None else [(w.start, w.end) for w in known.windows],
        top_tier=None if known is None else known.top_tier,
        referrals=known is not None and known.referrals,
        segment=known is None or known.segment,
        paid_at=body.paid_at,
    )
    if facts is None:
        raise MemberNotFound(f"no member {body.member} in this program")
    if known is not None:
        if known.rules is not None and facts.rules_version == known.version:
            return facts, known.rules
        # The next order's facts read can then ask for its tier windows too.
        context.rules.remember_active(program_id, facts.rules_version, known.generation)
    rules = await context.rules.document(connection, program_id, facts.rules_version)
    if not facts.segment_read and uses_segments(rules):
        # Rules activated since this process last looked name a segment: read it now.
        segment = await repository.member_segment(connection, program_id, facts.member_id, body.paid_at)
        facts = replace(facts, segment=segment, segment_read=True)
    return facts, rules


def _window_activity(facts: MemberFacts, known: _Known | None) -> tuple[Activity, ...] | None:
    """The activity read with the facts, if it was read for the rules now in force."""
    if known is None or known.windows is None or facts.rules_version != known.version:
        return None
    if facts.window_activity is None:
        return None
    return tuple(Activity(orders=o, spend=s, points=p, referrals=r) for o, s, p, r in facts.window_activity)


async def place(
    context: AppContext, request: KeyedRequest, body: OrderIn, partner: PartnerOrders | None = None
) -> StoredResponse:
    """Record a paid order and post what it earns (POST /v1/orders; a partner's:
    POST /v1/partner/orders)."""
    now = context.clock.now()
    _refuse_future(body, now)
    program_id = request.principal.program_id
    known = _Known.of(context, program_id, body, now)
    # budgeted rules their budget could not cover: the order is computed without them
    skip: dict[RuleRef, str] = {}
    # group commit (LEDGER_GROUP_COMMIT) for the orders that lock one member's rows only
    group = (
        context.db.grouped("order", repository.POST_ORDER, repository.LOCK_MEMBERS)
        if partner is None
        else None
    )

    async def post(send: Awaitable[asyncpg.Record], rules: RulesDocument, order: NewOrder) -> asyncpg.Record:
        """The post's row; a refusal raised as what it means: a budget short of a rule,
        a problem, or the database's error itself."""
        try:
            return await send
        except asyncpg.PostgresError as exc:
            short = _budget_short(exc, rules, order.budget_charges)
            if short is not None:
                raise short from exc
            problem = as_app_error(exc)
            if problem is None:
                raise
            raise problem from exc

    def answer(row: asyncpg.Record, order: NewOrder) -> StoredResponse | None:
        if row["outcome"] == "posted":
            return StoredResponse(201, order.response_body)
        if row["outcome"] == "exists":
            return _replay_order(request, body, row["request_fingerprint"], row["response_body"])
        return None  # stale: the member changed since the facts were read

    async def attempt(
        connection: Connection, *, lock: bool = False
    ) -> StoredResponse | tuple[NewOrder, RulesDocument] | None:
        facts, rules = await _facts(
            context, connection, program_id, body, lock=lock, partner=partner, now=now, known=known
        )
        try:
            if facts.status in EARN_REFUSED:
                # Read with the balance row's version: a change since is a stale post.
                raise status_refusal(body.member, facts.status)
            order_facts, earning = _compute(rules, body, facts, partner, skip)
            if partner is not None and partner.priced and earning.points and facts.rate_id is None:
                raise RateNotEffective(f"partner {partner.code} has no earn rate in force; add one first")
        except AppError:
            # A retry of an order that was recorded under other rules replays it.
            found = await _stored_order(connection, program_id, body, request, partner)
            if found is None:
                raise
            return found
        entry_id = uuid7()
        upgrade = await tiers.upgrade_decision(
            connection,
            rules,
            program_id=program_id,
            member_id=facts.member_id,
            current=facts.tier,
            at=body.paid_at,
            now=now,
            extra=Activity(orders=1, spend=body.total.amount, points=earning.points),
            entry_id=entry_id if earning.points else None,
            recorded=_window_activity(facts, known),
        )
        order = _new_order(request, body, rules, facts, order_facts, earning, now, entry_id, upgrade, partner)
        # A referred member's first order may be the referral that lifts the member
        # who referred them (tiers that count referrals): that upgrade must commit
        # with the order, so such orders take the transaction path.
        referral = uses_referrals(rules) and facts.referred_by_member_id is not None
        if referral and not connection.is_in_transaction():
            return None
        if group is not None and not order.budget_charges and not connection.is_in_transaction():
            return order, rules  # posted with others at once, this connection back in the pool
        row = await post(repository.post_order(connection, order), rules, order)
        if row["outcome"] == "posted":
            if referral:
                await tiers.apply_referrer_upgrade(
                    connection,
                    rules,
                    facts.rules_version,
                    program_id=program_id,
                    member_id=facts.member_id,
                    at=body.paid_at,
                    now=now,
                    entry_id=entry_id if earning.points else None,
                )
        return answer(row, order)

    async def grouped(order: NewOrder, rules: RulesDocument) -> StoredResponse | None:
        assert group is not None
        send = group.fetchrow(repository.post_order_args(order), order.program_id, order.member_id)
        return answer(await post(send, rules, order), order)

    async def locked_attempt(connection: Connection) -> StoredResponse | None:
        async with connection.transaction():
            outcome = await attempt(connection, lock=True)
        assert not isinstance(outcome, tuple), "a locked attempt posts on its own connection"
        return outcome

    # Optimistic first: no transaction, no lock held across the computation. If the
    # member changed between the read and the post (another of their requests landed
    # in between), read again holding their balance row, which nothing can then change.
    # A budget that could not cover one of the order's rules rolled everything back:
    # compute again without that rule (each round leaves one more out, so this ends).
    while True:
        try:
            first = await context.db.call(attempt)
            outcome = await grouped(*first) if isinstance(first, tuple) else first
            if outcome is None:
                outcome = await context.db.call(locked_attempt)
            break
        except _BudgetShort as short:
            if short.rule in skip:  # the same rule twice: a bug, not a loop
                raise AssertionError(f"rule {short.rule} refused after it was left out") from short
            skip[short.rule] = short.detail
    if outcome is None:  # the lock makes this unreachable; fail loudly, not silently
        raise ServiceUnavailable("the member's balance changed while the order was posted; retry it")
    return outcome


def _new_order(
    request: KeyedRequest,
    body: OrderIn,
    rules: RulesDocument,
    facts: MemberFacts,
    order_facts: OrderFacts,
    earning: OrderEarning,
    now: datetime,
    entry_id: uuid.UUID,
    upgrade: TierDecision | None,
    partner: PartnerOrders | None = None,
) -> NewOrder:
    owed = -facts.debt
    repaid = min(earning.points, owed)
    tier_reached = None if upgrade is None else upgrade.state.tier
    result, pending_until = _result(
        body,
        rules,
        facts.rules_version,
        earning,
        repaid,
        now,
        entry_id if earning.points else None,
        tier_reached,
        partner,
    )
    # The earn entry: debt repaid first, the rest to the member, all from issuance
    # (a partner's order: from the partner's funding).
    legs: list[Leg] = []
    if repaid:
        legs.append(Leg(body.member, "debt", repaid))
    if earning.points - repaid:
        legs.append(
            Leg(body.member, "pending" if pending_until is not None else "available", earning.points - repaid)
        )
    partner_line = None
    if legs and partner is not None:
        legs.append(Leg(None, "partner_funding", -earning.points, partner=partner.partner_id))
        partner_line = PartnerLine(
            partner.partner_id,
            "earn",
            earning.points,
            rate_id=facts.rate_id if partner.priced else None,
            price_per_point=facts.price_per_point if partner.priced else None,
        )
    elif legs:
        legs.append(Leg(None, "issuance", -earning.points))
    return NewOrder(
        entry_id=entry_id,
        program_id=request.principal.program_id,
        member_id=facts.member_id,
        expected_version=facts.version,
        order_id=body.order_id,
        idempotency_key=request.idempotency_key,
        request_fingerprint=request.fingerprint,
        paid_at=body.paid_at,
        recorded_at=now,
        actor_key_id=request.principal.key_id,
        rules_version=facts.rules_version,
        local_day=earning.local_day,
        currency=body.total.currency,
        total=body.total.amount,
        channel=body.channel,
        lines=[line.model_dump(mode="json") for line in body.lines or ()],
        facts={
            "tier": order_facts.tier,
            # unread (rules without segments): a what-if replay looks it up
            **({"segment": order_facts.segment} if facts.segment_read else {}),
            "birthday": None if order_facts.birthday is None else order_facts.birthday.isoformat(),
            "first_order": order_facts.first_order,
            "earned_today": order_facts.earned_today,
        },
        segments=[
            {"key": segment.key, "value": str(segment.value), "weight": str(segment.weight)}
            for segment in earning.segments
        ],
        explanation=[line.model_dump() for line in result.breakdown],
        points=earning.points,
        pending_until=pending_until,
        legs=tuple(legs),
        response_body=result.model_dump_json().encode(),
        expires_at=lot_expiry(rules, body.paid_at),
        tier=upgrade,
        partner_id=None if partner is None else partner.partner_id,
        partner_line=partner_line,
        budget_charges=[charge_json(_budget_path(partner), charge) for charge in earning.charges] or None,
    )


def _replay_order(
    request: KeyedRequest, body: OrderIn, fingerprint: str, response_body: bytes | None
) -> StoredResponse:
    if fingerprint != request.fingerprint or response_body is None:
        raise OrderExists(f"order {body.order_id} was already recorded with other details")
    return StoredResponse(201, bytes(response_body), replayed=True)


async def _stored_order(
    connection: Connection,
    program_id: int,
    body: OrderIn,
    request: KeyedRequest,
    partner: PartnerOrders | None = None,
) -> StoredResponse | None:
    row = await repository.stored_order(
        connection, program_id, body.order_id, None if partner is None else partner.partner_id
    )
    if row is None:
        return None
    return _replay_order(request, body, row["request_fingerprint"], row["response_body"])


def _segments(raw: str) -> list[Segment]:
    return [
        Segment(item["key"], Fraction(item["value"]), Fraction(item["weight"])) for item in json.loads(raw)
    ]


def _lines(raw: str) -> list[OrderLine]:
    return [
        OrderLine(item["sku"], item["quantity"], Decimal(item["unit_price"]["amount"]), item.get("category"))
        for item in json.loads(raw)
    ]


async def refund(
    context: AppContext,
    request: KeyedRequest,
    order_id: str,
    body: RefundIn,
    partner: PartnerOrders | None = None,
) -> StoredResponse:
    """Take back what the refunded part of an order earned (POST /v1/orders/{id}/refunds;
    a partner's order: POST /v1/partner/orders/{id}/refunds, back to its funding)."""
    now = context.clock.now()
    program_id = request.principal.program_id
    partner_id = None if partner is None else partner.partner_id

    async def work(connection: Connection) -> StoredResponse:
        async with connection.transaction():
            order = await repository.order_for_refund(connection, program_id, order_id, partner_id)
            if order is None:
                raise OrderNotFound(f"no order {order_id} in this program")
            # After the order's lock: a concurrent retry of this refund has committed.
            found = await posting.stored(connection, request)
            if found is not None:
                return found
            earlier = await repository.stored_refund(connection, program_id, order["id"], body.refund_id)
            if earlier is not None:
                if earlier["request_fingerprint"] != request.fingerprint:
                    raise RefundExists(
                        f"refund {body.refund_id} of order {order_id} was made with other details"
                    )
                return StoredResponse(201, bytes(earlier["response_body"]), replayed=True)
            rules = await context.rules.document(connection, program_id, order["active_rules_version"])
            return await _take_back(connection, request, order, body, rules, now)

    return await context.db.call(work)


async def _take_back(
    connection: Connection,
    request: KeyedRequest,
    order: asyncpg.Record,
    body: RefundIn,
    rules: RulesDocument,
    now: datetime,
) -> StoredResponse:
    currency = order["currency"]
    segments = _segments(order["segments"])
    state = RefundState.from_json(json.loads(order["refund_state"]))
    try:
        if body.amount is not None:
            if body.amount.currency != currency:
                raise CurrencyMismatch(f"order {order['order_id']} was paid in {currency}")
            outcome = refund_amount(order["points"], segments, state, body.amount.amount)
        else:
            wanted = [RefundLine(line.sku, line.quantity) for line in body.lines or ()]
            outcome = refund_lines(order["points"], segments, _lines(order["lines"]), state, wanted)
    except RulesError as exc:
        raise rules_problem(exc) from exc

    points = outcome.points
    # what the refunded part had taken from campaign budgets goes back to them
    budget_returns = [
        (
            key,
            given_back(
                charge,
                order["points"],
                state,
                outcome.state,
                order["points_taken_back"],
                outcome.taken_back_total,
            ),
        )
        for key, charge in (charge_from_json(item) for item in json.loads(order["budget_charges"] or "[]"))
    ]
    from_pending = 0
    if points and order["entry_id"] is not None:
        credit = await repository.lock_pending_credit(
            connection, order["program_id"], order["entry_id"], order["member_id"]
        )
        if credit is not None and credit["remaining"]:
            from_pending = min(points, credit["remaining"])
            await repository.take_from_pending_credit(
                connection, order["program_id"], credit["id"], from_pending
            )
    balance = await repository.lock_balance(connection, order["program_id"], order["member_id"])
    # A closed member's order takes nothing back, even when no points would move.
    if await repository.member_status(connection, order["program_id"], order["member_id"]) == "closed":
        raise status_refusal(order["member"], "closed")
    await budgets.give_back(connection, order["program_id"], order["member_id"], budget_returns)
    from_available = min(points - from_pending, balance["available"])
    short = points - from_pending - from_available
    debt = short if rules.refunds.shortfall == "debt" else 0
    shortfall = short - debt

    amount = Decimal(outcome.amount.numerator) / Decimal(outcome.amount.denominator)
    entry_id = uuid7() if from_pending + from_available + debt else None
    result = RefundResult(
        refund_id=body.refund_id,
        order_id=order["order_id"],
        amount=money(amount, currency),
        points_reversed=points,
        from_pending=from_pending,
        from_available=from_available,
        shortfall=shortfall,
        debt=debt,
        points_reversed_total=outcome.taken_back_total,
        entry_id=entry_id,
    )
    response = result.model_dump_json().encode()
    if entry_id is not None:
        member = order["member"]
        taken_back: tuple[tuple[MemberAccount, int], ...] = (
            ("pending", from_pending),
            ("available", from_available),
            ("debt", debt),
        )
        legs = [Leg(member, account, -taken) for account, taken in taken_back if taken]
        returned = from_pending + from_available + debt
        partner_line = None
        if order["partner_id"] is not None:
            # back to the partner that funded them, at the price they were given out at
            legs.append(Leg(None, "partner_funding", returned, partner=order["partner_id"]))
            partner_line = PartnerLine(
                order["partner_id"],
                "earn_refunds",
                -returned,
                rate_id=order["earn_rate_id"],
                price_per_point=order["earn_price_per_point"],
                undoes=order["entry_id"],
            )
        else:
            legs.append(Leg(None, "issuance", returned))
        explanation = [
            {
                "rule": "refund",
                "points": points,
                "detail": f"{result.amount.amount} {currency} refunded of {order['total']} {currency}; "
                f"{outcome.taken_back_total} of the order's {order['points']} points taken back so far",
            }
        ]
        if shortfall:
            explanation.append(
                {
                    "rule": "shortfall",
                    "points": -shortfall,
                    "detail": "already spent; recorded, not taken back",
                }
            )
        await posting.post_in_transaction(
            connection,
            request,
            "refund",
            legs,
            now,
            response_body=response,
            entry_id=entry_id,
            order_id=order["order_id"],
            rules_version=order["rules_version"],
            reason=f"refund {body.refund_id}",
            explanation=explanation,
            # Take back the order's own points first, not the member's oldest ones.
            source_entry_id=order["lot_entry_id"] if from_available else None,
            partner_line=partner_line,
        )
    else:
        await posting.keep_response(connection, request, response, now)
    await repository.record_refund(
        connection,
        NewRefund(
            program_id=order["program_id"],
            paid_order_id=order["id"],
            refund_id=body.refund_id,
            idempotency_key=request.idempotency_key,
            request_fingerprint=request.fingerprint,
            entry_id=entry_id,
            amount=amount,
            points=points,
            from_pending=from_pending,
            from_available=from_available,
            shortfall=shortfall,
            debt=debt,
            created_at=now,
            refund_state=outcome.state.to_json(),
            points_taken_back=outcome.taken_back_total,
            budget_returns=[{"budget": key, "points": back} for key, back in budget_returns if back] or None,
        ),
    )
    return StoredResponse(201, response)


@dataclass(frozen=True, slots=True)
class PastOrder:
    """A recorded order as the rules saw it, for what-if replays."""

    member_id: int
    facts: OrderFacts
    points: int  # what it earned
    partner: str | None = None  # a partner's order: the partner's code


async def past_orders(
    connection: Connection,
    program_id: int,
    start: datetime,
    end: datetime,
    earned_today: Callable[[int, str | None, datetime], int],
    *,
    segments: bool = True,
) -> AsyncIterator[PastOrder]:
    """Orders paid in [start, end), in the order they were recorded. Call inside a
    transaction (a read-only, repeatable-read one gives a consistent replay).
    `segments=False`: the replay's rules name no segment, so an order that did not
    read its segment is not given one.

    A replay has its own idea of what a member earned on a day, so `earned_today`
    (member id, partner code or None, paid_at) supplies it; each order is built only once the caller is
    done with the previous one, so the answer can count that one."""
    async for row in repository.past_orders(connection, program_id, start, end, segments=segments):
        facts = json.loads(row["facts"])
        birthday = facts.get("birthday")
        yield PastOrder(
            member_id=row["member_id"],
            facts=OrderFacts(
                total=row["total"],
                currency=row["currency"],
                paid_at=row["paid_at"],
                lines=tuple(_lines(row["lines"])),
                channel=row["channel"],
                tier=facts.get("tier"),
                segment=row["segment"],
                birthday=None if birthday is None else date.fromisoformat(birthday),
                first_order=bool(facts.get("first_order")),
                earned_today=earned_today(row["member_id"], row["partner"], row["paid_at"]),
            ),
            points=row["points"],
            partner=row["partner"],
        )


@dataclass(frozen=True, slots=True)
class PastEvent:
    member_id: int
    type: str
    occurred_at: datetime
    points: int  # what it earned, both sides of a referral


async def past_events(
    connection: Connection, program_id: int, start: datetime, end: datetime
) -> AsyncIterator[PastEvent]:
    """Member events that occurred in [start, end) and were not reversed, in the
    order they were recorded (call inside a transaction, as past_orders())."""
    async for row in repository.past_events(connection, program_id, start, end):
        yield PastEvent(row["member_id"], row["type"], row["occurred_at"], row["points"])


async def past_points_by_rule(
    connection: Connection, program_id: int, start: datetime, end: datetime
) -> dict[str, int]:
    """What each rule gave the orders paid in [start, end)."""
    return await repository.past_points_by_rule(connection, program_id, start, end)


# -- reading --------------------------------------------------------------------------------------


def _order_out(row: asyncpg.Record) -> OrderOut:
    answered = json.loads(row["response_body"]) if row["response_body"] is not None else {}
    return OrderOut(
        order_id=row["order_id"],
        partner=row["partner"],
        member=row["member"],
        total=Money(amount=row["total"], currency=row["currency"]),
        lines=[OrderLineIn.model_validate(line) for line in json.loads(row["lines"])] or None,
        channel=row["channel"],
        paid_at=row["paid_at"],
        recorded_at=row["recorded_at"],
        rules_version=row["rules_version"],
        points=row["points"],
        points_refunded=row["points_taken_back"],
        status="pending" if row["pending"] else "available",
        available_at=row["pending_until"] or row["recorded_at"],
        breakdown=[BreakdownLine.model_validate(line) for line in answered.get("breakdown", [])],
        entry_id=row["entry_id"],
        refunds=[
            OrderRefundOut(
                refund_id=refund["refund_id"],
                amount=money(Decimal(refund["amount"]), row["currency"]),
                points_reversed=refund["points_reversed"],
                created_at=refund["created_at"],
            )
            for refund in json.loads(row["refunds"])
        ],
    )


async def order(
    context: AppContext, principal: Principal, order_id: str, read: ReadFrom = PRIMARY
) -> OrderOut:
    """One order as recorded (GET /v1/orders/{order_id})."""

    async def work(connection: Connection) -> asyncpg.Record | None:
        return await repository.recorded_order(connection, principal.program_id, order_id)

    row = await context.db.read(work, read)
    if row is None:
        raise OrderNotFound(f"no order {order_id} in this program")
    return _order_out(row)


async def member_orders(
    context: AppContext,
    principal: Principal,
    member: str,
    *,
    limit: int,
    cursor: str | None,
    read: ReadFrom = PRIMARY,
) -> OrderPage:
    """A member's orders, newest payment first (GET /v1/members/{id}/orders)."""

    async def work(connection: Connection) -> tuple[str, list[asyncpg.Record]]:
        member_id = await ledger.internal_member_id(connection, principal.program_id, member)
        list_id = f"member-orders:{member_id}"
        before: tuple[datetime, int] = (LATEST, 2**63 - 1)
        if cursor is not None:
            paid_at, paid_order_id = context.cursors.read(list_id, cursor)
            before = (datetime.fromisoformat(paid_at), paid_order_id)
        rows = await repository.member_orders(
            connection, principal.program_id, member_id, before=before, limit=limit + 1
        )
        return list_id, rows

    list_id, rows = await context.db.read(work, read)
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = context.cursors.issue(list_id, page[-1]["paid_at"].isoformat(), page[-1]["id"])
    return OrderPage(items=[_order_out(row) for row in page], next_cursor=next_cursor)
