"""Properties of `earn_order` over random rules documents and random orders."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from fractions import Fraction

from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.rules import OrderFacts, RulesDocument, earn_order
from tests.rules.strategies import (
    decimals,
    document,
    line,
    model_eligible,
    model_multiplied_points,
    order,
    order_facts,
    replace_earn,
    round_points,
    rules_documents,
)

EXAMPLES = settings(max_examples=200, deadline=None)

# Found by these properties (fixed since): three lines of 1.00, 2.00 paid, shares of 2/3.
THIRDS = order("2.00", lines=tuple(line(sku, "1.00") for sku in ("SKU-1", "SKU-2", "SKU-3")))
TRIPLE_CEIL = document(
    {"base": {"points": 1, "per": "1", "rounding": "ceil"}, "multipliers": [{"id": "m0", "factor": "3"}]}
)
# Found by these properties: a rate of 1/3 point per unit, on exactly 3.00.
ONE_PER_THREE = document({"base": {"points": 1, "per": "3", "rounding": "floor"}})
# Socks, socks, shoes at 1.00 each, 2.00 paid: shares of 2/3, earning 1, 1 and 2 points exactly.
SOCKS_SOCKS_SHOES = order(
    "2.00",
    lines=(
        line("SKU-1", "1.00", category="socks"),
        line("SKU-2", "1.00", category="socks"),
        line("SKU-3", "1.00", category="shoes"),
    ),
)
PER_LINE_FACTORS = document(
    {
        "multipliers": [
            {"id": "m0", "factor": "1.5", "when": {"category": ["socks"]}},
            {"id": "m1", "factor": "3", "when": {"category": ["shoes"]}},
        ]
    }
)


class TestLargerOrders:
    @EXAMPLES
    @given(
        rules=rules_documents(thresholds=False),
        facts=order_facts(),
        increase=st.one_of(st.just(Decimal("0.01")), decimals(10**7, places=(2, 4))),
    )
    def test_a_larger_total_never_earns_fewer_points(
        self, rules: RulesDocument, facts: OrderFacts, increase: Decimal
    ) -> None:
        larger = dataclasses.replace(facts, total=facts.total + increase)
        assert earn_order(rules, larger).points >= earn_order(rules, facts).points


class TestCaps:
    @EXAMPLES
    @given(rules=rules_documents(), facts=order_facts())
    def test_points_never_pass_the_caps(self, rules: RulesDocument, facts: OrderFacts) -> None:
        points = earn_order(rules, facts).points
        caps = rules.earn.caps
        if caps.per_order is not None:
            assert points <= caps.per_order
        if caps.per_member_per_day is not None:
            if facts.earned_today < caps.per_member_per_day:
                assert facts.earned_today + points <= caps.per_member_per_day
            else:
                assert points == 0

    @EXAMPLES
    @given(rules=rules_documents(), facts=order_facts())
    def test_a_clip_shows_in_the_explanation(self, rules: RulesDocument, facts: OrderFacts) -> None:
        uncapped = earn_order(replace_earn(rules, caps={}), facts)
        result = earn_order(rules, facts)
        clips = sum(item.points for item in result.lines if item.rule.startswith("cap:"))
        assert all(item.points < 0 for item in result.lines if item.rule.startswith("cap:"))
        assert result.points == uncapped.points + clips


class TestExplanation:
    @EXAMPLES
    @given(rules=rules_documents(), facts=order_facts())
    def test_the_lines_add_up_to_the_points(self, rules: RulesDocument, facts: OrderFacts) -> None:
        result = earn_order(rules, facts)
        assert sum(item.points for item in result.lines) == result.points
        assert result.lines[0].rule == "base"
        bare = earn_order(rules, facts, explain=False)
        assert [(item.rule, item.points) for item in bare.lines] == [
            (item.rule, item.points) for item in result.lines
        ]

    @EXAMPLES
    @given(rules=rules_documents(), facts=order_facts())
    def test_points_are_non_negative_ints(self, rules: RulesDocument, facts: OrderFacts) -> None:
        result = earn_order(rules, facts)
        assert type(result.points) is int
        assert result.points >= 0
        assert all(type(item.points) is int for item in result.lines)

    @EXAMPLES
    @given(rules=rules_documents(), facts=order_facts())
    @example(rules=document(), facts=THIRDS)
    def test_segments_share_out_the_total(self, rules: RulesDocument, facts: OrderFacts) -> None:
        # Refunds take points back by segment: the segments must be the order's money, exactly.
        segments = earn_order(rules, facts).segments
        assert sum((Fraction(segment.value) for segment in segments), Fraction(0)) == Fraction(facts.total)
        assert all(segment.value >= 0 and segment.weight >= 0 for segment in segments)


class TestRounding:
    @EXAMPLES
    @given(rules=rules_documents(multipliers=False, bonuses=False, caps=False), facts=order_facts())
    @example(rules=ONE_PER_THREE, facts=order("3.00"))
    def test_base_points_are_the_eligible_amount_rounded_once(
        self, rules: RulesDocument, facts: OrderFacts
    ) -> None:
        base = rules.earn.base
        exact = model_eligible(rules, facts) * base.points / Fraction(base.per)
        assert earn_order(rules, facts).points == round_points(exact, base.rounding)

    @EXAMPLES
    @given(
        rules=rules_documents(multipliers=False, bonuses=False, caps=False),
        facts=order_facts(with_lines=False),
        factor=decimals(10**4, places=(0, 1, 2, 4), min_units=1).filter(lambda f: f <= 100),
    )
    @example(rules=ONE_PER_THREE, facts=order("1.00"), factor=Decimal("3"))
    def test_one_order_multiplier_rounds_once(
        self, rules: RulesDocument, facts: OrderFacts, factor: Decimal
    ) -> None:
        multiplied = replace_earn(rules, multipliers=[{"id": "always", "factor": str(factor)}])
        base = rules.earn.base
        exact = Fraction(facts.total) * base.points / Fraction(base.per) * Fraction(factor)
        assert earn_order(multiplied, facts).points == round_points(exact, base.rounding)

    @EXAMPLES
    @given(
        rules=rules_documents(bonuses=False, caps=False, clauses=("category", "sku")),
        facts=order_facts(),
    )
    @example(rules=TRIPLE_CEIL, facts=THIRDS)
    @example(rules=PER_LINE_FACTORS, facts=SOCKS_SOCKS_SHOES)
    def test_multipliers_on_lines_round_once(self, rules: RulesDocument, facts: OrderFacts) -> None:
        assert earn_order(rules, facts).points == model_multiplied_points(rules, facts)
