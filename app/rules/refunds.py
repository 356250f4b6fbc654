"""How many points a refund takes back.

A refund is money. Refunding lines points that money at those lines first; a refund
by amount takes an even slice of whatever is left of every segment. What the
refunds took from each segment, as exact fractions, is the order's refund state.
The points taken back so far are the order's points times the refunded share of
its weight (a segment's weight is what it earned before rounding), rounded down.
Each refund takes the difference between that figure after and before it, so any
sequence of refunds that returns the whole total takes back exactly the order's
points, and none ever takes back more.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from app.rules.earning import OrderLine, RulesError, Segment


@dataclass(frozen=True, slots=True)
class RefundState:
    """Money refunded so far from each segment, and units refunded from each line."""

    money: Mapping[str, Fraction]
    units: Mapping[int, int]

    @classmethod
    def empty(cls) -> RefundState:
        return cls({}, {})

    def to_json(self) -> dict[str, dict[str, str | int]]:
        return {
            "money": {key: str(value) for key, value in self.money.items()},
            "units": {str(index): count for index, count in self.units.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Mapping[str, str | int]]) -> RefundState:
        money = {key: Fraction(str(value)) for key, value in data.get("money", {}).items()}
        units = {int(index): int(count) for index, count in data.get("units", {}).items()}
        return cls(money, units)


@dataclass(frozen=True, slots=True)
class RefundLine:
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class RefundOutcome:
    state: RefundState
    amount: Fraction  # money this refund returned
    points: int  # points this refund takes back
    taken_back_total: int  # points taken back by all refunds so far, this one included


def refunded_money(state: RefundState) -> Fraction:
    return sum(state.money.values(), Fraction(0))


def taken_back(points: int, segments: Sequence[Segment], state: RefundState, order_units: int = 0) -> int:
    """Points taken back by the refunds in `state`, of an order that earned `points`
    and has `order_units` units on its lines."""
    total_weight = sum((Fraction(segment.weight) for segment in segments), Fraction(0))
    share = Fraction(0)
    if total_weight > 0:
        for segment in segments:
            refunded = state.money.get(segment.key, Fraction(0))
            if refunded and segment.value:
                share += Fraction(segment.weight) * refunded / Fraction(segment.value)
        share /= total_weight
    elif total_money := sum((Fraction(segment.value) for segment in segments), Fraction(0)):
        # Nothing earned by weight (all excluded, bonuses only): in proportion to money.
        share = refunded_money(state) / total_money
    elif order_units:
        # A free order (total 0) with lines: in proportion to the units returned.
        share = Fraction(sum(state.units.values()), order_units)
    return math.floor(points * share)


def _spread(segments: Sequence[Segment], money: dict[str, Fraction], amount: Fraction, field: str) -> None:
    """Take `amount` from all segments in proportion to what is left of each."""
    left = {
        segment.key: Fraction(segment.value) - money.get(segment.key, Fraction(0)) for segment in segments
    }
    remaining = sum(left.values(), Fraction(0))
    if amount > remaining:
        raise RulesError(
            "refund_exceeds_order",
            f"the refund exceeds what is left of the order ({_show(remaining)})",
            field=field,
        )
    if amount == 0:
        return
    for key, value in left.items():
        if value:
            money[key] = money.get(key, Fraction(0)) + value * amount / remaining


def _show(value: Fraction) -> str:
    return f"{Decimal(value.numerator) / Decimal(value.denominator):.4f}".rstrip("0").rstrip(".")


def refund_amount(
    points: int, segments: Sequence[Segment], state: RefundState, amount: Decimal
) -> RefundOutcome:
    if amount <= 0:
        # A refund of nothing is a mistake, not a refund; it would also let an amount
        # refund of a free order pretend its units had not been returned.
        raise RulesError("validation_error", "must be greater than 0", field="body.amount.amount")
    money = dict(state.money)
    _spread(segments, money, Fraction(amount), "body.amount.amount")
    return _outcome(points, segments, state, RefundState(money, dict(state.units)), Fraction(amount))


def refund_lines(
    points: int,
    segments: Sequence[Segment],
    order_lines: Sequence[OrderLine],
    state: RefundState,
    lines: Sequence[RefundLine],
) -> RefundOutcome:
    """Return `quantity` units of each SKU. A SKU on several lines is taken from them
    in order. Each unit returns its share of its line's segment; what that line has
    already given up to earlier refunds by amount is taken from the rest of the order."""
    money = dict(state.money)
    units = dict(state.units)
    values = {segment.key: Fraction(segment.value) for segment in segments}
    returned = Fraction(0)
    for position, wanted in enumerate(lines):
        field = f"body.lines.{position}"
        matching = [index for index, line in enumerate(order_lines) if line.sku == wanted.sku]
        if not matching:
            raise RulesError(
                "validation_error", f"the order has no line with SKU {wanted.sku}", field=f"{field}.sku"
            )
        left = wanted.quantity
        for index in matching:
            free = order_lines[index].quantity - units.get(index, 0)
            take = min(free, left)
            if take <= 0:
                continue
            units[index] = units.get(index, 0) + take
            left -= take
            key = f"line:{index}"
            share = values[key] * take / order_lines[index].quantity
            returned += share
            own = min(share, values[key] - money.get(key, Fraction(0)))
            money[key] = money.get(key, Fraction(0)) + own
            _spread(segments, money, share - own, f"{field}.quantity")
        if left:
            raise RulesError(
                "refund_exceeds_order",
                f"only {wanted.quantity - left} more unit(s) of {wanted.sku} can be refunded",
                field=f"{field}.quantity",
            )
    order_units = sum(line.quantity for line in order_lines)
    return _outcome(points, segments, state, RefundState(money, units), returned, order_units)


def _outcome(
    points: int,
    segments: Sequence[Segment],
    before: RefundState,
    after: RefundState,
    amount: Fraction,
    order_units: int = 0,
) -> RefundOutcome:
    so_far = taken_back(points, segments, after, order_units)
    return RefundOutcome(after, amount, so_far - taken_back(points, segments, before, order_units), so_far)
