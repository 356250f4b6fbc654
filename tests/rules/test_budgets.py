"""Campaign budgets in the rules module: what a budgeted rule charges, what leaving
it out does to the order, and what refunds give back."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from app.rules import OrderFacts, RefundState, RulesDocument, earn_order, refund_amount
from app.rules.budgets import (
    EXHAUSTED,
    budget_key,
    budget_limits,
    charge_from_json,
    charge_json,
    earn_within_budgets,
    given_back,
    section_path,
)
from app.rules.earning import RuleRef
from tests.rules.strategies import decimal, document, line, order, order_facts, rules_documents

PROPERTIES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def budgeted(rules: RulesDocument, points: int = 10**9) -> RulesDocument:
    """The same document with a budget on every multiplier and bonus."""
    body: dict[str, Any] = rules.model_dump(mode="json")
    for rule in [*body["earn"]["multipliers"], *body["earn"]["bonuses"]]:
        rule["budget"] = {"points": points}
    return RulesDocument.model_validate(body)


class TestCharges:
    def test_a_budgeted_multiplier_charges_what_its_line_adds(self) -> None:
        rules = document({"multipliers": [{"id": "double", "factor": "2", "budget": {"points": 100}}]})
        earning = earn_order(rules, order("12.50"))
        (charge,) = earning.charges
        assert (charge.rule, charge.points) == (RuleRef("multipliers", "double"), 13)  # 12 -> 25

    def test_unbudgeted_rules_charge_nothing(self) -> None:
        rules = document({"multipliers": [{"id": "double", "factor": "2"}]})
        assert earn_order(rules, order("12.50")).charges == ()

    def test_a_cap_clips_the_bonus_before_the_multiplier(self) -> None:
        rules = document(
            {
                "multipliers": [{"id": "double", "factor": "2", "budget": {"points": 100}}],
                "bonuses": [{"id": "welcome", "points": 5, "budget": {"points": 100}}],
                "caps": {"per_order": 17},
            }
        )
        earning = earn_order(rules, order("10.00"))
        assert earning.points == 17
        assert [(c.rule.id, c.points) for c in earning.charges] == [("double", 7)]

    def test_a_skipped_rule_is_a_zero_line_and_charges_nothing(self) -> None:
        rules = document({"multipliers": [{"id": "double", "factor": "2", "budget": {"points": 1}}]})
        earning = earn_order(rules, order("10.00"), skip={RuleRef("multipliers", "double"): EXHAUSTED})
        assert earning.points == 10
        assert [(x.rule, x.points, x.detail) for x in earning.lines][-1] == ("double", 0, "budget exhausted")
        assert earning.charges == ()

    def test_a_line_multiplier_weighs_only_its_lines(self) -> None:
        rules = document(
            {
                "multipliers": [
                    {"id": "shoes", "factor": "3", "when": {"category": ["shoes"]}, "budget": {"points": 9}}
                ]
            }
        )
        facts = order(
            "20.00", lines=(line("S", "10.00", category="shoes"), line("T", "10.00", category="tees"))
        )
        (charge,) = earn_order(rules, facts).charges
        assert charge.points == 20
        assert {s.key: s.weight for s in charge.weights} == {"line:0": 20, "line:1": 0}

    def test_names_follow_the_document(self) -> None:
        rules = RulesDocument.model_validate(
            {
                "earn": {
                    "base": {"points": 1, "per": "1"},
                    "bonuses": [{"id": "launch", "points": 5, "budget": {"points": 50, "per_member": 5}}],
                },
                "partner_earn": {
                    "coffee-co": {
                        "base": {"points": 1, "per": "1"},
                        "multipliers": [{"id": "x", "factor": "2", "budget": {"points": 9}}],
                    }
                },
            }
        )
        assert [(limit.key, limit.points, limit.per_member) for limit in budget_limits(rules)] == [
            ("earn.bonuses.launch", 50, 5),
            ("partner_earn.coffee-co.multipliers.x", 9, None),
        ]

    @PROPERTIES
    @given(rules=rules_documents(), facts=order_facts())
    def test_charges_never_exceed_what_the_rules_added_or_the_order(
        self, rules: RulesDocument, facts: OrderFacts
    ) -> None:
        rules = budgeted(rules)
        earning = earn_order(rules, facts)
        added = {line.rule: line.points for line in earning.lines}
        if all(points >= 0 for rule, points in added.items() if not rule.startswith("cap:")):
            # caps take the last-added points first: what is charged is in the order's points
            assert sum(charge.points for charge in earning.charges) <= earning.points
        for charge in earning.charges:
            assert 0 < charge.points <= added[charge.rule.id]

    @PROPERTIES
    @given(rules=rules_documents(), facts=order_facts(), data=st.data())
    def test_leaving_rules_out_keeps_the_lines_adding_up(
        self, rules: RulesDocument, facts: OrderFacts, data: st.DataObject
    ) -> None:
        rules = budgeted(rules)
        full = earn_order(rules, facts)
        left_out = (
            data.draw(st.sets(st.sampled_from([c.rule for c in full.charges]))) if full.charges else set()
        )
        earning = earn_order(rules, facts, skip=dict.fromkeys(left_out, EXHAUSTED))
        assert sum(line.points for line in earning.lines) == earning.points
        assert not {charge.rule for charge in earning.charges} & left_out
        for rule in left_out:
            assert (rule.id, 0, EXHAUSTED) in [(x.rule, x.points, x.detail) for x in earning.lines]

    @PROPERTIES
    @given(rules=rules_documents(), facts=order_facts(), room=st.integers(0, 10**6))
    def test_within_budgets_charges_only_what_the_budgets_cover(
        self, rules: RulesDocument, facts: OrderFacts, room: int
    ) -> None:
        rules = budgeted(rules)
        earning = earn_within_budgets(
            rules, facts, section_path(), lambda _key, points: None if points <= room else "budget"
        )
        assert all(charge.points <= room for charge in earning.charges)
        assert sum(line.points for line in earning.lines) == earning.points


class TestGivenBack:
    def test_json_round_trip(self) -> None:
        rules = document({"multipliers": [{"id": "d", "factor": "1.5", "budget": {"points": 100}}]})
        (charge,) = earn_order(rules, order("33.33")).charges
        key, again = charge_from_json(charge_json("earn", charge))
        assert (key, again) == (budget_key("earn", charge.rule), charge)

    @PROPERTIES
    @given(
        rules=rules_documents(),
        facts=order_facts(with_lines=False),
        cuts=st.lists(st.integers(0, 10**4), max_size=6),
    )
    def test_refunds_of_the_whole_order_give_back_exactly_each_charge(
        self, rules: RulesDocument, facts: OrderFacts, cuts: list[int]
    ) -> None:
        assume(facts.total > 0)
        rules = budgeted(rules)
        earning = earn_order(rules, facts)
        units = int(facts.total.scaleb(4))
        marks = sorted({units * cut // 10**4 for cut in cuts} | {0, units})
        state, taken = RefundState.empty(), 0
        returned = {charge.rule: 0 for charge in earning.charges}
        for start, end in itertools.pairwise(marks):
            outcome = refund_amount(earning.points, earning.segments, state, decimal(end - start, 4))
            for charge in earning.charges:
                back = given_back(
                    charge, earning.points, state, outcome.state, taken, outcome.taken_back_total
                )
                assert back >= 0
                returned[charge.rule] += back
                assert returned[charge.rule] <= charge.points
            state, taken = outcome.state, outcome.taken_back_total
        assert returned == {charge.rule: charge.points for charge in earning.charges}

    def test_a_partial_refund_gives_back_its_share_rounded_down(self) -> None:
        rules = document({"bonuses": [{"id": "b", "points": 7, "budget": {"points": 70}}]})
        earning = earn_order(rules, order("10.00"))
        (charge,) = earning.charges
        outcome = refund_amount(earning.points, earning.segments, RefundState.empty(), Decimal("5.00"))
        assert outcome.points == 8  # floor(17 / 2)
        assert (
            given_back(charge, earning.points, RefundState.empty(), outcome.state, 0, 8) == 3
        )  # floor(7 x 8 / 17)
