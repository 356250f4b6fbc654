"""What an order earns: base rate, multipliers, bonuses and caps, explained line by line.

Pure: the caller supplies the rules document and every fact (the order, the member's
tier and birthday, whether this is the first order, what the member already earned
that local day). The same function serves earning, preview and what-if simulation.

How an order is cut up. The order total is split into segments, one per line plus
"rest" for what the lines do not cover (shipping, fees). When the lines add up to
more than the total (an order-level discount), the total is shared among the lines
in proportion to their amounts. Excluded categories earn nothing. Multipliers that
name a category or SKU apply to the matching segments only.

Rounding happens once, on the order's exact points after multipliers. Each line of
the explanation is the difference between rounded running totals, so the lines
always add up to the points, and the sum is the order's one rounding.

Budgets. A multiplier or bonus with a `budget` reports what it added to the order as
a `BudgetCharge`: its explanation line, less what the caps clipped of it (caps take
the last-added points first: bonuses, then the later multipliers). The caller takes
the charges from the budgets; a rule the budget can't cover is passed back in `skip`
and the order is computed again without it (a zero line saying why).
"""

from __future__ import annotations

import decimal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Literal
from zoneinfo import ZoneInfo

from app.rules.document import MAX_POINTS, Earn, Multiplier, RulesDocument, When

# All arithmetic of an order runs in this context: enough digits that no product of
# an amount (12+4 digits), a rate and a handful of factors is rounded before the one
# rounding the rules ask for, and that a discounted order's shares add up exactly.
_CONTEXT = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN, traps=[decimal.InvalidOperation])
_ROUNDING = {
    "floor": decimal.ROUND_FLOOR,
    "half_up": decimal.ROUND_HALF_UP,
    "ceil": decimal.ROUND_CEILING,
}
REST = "rest"
_ONE, _ZERO = Decimal(1), Decimal(0)


class RulesError(ValueError):
    """The facts don't fit the rules (a currency the program doesn't take, points past
    2^63-1, a refund larger than its order). `code` is the stable problem code;
    `field` names the request field at fault, when there is one."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


@dataclass(frozen=True, slots=True)
class OrderLine:
    sku: str
    quantity: int
    unit_price: Decimal
    category: str | None = None

    @property
    def amount(self) -> Decimal:
        return self.unit_price * self.quantity


@dataclass(frozen=True, slots=True)
class OrderFacts:
    total: Decimal
    currency: str
    paid_at: datetime  # timezone-aware
    lines: tuple[OrderLine, ...] = ()
    channel: str | None = None
    tier: str | None = None
    segment: str | None = None  # the member's RFM segment in the latest snapshot before paid_at
    birthday: date | None = None
    first_order: bool = False
    earned_today: int = 0  # points from orders already paid on the same local day


@dataclass(frozen=True, slots=True)
class ExplanationLine:
    rule: str
    points: int
    detail: str


@dataclass(frozen=True, slots=True)
class Segment:
    """A share of the order: `value` in money, `weight` its exact points before
    rounding, bonuses and caps (both exact fractions). Refunds take points back in
    proportion to weight."""

    key: str  # "line:<index>" or "rest"
    value: Fraction
    weight: Fraction


@dataclass(frozen=True, slots=True)
class RuleRef:
    """A multiplier or bonus of an earn section: its list and its id."""

    kind: Literal["multipliers", "bonuses"]
    id: str


@dataclass(frozen=True, slots=True)
class BudgetCharge:
    """What a budgeted rule added to the order: `points` to take from its budget.
    `weights` are the multiplier's own exact points in each segment (in proportion:
    the base rate's divisor is left out), so a refund of
    some lines gives back the share of the rule's points those lines had (empty for
    a bonus, or when not explained: a bonus goes back with the order's points)."""

    rule: RuleRef
    points: int
    weights: tuple[Segment, ...] = ()


@dataclass(frozen=True, slots=True)
class OrderEarning:
    points: int
    lines: tuple[ExplanationLine, ...]
    segments: tuple[Segment, ...]
    local_day: date
    charges: tuple[BudgetCharge, ...] = ()  # the budgeted rules that added points, with what they added


@dataclass(frozen=True, slots=True)
class _Piece:
    key: str
    amount: Decimal  # the piece's money times the order's common denominator (see _pieces)
    line: OrderLine | None
    excluded: bool


def local_time(rules: RulesDocument, instant: datetime) -> datetime:
    return instant.astimezone(ZoneInfo(rules.timezone))


def _pieces(earn: Earn, facts: OrderFacts) -> tuple[list[_Piece], Decimal]:
    """The order's segments, each as an amount over a common denominator: 1, or the
    lines' sum when it exceeds the total (an order-level discount shared in
    proportion to the lines: line x total / lines). Kept as numerators so that no
    share is ever rounded; the one division comes with the one rounding."""
    excluded = set(earn.exclude_categories)
    lines = facts.lines
    if not lines:
        return [_Piece(REST, facts.total, None, False)], _ONE
    amounts = [line.amount for line in lines]
    covered = sum(amounts, _ZERO)
    if covered > facts.total:
        numerators, denominator, rest = [amount * facts.total for amount in amounts], covered, _ZERO
    else:
        numerators, denominator, rest = amounts, _ONE, facts.total - covered
    pieces = [
        _Piece(f"line:{index}", numerator, line, line.category in excluded)
        for index, (line, numerator) in enumerate(zip(lines, numerators, strict=True))
    ]
    if rest > 0:
        pieces.append(_Piece(REST, rest, None, False))
    return pieces, denominator


