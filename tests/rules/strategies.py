"""Builders and hypothesis strategies for the rules tests, plus an independent model
of what an order earns, written with exact fractions.

Money is built from digits (`decimal(1250, 2)` is 12.50), never from floats.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any

from hypothesis import strategies as st

from app.rules import OrderFacts, OrderLine, RulesDocument

Json = dict[str, Any]

# Wednesday 2026-06-10, noon UTC: no day, weekday or hour clause of the unit tests hits it by accident.
PAID_AT = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
CURRENCY = "CNY"

SKUS = ("SKU-1", "SKU-2", "SKU-3")
CATEGORIES = ("shoes", "socks", "gift_card")
TIERS = ("silver", "gold")
CHANNELS = ("app", "web")
TIMEZONES = ("UTC", "Asia/Shanghai", "America/New_York", "Asia/Kathmandu", "Pacific/Kiritimati")
ROUNDINGS = ("floor", "half_up", "ceil")


def decimal(units: int, places: int) -> Decimal:
    """The exact decimal `units * 10**-places`, from a string: decimal(1250, 2) == Decimal("12.50")."""
    return Decimal(f"{units}e-{places}")


def exact_decimal(value: Fraction) -> Decimal:
    """A fraction whose denominator divides a power of ten, as the equal Decimal."""
    with localcontext() as context:
        context.prec = 400
        result = Decimal(value.numerator) / Decimal(value.denominator)
    assert Fraction(result) == value, f"{value} has no finite decimal form"
    return result


def round_points(value: Fraction, rounding: str) -> int:
    """Round exact points the way RULES.md says, computed without Decimal."""
    if rounding == "floor":
        return math.floor(value)
    if rounding == "ceil":
        return math.ceil(value)
    assert rounding == "half_up"
    return math.floor(value + Fraction(1, 2))  # points are never negative here


def document(earn: Json | None = None, **top: Any) -> RulesDocument:
    """A rules document earning 1 point per 1.00 (floor), with `earn` merged in."""
    body: Json = {"earn": {"base": {"points": 1, "per": "1.00", "rounding": "floor"}, **(earn or {})}}
    body.update(top)
    return RulesDocument.model_validate(body)


def replace_earn(rules: RulesDocument, **earn: Any) -> RulesDocument:
    """The same document with some `earn` sections replaced (validated again)."""
    body = rules.model_dump(mode="json")
    body["earn"] = {**body["earn"], **earn}
    return RulesDocument.model_validate(body)


def with_multipliers(*multipliers: Json, stacking: str = "multiply", timezone: str = "UTC") -> RulesDocument:
    return document({"multipliers": list(multipliers), "stacking": stacking}, timezone=timezone)


def order(
    total: str = "100.00",
    *,
    paid_at: datetime = PAID_AT,
    lines: tuple[OrderLine, ...] = (),
    channel: str | None = None,
    tier: str | None = None,
    birthday: date | None = None,
    first_order: bool = False,
    earned_today: int = 0,
    currency: str = CURRENCY,
) -> OrderFacts:
    return OrderFacts(
        total=Decimal(total),
        currency=currency,
        paid_at=paid_at,
        lines=lines,
        channel=channel,
        tier=tier,
        birthday=birthday,
        first_order=first_order,
        earned_today=earned_today,
    )


def line(sku: str, price: str, *, quantity: int = 1, category: str | None = None) -> OrderLine:
    return OrderLine(sku=sku, quantity=quantity, unit_price=Decimal(price), category=category)


# --- strategies -------------------------------------------------------------------------------------


def decimals(
    max_units: int, places: tuple[int, ...] = (0, 2, 4), min_units: int = 0
) -> st.SearchStrategy[Decimal]:
    return st.builds(decimal, st.integers(min_units, max_units), st.sampled_from(places))


money = decimals(10**7, places=(2, 2, 4))  # up to 100 000.00
base_points = st.one_of(st.just(1), st.integers(1, 100))
pers = st.one_of(
    st.sampled_from(["1", "1.00", "3", "0.3", "7", "0.07", "2.5", "10", "100", "12.34", "0.01"]),
    decimals(10**5, places=(0, 1, 2, 3, 4), min_units=1).filter(lambda per: per >= Decimal("0.01")).map(str),
)
factors = st.one_of(
    st.sampled_from(["0.5", "0.9", "1", "1.2", "1.5", "2", "3", "0.3333", "1.0001", "10", "100"]),
    decimals(10**4, places=(0, 1, 2, 3, 4), min_units=1).filter(lambda f: f <= 100).map(str),
)
local_dates = st.dates(min_value=date(2025, 1, 1), max_value=date(2028, 12, 31))
instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)


def _date_range(pair: tuple[date, date]) -> list[str]:
    first, last = sorted(pair)
    return [first.isoformat(), last.isoformat()]


_CLAUSES: dict[str, st.SearchStrategy[Any]] = {
    "day_of_month": st.lists(st.integers(1, 31), min_size=1, max_size=8),
    "weekday": st.lists(st.integers(1, 7), min_size=1, max_size=4),
    "between": st.tuples(local_dates, local_dates).map(_date_range),
    "hour_between": st.tuples(st.integers(0, 23), st.integers(0, 24))
    .filter(lambda h: h[0] != h[1])
    .map(list),
    "birthday_month": st.booleans(),
    "tier": st.lists(st.sampled_from(TIERS), min_size=1, max_size=2, unique=True),
    "channel": st.lists(st.sampled_from(CHANNELS), min_size=1, max_size=2, unique=True),
    "category": st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=2, unique=True),
    "sku": st.lists(st.sampled_from(SKUS), min_size=1, max_size=2, unique=True),
    "first_order": st.booleans(),
}
_THRESHOLD = {"order_total_gte": money.map(str)}


@functools.cache
def _clause_names(thresholds: bool, clauses: tuple[str, ...] | None) -> st.SearchStrategy[list[str]]:
    names = sorted(({**_CLAUSES, **_THRESHOLD} if thresholds else _CLAUSES) if clauses is None else clauses)
    return st.lists(st.sampled_from(names), max_size=2, unique=True)


def when_clauses(draw: st.DrawFn, *, thresholds: bool, clauses: tuple[str, ...] | None = None) -> Json:
    """A `when` object of up to two clauses (often none, so that rules do apply)."""
    pool = {**_CLAUSES, **_THRESHOLD}
    return {key: draw(pool[key]) for key in draw(_clause_names(thresholds, clauses))}


_roundings = st.sampled_from(ROUNDINGS)
_stackings = st.sampled_from(["multiply", "add", "best"])
_excluded = st.lists(st.sampled_from(CATEGORIES), max_size=2, unique=True)
_caps = st.fixed_dictionaries(
    {}, optional={"per_order": st.integers(1, 10**6), "per_member_per_day": st.integers(1, 10**6)}
)
_timezones = st.sampled_from(TIMEZONES)


@st.composite
def rules_documents(
    draw: st.DrawFn,
    *,
    thresholds: bool = True,
    multipliers: bool = True,
    bonuses: bool = True,
    caps: bool = True,
    clauses: tuple[str, ...] | None = None,
) -> RulesDocument:
    """Random valid documents. Sizes are bounded so that no order reaches 2^63 points.
    `thresholds=False` leaves out `order_total_gte`; `clauses` limits the multipliers' conditions."""
    earn: Json = {
        "base": {"points": draw(base_points), "per": draw(pers), "rounding": draw(_roundings)},
        "exclude_categories": draw(_excluded),
    }
    if multipliers:
        earn["multipliers"] = [
            {
                "id": f"m{index}",
                "factor": draw(factors),
                "when": when_clauses(draw, thresholds=thresholds, clauses=clauses),
            }
            for index in range(draw(st.integers(0, 3)))
        ]
        earn["stacking"] = draw(_stackings)
    if bonuses:
        earn["bonuses"] = [
            {
                "id": f"b{index}",
                "points": draw(st.integers(1, 10**5)),
                "when": when_clauses(draw, thresholds=thresholds),
            }
            for index in range(draw(st.integers(0, 2)))
        ]
    if caps:
        earn["caps"] = draw(_caps)
    return RulesDocument.model_validate({"timezone": draw(_timezones), "currency": CURRENCY, "earn": earn})


