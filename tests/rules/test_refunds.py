"""Refunds take points back: random sequences of partial refunds, by amount and by lines."""

from __future__ import annotations

import itertools
import json
import math
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from app.rules import (
    OrderEarning,
    OrderFacts,
    RefundLine,
    RefundOutcome,
    RefundState,
    RulesDocument,
    RulesError,
    earn_order,
    refund_amount,
    refund_lines,
)
from app.rules.refunds import taken_back
from tests.rules.strategies import (
    decimal,
    document,
    exact_decimal,
    line,
    order,
    order_facts,
    rules_documents,
)

EXAMPLES = settings(max_examples=200, deadline=None)
# Refusals and the JSON round trip come after random partial refunds too; fewer examples do.
FEWER_EXAMPLES = settings(max_examples=100, deadline=None)


class Refunds:
    """Drives refunds against one order and checks every step; keeps its own account of
    the money returned and the units of each line still unreturned."""

    def __init__(self, earning: OrderEarning, facts: OrderFacts) -> None:
        self.earning = earning
        self.facts = facts
        self.state = RefundState.empty()
        self.returned = Fraction(0)
        self.taken = 0
        self.units_left = [item.quantity for item in facts.lines]

    @property
    def money_left(self) -> Fraction:
        return Fraction(self.facts.total) - self.returned

    def unreturned_line_value(self) -> Fraction:
        """Money still to come back from the units not yet returned."""
        values = {segment.key: Fraction(segment.value) for segment in self.earning.segments}
        return sum(
            (
                values[f"line:{index}"] * left / item.quantity
                for index, (item, left) in enumerate(zip(self.facts.lines, self.units_left, strict=True))
            ),
            Fraction(0),
        )

    def by_amount(self, amount: Decimal) -> RefundOutcome:
        outcome = refund_amount(self.earning.points, self.earning.segments, self.state, amount)
        assert outcome.amount == Fraction(amount)
        return self._record(outcome)

    def by_lines(self, sku: str, quantity: int) -> RefundOutcome:
        outcome = refund_lines(
            self.earning.points,
            self.earning.segments,
            self.facts.lines,
            self.state,
            [RefundLine(sku, quantity)],
        )
        for index, item in enumerate(self.facts.lines):
            if item.sku == sku:
                take = min(quantity, self.units_left[index])
                self.units_left[index] -= take
                quantity -= take
        assert quantity == 0
        return self._record(outcome)

    def units_of(self, sku: str) -> int:
        return sum(
            left for item, left in zip(self.facts.lines, self.units_left, strict=True) if item.sku == sku
        )

    def _record(self, outcome: RefundOutcome) -> RefundOutcome:
        assert outcome.points >= 0
        self.taken += outcome.points
        self.returned += outcome.amount
        assert outcome.taken_back_total == self.taken
        assert self.taken <= self.earning.points
        units = sum(item.quantity for item in self.facts.lines)
        assert self.taken == taken_back(self.earning.points, self.earning.segments, outcome.state, units)
        # The state is stored as JSON between refunds.
        self.state = RefundState.from_json(json.loads(json.dumps(outcome.state.to_json())))
        assert self.state == outcome.state
        return outcome


def partial_refunds(data: st.DataObject, refunds: Refunds) -> None:
    """Up to five random refunds, by amount or by lines, that leave enough money in the order
    for every unit not yet returned."""
    skus = sorted({item.sku for item in refunds.facts.lines})
    for _ in range(data.draw(st.integers(0, 5), label="refunds")):
        by_lines: bool = data.draw(st.booleans(), label="by lines") if skus else False
        if by_lines:
            sku = data.draw(st.sampled_from(skus), label="sku")
            if refunds.units_of(sku):
                refunds.by_lines(sku, data.draw(st.integers(1, refunds.units_of(sku)), label="units"))
        else:
            budget = refunds.money_left - refunds.unreturned_line_value()
            most = math.floor(budget * 10**4)
            if most >= 1:
                refunds.by_amount(decimal(data.draw(st.integers(1, most), label="amount"), 4))


def refund_everything_left(refunds: Refunds) -> None:
    for sku in sorted({item.sku for item in refunds.facts.lines}):
        if refunds.units_of(sku):
            refunds.by_lines(sku, refunds.units_of(sku))
    assert refunds.money_left >= 0, "returning every unit gave back more than the order's total"
    if refunds.money_left:
        refunds.by_amount(exact_decimal(refunds.money_left))