def _order_condition_holds(when: When, facts: OrderFacts, local: datetime) -> bool:
    if when.day_of_month is not None and local.day not in when.day_of_month:
        return False
    if when.weekday is not None and local.isoweekday() not in when.weekday:
        return False
    if when.between is not None and not (when.between[0] <= local.date() <= when.between[1]):
        return False
    if when.hour_between is not None:
        start, end = when.hour_between
        inside = start <= local.hour < end if start < end else (local.hour >= start or local.hour < end)
        if not inside:
            return False
    if when.order_total_gte is not None and facts.total < when.order_total_gte:
        return False
    if when.birthday_month is not None:
        is_birthday_month = facts.birthday is not None and facts.birthday.month == local.month
        if is_birthday_month != when.birthday_month:
            return False
    if when.tier is not None and facts.tier not in when.tier:
        return False
    if when.segment is not None and facts.segment not in when.segment:
        return False
    if when.channel is not None and facts.channel not in when.channel:
        return False
    return when.first_order is None or when.first_order == facts.first_order


def _line_matches(when: When, line: OrderLine | None) -> bool:
    if line is None:
        return False
    if when.category is not None and line.category not in when.category:
        return False
    return when.sku is None or line.sku in when.sku


def _stack(stacking: str, current: Decimal | None, factor: Decimal, applied: bool) -> Decimal | None:
    """The segment's factor after one more multiplier (None: no multiplier yet)."""
    if not applied:
        return current
    if current is None:
        return factor
    if stacking == "multiply":
        return current * factor
    if stacking == "add":
        return current + factor - 1
    return max(current, factor)


def _effective(factor: Decimal | None) -> Decimal:
    # `add` with factors below 1 could sum below zero; an order never earns negative points.
    return _ONE if factor is None else max(factor, _ZERO)


def _round(value: Decimal, rounding: str) -> int:
    return int(value.to_integral_value(rounding=_ROUNDING[rounding], context=_CONTEXT))


def _describe(when: When) -> str:
    parts = []
    for name, value in when.model_dump(exclude_none=True, mode="json").items():
        if value is True:
            parts.append(name)
        elif name in ("between", "hour_between"):
            parts.append(f"{name} {value[0]}..{value[1]}")
        elif isinstance(value, list):
            parts.append(f"{name} {','.join(str(item) for item in value)}")
        else:
            parts.append(f"{name} {value}")
    return "; ".join(parts) if parts else "always"


def display_places(total: Decimal) -> int:
    """Decimal places to show an order's money with: as many as its total has, at least 2."""
    exponent = total.as_tuple().exponent
    return max(2, -exponent) if isinstance(exponent, int) else 2


def _money(value: Decimal, facts: OrderFacts) -> str:
    places = display_places(facts.total)
    return f"{value.quantize(Decimal(1).scaleb(-places), context=_CONTEXT):f} {facts.currency}"


def earn_order(
    rules: RulesDocument,
    facts: OrderFacts,
    *,
    explain: bool = True,
    section: Earn | None = None,
    skip: Mapping[RuleRef, str] | None = None,
) -> OrderEarning:
    """Points for one paid order, with the explanation that adds up to them.

    `section` is the earning rules to apply when not the program's own `earn` (a
    partner's section of `partner_earn`); the document still gives the timezone,
    the currency and the tiers.

    `explain=False` leaves the lines' `detail` empty and `segments` out: a what-if
    replay of many orders needs the points of each rule, not the sentences or what
    a refund would need.

    `skip`: budgeted rules left out of this order (their budget can't cover them),
    each with the explanation's detail for it."""
    with decimal.localcontext(_CONTEXT):
        return _earn_order(rules, rules.earn if section is None else section, facts, explain, skip or {})