order_lines = st.builds(
    OrderLine,
    sku=st.sampled_from(SKUS),
    quantity=st.integers(1, 5),
    unit_price=decimals(10**6, places=(2, 2, 4)),
    category=st.sampled_from((*CATEGORIES, None)),
)
_line_lists = st.lists(order_lines, min_size=1, max_size=4)
_relations = st.sampled_from(["above", "equal", "below"])
_channels = st.sampled_from((*CHANNELS, None))
_tiers = st.sampled_from((*TIERS, None))
_birthdays = st.one_of(st.none(), st.dates(min_value=date(1950, 1, 1), max_value=date(2010, 12, 31)))
_earned_today = st.integers(0, 2 * 10**6)


def total_for(draw: st.DrawFn, lines: tuple[OrderLine, ...]) -> Decimal:
    """A total below, equal to or above what the lines add up to."""
    covered = sum((item.amount for item in lines), Decimal(0))
    relation = draw(_relations) if lines else "above"
    if relation == "equal":
        return covered
    if relation == "below" and covered >= Decimal("0.01"):
        # an order-level discount: the lines add up to more than the total
        return decimal(draw(st.integers(0, math.ceil(covered * 100) - 1)), 2)
    return covered + draw(money)


@st.composite
def order_facts(draw: st.DrawFn, *, with_lines: bool | None = None) -> OrderFacts:
    """Random orders, with or without lines, paid at any time from 2025 to 2028."""
    has_lines = draw(st.booleans()) if with_lines is None else with_lines
    lines = tuple(draw(_line_lists)) if has_lines else ()
    return OrderFacts(
        total=total_for(draw, lines),
        currency=CURRENCY,
        paid_at=draw(instants),
        lines=lines,
        channel=draw(_channels),
        tier=draw(_tiers),
        birthday=draw(_birthdays),
        first_order=draw(st.booleans()),
        earned_today=draw(_earned_today),
    )