class TestRefundSequences:
    @EXAMPLES
    @given(rules=rules_documents(), facts=order_facts(), data=st.data())
    def test_returning_the_whole_total_takes_back_exactly_the_points(
        self, rules: RulesDocument, facts: OrderFacts, data: st.DataObject
    ) -> None:
        assume(facts.total > 0)  # a free order: see TestFreeOrder
        refunds = Refunds(earn_order(rules, facts), facts)
        partial_refunds(data, refunds)
        refund_everything_left(refunds)
        assert refunds.returned == Fraction(facts.total)
        assert refunds.taken == refunds.earning.points

    @EXAMPLES
    @given(
        rules=rules_documents(),
        facts=order_facts(with_lines=False),
        cuts=st.lists(st.integers(0, 10**4), max_size=6),
    )
    def test_refunds_by_amount_that_add_up_to_the_total_take_back_the_points(
        self, rules: RulesDocument, facts: OrderFacts, cuts: list[int]
    ) -> None:
        assume(facts.total > 0)  # a free order: see TestFreeOrder
        # Cut the total at random points (in ten-thousandths of the total).
        units = int(facts.total.scaleb(4))
        marks = sorted({units * cut // 10**4 for cut in cuts} | {0, units})
        refunds = Refunds(earn_order(rules, facts), facts)
        for start, end in itertools.pairwise(marks):
            refunds.by_amount(decimal(end - start, 4))
        assert refunds.returned == Fraction(facts.total)
        assert refunds.taken == refunds.earning.points

    @FEWER_EXAMPLES
    @given(rules=rules_documents(), facts=order_facts(), data=st.data())
    def test_a_refund_past_what_is_left_is_refused(
        self, rules: RulesDocument, facts: OrderFacts, data: st.DataObject
    ) -> None:
        refunds = Refunds(earn_order(rules, facts), facts)
        partial_refunds(data, refunds)
        too_much = decimal(math.ceil(refunds.money_left * 10**4) + 1, 4)
        with pytest.raises(RulesError) as refused:
            refunds.by_amount(too_much)
        assert refused.value.code == "refund_exceeds_order"
        assert refused.value.field == "body.amount.amount"

    @FEWER_EXAMPLES
    @given(rules=rules_documents(), facts=order_facts(with_lines=True), data=st.data())
    def test_returning_more_units_than_are_left_is_refused(
        self, rules: RulesDocument, facts: OrderFacts, data: st.DataObject
    ) -> None:
        refunds = Refunds(earn_order(rules, facts), facts)
        partial_refunds(data, refunds)
        sku = data.draw(st.sampled_from(sorted({item.sku for item in facts.lines})), label="sku")
        with pytest.raises(RulesError) as refused:
            refunds.by_lines(sku, refunds.units_of(sku) + 1)
        assert refused.value.code == "refund_exceeds_order"
        assert refused.value.field == "body.lines.0.quantity"


class TestRefundState:
    @FEWER_EXAMPLES
    @given(rules=rules_documents(), facts=order_facts(), data=st.data())
    def test_round_trips_through_json(
        self, rules: RulesDocument, facts: OrderFacts, data: st.DataObject
    ) -> None:
        refunds = Refunds(earn_order(rules, facts), facts)
        partial_refunds(data, refunds)
        state = refunds.state
        assert RefundState.from_json(json.loads(json.dumps(state.to_json()))) == state

    def test_keeps_exact_fractions(self) -> None:
        state = RefundState({"line:0": Fraction(1, 3), "rest": Fraction(5, 2)}, {0: 2})
        assert state.to_json() == {"money": {"line:0": "1/3", "rest": "5/2"}, "units": {"0": 2}}
        assert RefundState.from_json(state.to_json()) == state

    def test_empty(self) -> None:
        assert RefundState.from_json(RefundState.empty().to_json()) == RefundState.empty()
        assert RefundState.from_json({}) == RefundState.empty()


def earned(facts: OrderFacts, rules: RulesDocument | None = None) -> OrderEarning:
    return earn_order(rules or document(), facts)


SHOES_AND_SOCKS = (
    line("SHOE", "60.00", category="shoes"),
    line("SOCK", "10.00", quantity=4, category="socks"),
)


class TestRefundAmount:
    def test_takes_back_the_refunded_share_rounded_down(self) -> None:
        earning = earned(order("100.00"))
        first = refund_amount(earning.points, earning.segments, RefundState.empty(), Decimal("33.33"))
        assert (first.points, first.taken_back_total) == (33, 33)
        second = refund_amount(earning.points, earning.segments, first.state, Decimal("66.67"))
        assert (second.points, second.taken_back_total) == (67, 100)

    def test_weighs_multiplied_lines_more(self) -> None:
        # Shoes earn 3x: 180 of the order's 220 points. Refunding half of the order by amount
        # takes an even slice of every segment, so half of the points.
        rules = document({"multipliers": [{"id": "shoes", "factor": "3", "when": {"category": ["shoes"]}}]})
        earning = earned(order("100.00", lines=SHOES_AND_SOCKS), rules)
        assert earning.points == 180 + 40
        outcome = refund_amount(earning.points, earning.segments, RefundState.empty(), Decimal("50.00"))
        assert outcome.points == 110

    def test_a_refund_of_nothing_is_refused(self) -> None:
        earning = earned(order("100.00"))
        with pytest.raises(RulesError) as refused:
            refund_amount(earning.points, earning.segments, RefundState.empty(), Decimal("0"))
        assert (refused.value.code, refused.value.field) == ("validation_error", "body.amount.amount")

    def test_more_than_the_order_is_refused(self) -> None:
        earning = earned(order("100.00"))
        with pytest.raises(RulesError) as refused:
            refund_amount(earning.points, earning.segments, RefundState.empty(), Decimal("100.01"))
        assert refused.value.code == "refund_exceeds_order"


class TestRefundLines:
    def test_takes_back_what_the_returned_line_earned(self) -> None:
        rules = document({"multipliers": [{"id": "shoes", "factor": "3", "when": {"category": ["shoes"]}}]})
        earning = earned(order("100.00", lines=SHOES_AND_SOCKS), rules)
        outcome = refund_lines(
            earning.points, earning.segments, SHOES_AND_SOCKS, RefundState.empty(), [RefundLine("SHOE", 1)]
        )
        assert outcome.amount == Fraction(60)
        assert outcome.points == 180
        assert outcome.state.units == {0: 1}

    def test_one_unit_of_several(self) -> None:
        earning = earned(order("100.00", lines=SHOES_AND_SOCKS))
        outcome = refund_lines(
            earning.points, earning.segments, SHOES_AND_SOCKS, RefundState.empty(), [RefundLine("SOCK", 1)]
        )
        assert (outcome.amount, outcome.points) == (Fraction(10), 10)

    def test_a_discounted_line_returns_its_share_of_the_total(self) -> None:
        # The lines add up to 100.00, the customer paid 80.00: a shoe returns 48.00.
        earning = earned(order("80.00", lines=SHOES_AND_SOCKS))
        outcome = refund_lines(
            earning.points, earning.segments, SHOES_AND_SOCKS, RefundState.empty(), [RefundLine("SHOE", 1)]
        )
        assert outcome.amount == Fraction(48)
        assert outcome.points == 48

    def test_an_unknown_sku_is_refused(self) -> None:
        earning = earned(order("100.00", lines=SHOES_AND_SOCKS))
        with pytest.raises(RulesError) as refused:
            refund_lines(
                earning.points, earning.segments, SHOES_AND_SOCKS, RefundState.empty(), [RefundLine("HAT", 1)]
            )
        assert (refused.value.code, refused.value.field) == ("validation_error", "body.lines.0.sku")

    def test_units_already_returned_are_refused(self) -> None:
        earning = earned(order("100.00", lines=SHOES_AND_SOCKS))
        first = refund_lines(
            earning.points, earning.segments, SHOES_AND_SOCKS, RefundState.empty(), [RefundLine("SHOE", 1)]
        )
        with pytest.raises(RulesError) as refused:
            refund_lines(
                earning.points, earning.segments, SHOES_AND_SOCKS, first.state, [RefundLine("SHOE", 1)]
            )
        assert (refused.value.code, refused.value.field) == ("refund_exceeds_order", "body.lines.0.quantity")

    def test_a_line_after_a_refund_by_amount_takes_from_the_rest(self) -> None:
        # 40.00 by amount takes 24.00 of the shoe and 16.00 of the socks; returning the shoe
        # then takes its last 36.00 and 24.00 from the socks: the whole order is back.
        earning = earned(order("100.00", lines=SHOES_AND_SOCKS))
        first = refund_amount(earning.points, earning.segments, RefundState.empty(), Decimal("40.00"))
        assert first.state.money == {"line:0": Fraction(24), "line:1": Fraction(16)}
        second = refund_lines(
            earning.points, earning.segments, SHOES_AND_SOCKS, first.state, [RefundLine("SHOE", 1)]
        )
        assert second.amount == Fraction(60)
        assert second.state.money == {"line:0": Fraction(60), "line:1": Fraction(40)}
        assert (second.points, second.taken_back_total) == (60, 100)

    def test_a_line_whose_money_is_all_back_is_refused(self) -> None:
        earning = earned(order("100.00", lines=SHOES_AND_SOCKS))
        everything = refund_amount(earning.points, earning.segments, RefundState.empty(), Decimal("100.00"))
        with pytest.raises(RulesError) as refused:
            refund_lines(
                earning.points, earning.segments, SHOES_AND_SOCKS, everything.state, [RefundLine("SOCK", 1)]
            )
        assert (refused.value.code, refused.value.field) == ("refund_exceeds_order", "body.lines.0.quantity")


class TestWholeOrderAfterADiscount:
    """Found by the sequence property (fixed since): three lines of 1.00, 2.00 paid."""

    def test_refunding_the_total_takes_back_all_points(self) -> None:
        lines = tuple(line(sku, "1.00") for sku in ("A", "B", "C"))
        earning = earned(order("2.00", lines=lines))
        assert earning.points == 2
        outcome = refund_amount(earning.points, earning.segments, RefundState.empty(), Decimal("2.00"))
        assert outcome.taken_back_total == 2


class TestFreeOrder:
    """An order paid in full with a voucher (total 0.00) that earned a bonus."""

    def test_returning_all_of_it_takes_back_the_bonus(self) -> None:
        rules = document({"bonuses": [{"id": "first-order", "points": 100, "when": {"first_order": True}}]})
        lines = (line("SHOE", "50.00"),)
        earning = earned(order("0.00", lines=lines, first_order=True), rules)
        assert earning.points == 100
        outcome = refund_lines(
            earning.points, earning.segments, lines, RefundState.empty(), [RefundLine("SHOE", 1)]
        )
        assert outcome.taken_back_total == 100