def _earn_order(
    rules: RulesDocument, earn: Earn, facts: OrderFacts, explain: bool, skip: Mapping[RuleRef, str]
) -> OrderEarning:
    if rules.currency is not None and facts.currency != rules.currency:
        raise RulesError(
            "currency_mismatch", f"the program earns on {rules.currency} orders, not {facts.currency}"
        )
    local = local_time(rules, facts.paid_at)
    pieces, denominator = _pieces(earn, facts)
    # Exact points are sum(amount x factor) x points / (denominator x per). Every
    # product is exact in the context; the division is made once per running total,
    # right before its rounding. A whole or half point thus stays whole or half: a
    # rate like 1 per 3 would lose that if it were divided out first.
    divisor = denominator * earn.base.per
    points = Decimal(earn.base.points)
    base = [_ZERO if piece.excluded else piece.amount * points for piece in pieces]
    factors: list[Decimal | None] = [None for _ in pieces]
    rounding = earn.base.rounding
    lines: list[ExplanationLine] = []
    # budgeted rules that applied: (rule, points added, running total before, factors before and after)
    budgeted: list[tuple[RuleRef, int, int, list[Decimal | None] | None, list[Decimal | None] | None]] = []

    def add(rule: str, points: int, detail: Callable[[], str]) -> None:
        # `detail` is called here and now, so lambdas over loop variables are safe.
        lines.append(ExplanationLine(rule, points, detail() if explain else ""))

    def base_detail() -> str:
        eligible = sum((piece.amount for piece in pieces if not piece.excluded), _ZERO) / denominator
        excluded = facts.total - eligible
        return f"{_money(eligible, facts)} at {earn.base.points} per {earn.base.per:f}, {rounding}" + (
            f"; {_money(excluded, facts)} excluded" if excluded else ""
        )

    running = _round(sum(base, _ZERO) / divisor, rounding)
    add("base", running, base_detail)

    for rule in earn.multipliers:
        matches = _applies_to(rule, facts, local, pieces)
        if not any(matches):
            continue
        ref = None if rule.budget is None else RuleRef("multipliers", rule.id)
        if ref is not None and ref in skip:
            left_out = skip[ref]
            add(rule.id, 0, lambda: left_out)  # noqa: B023
            continue
        before = factors
        factors = [
            _stack(earn.stacking, current, rule.factor, hit)
            for current, hit in zip(factors, matches, strict=True)
        ]
        exact = sum((b * _effective(f) for b, f in zip(base, factors, strict=True)), _ZERO) / divisor
        total = _round(exact, rounding)
        scope = "" if not rule.when.on_lines else " on matching lines"
        add(rule.id, total - running, lambda: f"x{rule.factor}{scope} ({_describe(rule.when)})")  # noqa: B023
        if ref is not None:
            budgeted.append((ref, total - running, running, before, factors))
        running = total

    exact_divisor = Fraction(divisor)
    segments = (
        ()
        if not explain
        else tuple(
            Segment(
                piece.key,
                Fraction(piece.amount) / Fraction(denominator),
                Fraction(b * _effective(f)) / exact_divisor,
            )
            for piece, b, f in zip(pieces, base, factors, strict=True)
        )
    )

    for bonus in earn.bonuses:
        if _order_condition_holds(bonus.when, facts, local) and (
            not bonus.when.on_lines or any(_line_matches(bonus.when, line) for line in facts.lines)
        ):
            ref = None if bonus.budget is None else RuleRef("bonuses", bonus.id)
            if ref is not None and ref in skip:
                left_out = skip[ref]
                add(bonus.id, 0, lambda: left_out)  # noqa: B023
                continue
            add(bonus.id, bonus.points, lambda: f"+{bonus.points} ({_describe(bonus.when)})")  # noqa: B023
            if ref is not None:
                budgeted.append((ref, bonus.points, running, None, None))
            running += bonus.points

    caps = earn.caps
    if caps.per_order is not None and running > caps.per_order:
        per_order = caps.per_order
        add("cap:per_order", per_order - running, lambda: f"at most {per_order} per order")
        running = per_order
    if caps.per_member_per_day is not None:
        per_day = caps.per_member_per_day
        room = max(0, per_day - facts.earned_today)
        if running > room:
            add(
                "cap:per_member_per_day",
                room - running,
                lambda: f"at most {per_day} a day; {facts.earned_today} already earned on {local.date()}",
            )
            running = room
    if running > MAX_POINTS:
        raise RulesError("points_out_of_range", f"the order would earn more than {MAX_POINTS} points")
    charges = []
    for ref, added, before_total, factors_before, factors_after in budgeted:
        # What is left of the rule's points once the caps clipped the order to
        # `running`, taking the last-added points first.
        kept = max(0, min(added, running - before_total))
        if not kept:
            continue
        weights: tuple[Segment, ...] = ()
        if explain and factors_before is not None and factors_after is not None:
            # Only the weights' proportions matter to a refund: left undivided (exact).
            weights = tuple(
                Segment(segment.key, segment.value, Fraction(max(_ZERO, b * (_effective(a) - _effective(f)))))
                for segment, b, f, a in zip(segments, base, factors_before, factors_after, strict=True)
            )
        charges.append(BudgetCharge(ref, kept, weights))
    return OrderEarning(running, tuple(lines), segments, local.date(), tuple(charges))


def _applies_to(rule: Multiplier, facts: OrderFacts, local: datetime, pieces: list[_Piece]) -> list[bool]:
    """Which segments the multiplier applies to (none if its order conditions fail)."""
    if not _order_condition_holds(rule.when, facts, local):
        return [False] * len(pieces)
    if not rule.when.on_lines:
        return [not piece.excluded for piece in pieces]
    return [not piece.excluded and _line_matches(rule.when, piece.line) for piece in pieces]
