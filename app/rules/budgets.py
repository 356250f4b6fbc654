"""Campaign budgets: which rules have one, what an order charges them, what a refund
gives back. Pure: the budgets' state lives with the caller (the database for
orders, a dictionary for a what-if replay).

A budget is named by where its rule sits in the rules document: `earn.multipliers.<id>`,
`earn.bonuses.<id>`, `partner_earn.<partner>.multipliers.<id>`... A later rules
version with a rule of the same id in the same place spends the same budget, under
that version's `points` and `per_member` (raising `points` adds to what is left,
lowering it takes away); a campaign that should start afresh gets a new rule id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

from app.rules.document import Earn, RulesDocument
from app.rules.earning import (
    BudgetCharge,
    OrderEarning,
    OrderFacts,
    RuleRef,
    Segment,
    earn_order,
)
from app.rules.refunds import RefundState, taken_back

EXHAUSTED = "budget exhausted"
Scope = Literal["budget", "member"]


@dataclass(frozen=True, slots=True)
class BudgetLimit:
    """A budget as one rules version sets it."""

    key: str
    rule: RuleRef
    points: int
    per_member: int | None


def section_path(partner: str | None = None) -> str:
    """Where an earn section sits in the document: `earn`, or a partner's `partner_earn.<code>`."""
    return "earn" if partner is None else f"partner_earn.{partner}"


def budget_key(path: str, rule: RuleRef) -> str:
    return f"{path}.{rule.kind}.{rule.id}"


def _section_limits(path: str, earn: Earn) -> Iterator[BudgetLimit]:
    for multiplier in earn.multipliers:
        if multiplier.budget is not None:
            rule = RuleRef("multipliers", multiplier.id)
            yield BudgetLimit(
                budget_key(path, rule), rule, multiplier.budget.points, multiplier.budget.per_member
            )
    for bonus in earn.bonuses:
        if bonus.budget is not None:
            rule = RuleRef("bonuses", bonus.id)
            yield BudgetLimit(budget_key(path, rule), rule, bonus.budget.points, bonus.budget.per_member)


def budget_limits(rules: RulesDocument) -> tuple[BudgetLimit, ...]:
    """Every budget the document sets, the program's `earn` first, then each partner's."""
    found = list(_section_limits(section_path(), rules.earn))
    for partner, earn in sorted(rules.partner_earn.items()):
        found.extend(_section_limits(section_path(partner), earn))
    return tuple(found)


def exhausted_detail(scope: Scope, limit: int | None = None) -> str:
    """The explanation's detail for a rule its budget could not cover."""
    if scope == "member":
        return f"{EXHAUSTED}: this member's share{'' if limit is None else f' ({limit})'} is spent"
    return EXHAUSTED


def charge_json(path: str, charge: BudgetCharge) -> dict[str, Any]:
    """A charge as the order keeps it (paid_order.budget_charges) and the database takes it."""
    return {
        "budget": budget_key(path, charge.rule),
        "kind": charge.rule.kind,
        "rule": charge.rule.id,
        "points": charge.points,
        "weights": [
            {"key": segment.key, "value": str(segment.value), "weight": str(segment.weight)}
            for segment in charge.weights
        ],
    }


def charge_from_json(data: Mapping[str, Any]) -> tuple[str, BudgetCharge]:
    weights = tuple(
        Segment(item["key"], Fraction(item["value"]), Fraction(item["weight"]))
        for item in data.get("weights", ())
    )
    return data["budget"], BudgetCharge(RuleRef(data["kind"], data["rule"]), int(data["points"]), weights)


def given_back(
    charge: BudgetCharge,
    order_points: int,
    before: RefundState,
    after: RefundState,
    taken_before: int,
    taken_after: int,
) -> int:
    """What a refund gives back to the budget of one charge: the charge's share of
    what the refunded part earned. A multiplier's share follows its own weights (a
    refund of the shoes gives back the shoes multiplier's points, one of the socks
    does not); a bonus goes back with the order's points (`taken_before` and
    `taken_after` are the order's points taken back before and after the refund).
    Cumulative and rounded down, like the refund itself: refunds of the whole order
    give back exactly the charge, never more."""
    if any(segment.weight for segment in charge.weights):
        return taken_back(charge.points, charge.weights, after) - taken_back(
            charge.points, charge.weights, before
        )
    if not order_points:
        return 0
    return charge.points * taken_after // order_points - charge.points * taken_before // order_points


def earn_within_budgets(
    rules: RulesDocument,
    facts: OrderFacts,
    path: str,
    covers: Callable[[str, int], Scope | None],
    *,
    explain: bool = True,
    section: Earn | None = None,
    limits: Sequence[BudgetLimit] = (),
) -> OrderEarning:
    """The order's points with every budgeted rule its budget can't cover left out.

    `covers(key, points)` answers None when the budget named `key` can give
    `points` to this order, else which limit stops it ("budget" or "member"); it
    must not change anything (the caller takes the charges it then finds in the
    result). Each refusal computes the order again without that rule: its points
    can change what the caps leave of the others."""
    per_member = {limit.key: limit.per_member for limit in limits}
    skip: dict[RuleRef, str] = {}
    while True:
        earning = earn_order(rules, facts, explain=explain, section=section, skip=skip)
        for charge in earning.charges:
            key = budget_key(path, charge.rule)
            scope = covers(key, charge.points)
            if scope is not None:
                skip[charge.rule] = exhausted_detail(scope, per_member.get(key))
                break
        else:
            return earning