# --- an independent model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSegment:
    value: Fraction  # money
    line: OrderLine | None  # None: what the lines do not cover


def model_segments(facts: OrderFacts) -> list[ModelSegment]:
    """The order cut into lines and rest; a discount is shared in proportion to the lines."""
    total = Fraction(facts.total)
    amounts = [Fraction(item.unit_price) * item.quantity for item in facts.lines]
    covered = sum(amounts, Fraction(0))
    if not facts.lines:
        return [ModelSegment(total, None)]
    share = total / covered if covered > total else Fraction(1)
    segments = [ModelSegment(amount * share, item) for amount, item in zip(amounts, facts.lines, strict=True)]
    if covered < total:
        segments.append(ModelSegment(total - covered, None))
    return segments


def model_eligible(rules: RulesDocument, facts: OrderFacts) -> Fraction:
    excluded = set(rules.earn.exclude_categories)
    return sum(
        (
            segment.value
            for segment in model_segments(facts)
            if segment.line is None or segment.line.category not in excluded
        ),
        Fraction(0),
    )


def model_multiplied_points(rules: RulesDocument, facts: OrderFacts) -> int:
    """Points of a document whose multipliers have no conditions except `category` and `sku`,
    with no bonuses or caps: every segment's exact points times its stacked factor, rounded once."""
    earn = rules.earn
    rate = Fraction(earn.base.points) / Fraction(earn.base.per)
    excluded = set(earn.exclude_categories)
    exact = Fraction(0)
    for segment in model_segments(facts):
        if segment.line is not None and segment.line.category in excluded:
            continue
        factor: Fraction | None = None
        for rule in earn.multipliers:
            when = rule.when
            assert set(when.model_dump(exclude_none=True)) <= {"category", "sku"}
            if when.category is not None or when.sku is not None:
                if segment.line is None:
                    continue
                if when.category is not None and segment.line.category not in when.category:
                    continue
                if when.sku is not None and segment.line.sku not in when.sku:
                    continue
            rule_factor = Fraction(rule.factor)
            if factor is None:
                factor = rule_factor
            elif earn.stacking == "multiply":
                factor *= rule_factor
            elif earn.stacking == "add":
                factor += rule_factor - 1
            else:
                factor = max(factor, rule_factor)
        effective = Fraction(1) if factor is None else max(factor, Fraction(0))
        exact += segment.value * rate * effective
    return round_points(exact, earn.base.rounding)
