"""The tier state machine without a database: term ends, grace, downgrades, late runs,
overrides, pins, upgrades, keeping a tier with points, an operator's override, and the
decision tier_apply() reads.

The same scenarios as tests/tiers/test_evaluate.py and test_upgrades.py, pinned at the
pure level: the activity of each window is given by its end, and every window the
machine asks for is recorded, so a test also says which windows it looks at."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.rules import RulesDocument
from app.rules.tier_machine import (
    Change,
    KeepRefused,
    Kept,
    Outcome,
    TierDecision,
    TierState,
    Window,
    best_upgrade,
    decision,
    evaluate,
    keep_with_points,
    nothing_above,
    operator_override,
    upgrade_windows,
    window,
)
from app.rules.tiers import Activity
from tests.tiers.helpers import GOLD, PLATINUM, SILVER


def tier_rules(tiers: list[dict[str, Any]] | None = None, **policy: Any) -> RulesDocument:
    """Silver and gold (or `tiers`), 12-month terms on a rolling window, 30 days' grace."""
    return RulesDocument.model_validate(
        {
            "timezone": "UTC",
            "earn": {"base": {"points": 1, "per": "1"}},
            "tiers": [SILVER, GOLD] if tiers is None else tiers,
            "tier_policy": {
                "window": "rolling_12_months",
                "term_months": 12,
                "downgrade": "one_down",
                "grace_days": 30,
                **policy,
            },
        }
    )


RULES = tier_rules()
QUALIFIED = datetime(2026, 3, 10, 12, tzinfo=UTC)
ENDS = datetime(2027, 3, 10, 12, tzinfo=UTC)  # QUALIFIED's term end
GRACE_ENDS = ENDS + timedelta(days=30)
GOLD_STATE = TierState("gold", QUALIFIED, ENDS)


def activity(orders: int = 0, spend: str | None = None) -> Activity:
    """`orders` orders of 50.00 each (or `spend` in all), one point per unit."""
    total = Decimal(spend) if spend is not None else Decimal("50.00") * orders
    return Activity(orders=orders, spend=total, points=int(total))


NOTHING = activity(0)
RETAINS_SILVER = activity(1)
QUALIFIES_SILVER = activity(2)
RETAINS_GOLD = activity(3)
QUALIFIES_GOLD = activity(4)
QUALIFIES_PLATINUM = activity(6)


def rolling(end: datetime) -> Window:
    """The 12-month window ending at `end` (UTC, day 10: no clamping)."""
    return Window(end.replace(year=end.year - 1), end)


def settle(
    rules: RulesDocument,
    state: TierState,
    as_of: datetime,
    activities: Mapping[datetime, Activity] | Callable[[datetime], Activity],
) -> tuple[Outcome, list[datetime]]:
    """Run the machine as the job does: answer each window it asks for, until it is done.
    The outcome and the ends of the windows asked for, in order."""
    known: dict[datetime, Activity] = {}
    asked: list[datetime] = []
    while True:
        outcome = evaluate(rules, state, as_of, known)
        if outcome.needs is None:
            return outcome, asked
        assert outcome.needs not in known, "asked twice for the same window"
        asked.append(outcome.needs)
        known[outcome.needs] = (
            activities(outcome.needs) if callable(activities) else activities[outcome.needs]
        )


class TestRetention:
    def test_a_retained_term_renews_from_its_old_end_on_the_window_ending_then(self) -> None:
        as_of = ENDS + timedelta(days=20)
        outcome, asked = settle(RULES, GOLD_STATE, as_of, {ENDS: RETAINS_GOLD, as_of: RETAINS_GOLD})
        renewed = datetime(2028, 3, 10, 12, tzinfo=UTC)  # from the old end, not from as_of
        assert asked == [ENDS, as_of]
        assert outcome == Outcome(
            TierState("gold", QUALIFIED, renewed),
            (Change("gold", "gold", "retained", ENDS, renewed, RETAINS_GOLD, rolling(ENDS)),),
        )

    def test_before_the_term_end_nothing_is_judged(self) -> None:
        as_of = ENDS - timedelta(seconds=1)
        outcome, asked = settle(RULES, GOLD_STATE, as_of, {as_of: NOTHING})
        assert asked == [as_of]
        assert outcome == Outcome(GOLD_STATE)
        assert decision(7, GOLD_STATE, outcome) is None


class TestGrace:
    def test_a_miss_waits_in_grace(self) -> None:
        as_of = ENDS + timedelta(days=1)
        outcome, asked = settle(RULES, GOLD_STATE, as_of, {ENDS: RETAINS_SILVER, as_of: RETAINS_SILVER})
        assert asked == [ENDS, as_of]
        in_grace = TierState("gold", QUALIFIED, ENDS, GRACE_ENDS)
        assert outcome == Outcome(in_grace)
        # No history row, but the state changed: that is a decision.
        assert decision(7, GOLD_STATE, outcome) == TierDecision(7, "gold", in_grace, ())

    def test_a_miss_in_grace_stays_until_the_grace_end(self) -> None:
        in_grace = TierState("gold", QUALIFIED, ENDS, GRACE_ENDS)
        as_of = GRACE_ENDS - timedelta(seconds=1)
        outcome, _ = settle(RULES, in_grace, as_of, {ENDS: RETAINS_SILVER, as_of: RETAINS_SILVER})
        assert outcome == Outcome(in_grace)
        assert decision(7, in_grace, outcome) is None

    def test_after_the_grace_it_drops_one_tier_at_the_grace_end(self) -> None:
        in_grace = TierState("gold", QUALIFIED, ENDS, GRACE_ENDS)
        as_of = GRACE_ENDS + timedelta(days=1)
        outcome, asked = settle(
            RULES, in_grace, as_of, {ENDS: RETAINS_SILVER, GRACE_ENDS: RETAINS_SILVER, as_of: RETAINS_SILVER}
        )
        silver_ends = datetime(2028, 4, 9, 12, tzinfo=UTC)  # 12 months from the grace end
        assert asked == [ENDS, GRACE_ENDS, as_of]
        assert outcome == Outcome(
            TierState("silver", GRACE_ENDS, silver_ends),
            (Change("gold", "silver", "downgraded", GRACE_ENDS, silver_ends, RETAINS_SILVER, rolling(ENDS)),),
        )

    def test_qualifying_again_in_grace_keeps_the_tier_with_a_new_term_from_as_of(self) -> None:
        in_grace = TierState("gold", QUALIFIED, ENDS, GRACE_ENDS)
        as_of = ENDS + timedelta(days=10)
        outcome, asked = settle(RULES, in_grace, as_of, {ENDS: RETAINS_SILVER, as_of: QUALIFIES_GOLD})
        renewed = datetime(2028, 3, 20, 12, tzinfo=UTC)
        assert asked == [ENDS, as_of]
        assert outcome == Outcome(
            TierState("gold", QUALIFIED, renewed),  # since stays: the member kept gold
            (Change("gold", "gold", "retained", as_of, renewed, QUALIFIES_GOLD, rolling(as_of)),),
        )

    @pytest.mark.parametrize("days_late", [31, 40, 400])
    def test_qualifying_again_in_grace_keeps_the_tier_however_late_the_job_runs(self, days_late: int) -> None:
        # The job never ran during the grace; the window ending at the grace end
        # qualifies for gold again, so gold is kept from the old term's end.
        as_of = ENDS + timedelta(days=days_late)
        renewed = datetime(2028, 3, 10, 12, tzinfo=UTC)

        def activities(end: datetime) -> Activity:
            return QUALIFIES_GOLD if end == GRACE_ENDS else RETAINS_GOLD if end == renewed else NOTHING

        outcome, asked = settle(RULES, GOLD_STATE, as_of, activities)
        assert outcome.changes[0] == Change(
            "gold", "gold", "retained", GRACE_ENDS, renewed, QUALIFIES_GOLD, rolling(GRACE_ENDS)
        )
        assert "downgraded" not in [change.reason for change in outcome.changes]
        assert asked[:2] == [ENDS, GRACE_ENDS]
        if as_of < renewed:
            assert asked == [ENDS, GRACE_ENDS, as_of]
            assert outcome.state == TierState("gold", QUALIFIED, renewed)
        else:  # the renewed term ended too, and was retained on its own window
            again = datetime(2029, 3, 10, 12, tzinfo=UTC)
            assert outcome.changes[1:] == (
                Change("gold", "gold", "retained", renewed, again, RETAINS_GOLD, rolling(renewed)),
            )

    def test_qualifying_again_for_a_lower_tier_in_grace_does_not_keep_it(self) -> None:
        as_of = GRACE_ENDS + timedelta(days=1)
        outcome, _ = settle(
            RULES, GOLD_STATE, as_of, {ENDS: RETAINS_SILVER, GRACE_ENDS: QUALIFIES_SILVER, as_of: NOTHING}
        )
        assert [(c.before, c.after, c.reason) for c in outcome.changes] == [("gold", "silver", "downgraded")]


class TestDowngrade:
    @pytest.mark.parametrize(
        ("downgrade", "orders", "expected"),
        [
            ("one_down", 1, "gold"),
            ("one_down", 2, "gold"),
            ("to_qualified", 1, None),
            ("to_qualified", 2, "silver"),
        ],
    )
    def test_one_down_or_to_the_qualified_tier(
        self, downgrade: str, orders: int, expected: str | None
    ) -> None:
        rules = tier_rules([SILVER, GOLD, PLATINUM], downgrade=downgrade, grace_days=0)
        platinum = TierState("platinum", QUALIFIED, ENDS)
        as_of = ENDS + timedelta(days=1)
        missed = activity(orders)
        outcome, asked = settle(rules, platinum, as_of, {ENDS: missed, as_of: missed})
        assert asked == [ENDS, as_of]  # no grace: no window at a grace end
        ends = None if expected is None else datetime(2028, 3, 10, 12, tzinfo=UTC)
        assert outcome.changes == (
            Change("platinum", expected, "downgraded", ENDS, ends, missed, rolling(ENDS)),
        )
        assert outcome.state == (TierState() if expected is None else TierState(expected, ENDS, ends))


class TestLateRun:
    def test_a_term_that_ended_weeks_ago_is_judged_on_the_window_ending_then(self) -> None:
        as_of = ENDS + timedelta(days=40)
        # After the term's end the member did what gold's retain asks: too late.
        outcome, asked = settle(
            RULES, GOLD_STATE, as_of, {ENDS: RETAINS_SILVER, GRACE_ENDS: RETAINS_GOLD, as_of: RETAINS_GOLD}
        )
        assert asked == [ENDS, GRACE_ENDS, as_of]
        assert [(c.before, c.after, c.effective_at, c.activity) for c in outcome.changes] == [
            ("gold", "silver", GRACE_ENDS, RETAINS_SILVER)
        ]

    def test_several_terms_are_judged_in_order_each_on_its_own_window(self) -> None:
        second_end = datetime(2028, 4, 9, 12, tzinfo=UTC)  # silver's term from the grace end
        as_of = second_end + timedelta(days=5)
        ten = activity(1, "10.00")
        outcome, asked = settle(
            RULES,
            GOLD_STATE,
            as_of,
            {ENDS: RETAINS_SILVER, GRACE_ENDS: RETAINS_SILVER, second_end: ten, as_of: ten},
        )
        third_end = datetime(2029, 4, 9, 12, tzinfo=UTC)
        assert asked == [ENDS, GRACE_ENDS, second_end, as_of]
        assert outcome == Outcome(
            TierState("silver", GRACE_ENDS, third_end),
            (
                Change("gold", "silver", "downgraded", GRACE_ENDS, second_end, RETAINS_SILVER, rolling(ENDS)),
                Change("silver", "silver", "retained", second_end, third_end, ten, rolling(second_end)),
            ),
        )

    def test_two_missed_terms_drop_two_tiers_in_one_run(self) -> None:
        second_end = datetime(2028, 4, 9, 12, tzinfo=UTC)
        second_drop = second_end + timedelta(days=30)
        as_of = second_drop + timedelta(days=1)
        outcome, asked = settle(RULES, GOLD_STATE, as_of, lambda _: NOTHING)
        assert asked == [ENDS, GRACE_ENDS, second_end, second_drop, as_of]
        assert [(c.before, c.after, c.reason, c.effective_at) for c in outcome.changes] == [
            ("gold", "silver", "downgraded", GRACE_ENDS),
            ("silver", None, "downgraded", second_drop),
        ]
        assert outcome.state == TierState()
        # Run again for the same instant: nothing left to change.
        again, _ = settle(RULES, outcome.state, as_of, lambda _: NOTHING)
        assert decision(7, outcome.state, again) is None


class TestOverrideAndPin:
    UNTIL = datetime(2027, 1, 10, 12, tzinfo=UTC)

    def overridden(self) -> TierState:
        # What PUT tier with `until` stores: the term ends when the override does.
        return TierState("gold", QUALIFIED, self.UNTIL, None, self.UNTIL, False)

    @pytest.mark.parametrize("stored_term", [UNTIL, None, ENDS])
    def test_an_override_ending_is_judged_as_a_term_end(self, stored_term: datetime | None) -> None:
        # Judged at the override's end, whatever term end the state holds.
        overridden = TierState("gold", QUALIFIED, stored_term, None, self.UNTIL, False)
        as_of = self.UNTIL + timedelta(days=1)
        outcome, asked = settle(RULES, overridden, as_of, {self.UNTIL: RETAINS_GOLD, as_of: NOTHING})
        renewed = datetime(2028, 1, 10, 12, tzinfo=UTC)
        assert asked == [self.UNTIL, as_of]
        assert outcome == Outcome(
            TierState("gold", QUALIFIED, renewed),  # no override any more
            (Change("gold", "gold", "retained", self.UNTIL, renewed, RETAINS_GOLD, rolling(self.UNTIL)),),
        )

    def test_an_override_that_ended_is_missed_like_a_term(self) -> None:
        as_of = self.UNTIL + timedelta(days=1)
        outcome, _ = settle(RULES, self.overridden(), as_of, {self.UNTIL: NOTHING, as_of: NOTHING})
        assert outcome == Outcome(TierState("gold", QUALIFIED, self.UNTIL, self.UNTIL + timedelta(days=30)))

    def test_an_override_is_not_judged_before_its_end(self) -> None:
        as_of = self.UNTIL - timedelta(seconds=1)
        outcome, asked = settle(RULES, self.overridden(), as_of, {as_of: NOTHING})
        assert asked == [as_of]
        assert outcome == Outcome(self.overridden())

    def test_a_pinned_tier_is_never_judged(self) -> None:
        pinned = TierState("gold", QUALIFIED, ENDS, None, None, True)
        as_of = ENDS + timedelta(days=800)
        outcome, asked = settle(RULES, pinned, as_of, {as_of: NOTHING})
        assert asked == [as_of]  # never the window of a term end
        assert outcome == Outcome(pinned)
        assert decision(7, pinned, outcome) is None

    def test_a_pinned_member_still_earns_an_upgrade(self) -> None:
        rules = tier_rules([SILVER, GOLD, PLATINUM])
        pinned = TierState("silver", QUALIFIED, None, None, None, True)
        as_of = ENDS
        outcome, _ = settle(rules, pinned, as_of, {as_of: QUALIFIES_PLATINUM})
        assert outcome.state == TierState("platinum", as_of, datetime(2028, 3, 10, 12, tzinfo=UTC))


class TestUpgradeAtAsOf:
    def test_activity_up_to_as_of_upgrades_with_a_term_from_then(self) -> None:
        silver = TierState("silver", QUALIFIED, ENDS)
        as_of = datetime(2026, 9, 1, 8, tzinfo=UTC)
        outcome, asked = settle(RULES, silver, as_of, {as_of: QUALIFIES_GOLD})
        ends = datetime(2027, 9, 1, 8, tzinfo=UTC)
        assert asked == [as_of]
        assert outcome == Outcome(
            TierState("gold", as_of, ends),
            (Change("silver", "gold", "qualified", as_of, ends, QUALIFIES_GOLD, rolling(as_of)),),
        )

    def test_no_tier_and_no_activity_is_nothing(self) -> None:
        as_of = datetime(2026, 9, 1, 8, tzinfo=UTC)
        outcome, _ = settle(RULES, TierState(), as_of, {as_of: RETAINS_SILVER})
        assert outcome == Outcome(TierState())
        assert decision(7, TierState(), outcome) is None


class TestNeeds:
    def test_asks_for_each_missing_window_and_keeps_what_it_decided_so_far(self) -> None:
        second_end = datetime(2028, 4, 9, 12, tzinfo=UTC)
        as_of = second_end + timedelta(days=5)
        assert evaluate(RULES, GOLD_STATE, as_of, {}) == Outcome(GOLD_STATE, needs=ENDS)
        assert evaluate(RULES, GOLD_STATE, as_of, {ENDS: NOTHING}).needs == GRACE_ENDS
        halfway = evaluate(RULES, GOLD_STATE, as_of, {ENDS: NOTHING, GRACE_ENDS: NOTHING})
        assert halfway.needs == second_end
        assert halfway.state == TierState("silver", GRACE_ENDS, second_end)
        assert [change.reason for change in halfway.changes] == ["downgraded"]
        # Silver's term missed too, but its grace runs past as_of: last, the window up to as_of.
        known = {ENDS: NOTHING, GRACE_ENDS: NOTHING, second_end: NOTHING}
        assert evaluate(RULES, GOLD_STATE, as_of, known) == Outcome(
            TierState("silver", GRACE_ENDS, second_end, second_end + timedelta(days=30)),
            halfway.changes,
            needs=as_of,
        )

    def test_finally_asks_for_the_window_up_to_as_of(self) -> None:
        as_of = ENDS - timedelta(days=1)
        assert evaluate(RULES, GOLD_STATE, as_of, {}) == Outcome(GOLD_STATE, needs=as_of)
        assert evaluate(RULES, GOLD_STATE, as_of, {as_of: NOTHING}) == Outcome(GOLD_STATE)


class TestUpgradeWindows:
    def test_the_window_ending_at_the_order_and_the_one_ending_now(self) -> None:
        at = datetime(2026, 5, 10, 12, tzinfo=UTC)
        now = datetime(2026, 6, 10, 12, tzinfo=UTC)
        assert upgrade_windows(RULES, at, now) == (rolling(at), rolling(now))

    def test_one_window_when_the_order_is_now(self) -> None:
        assert upgrade_windows(RULES, ENDS, ENDS) == (rolling(ENDS),)

    def test_lifetime_windows_have_no_start(self) -> None:
        assert window(tier_rules(window="lifetime"), ENDS) == Window(None, ENDS)


class TestNothingAbove:
    @pytest.mark.parametrize(
        ("current", "expected"), [(None, False), ("silver", False), ("gold", True), ("gone", False)]
    )
    def test_only_the_top_tier_has_nothing_above(self, current: str | None, expected: bool) -> None:
        assert nothing_above(RULES, current) is expected

    def test_rules_without_tiers(self) -> None:
        assert nothing_above(tier_rules([]), None) is True


class TestBestUpgrade:
    AT = datetime(2026, 5, 10, 12, tzinfo=UTC)
    NOW = datetime(2026, 6, 10, 12, tzinfo=UTC)
    RULES = tier_rules([SILVER, GOLD, PLATINUM])

    def choose(
        self,
        current: str | None,
        at_order: Activity,
        up_to_now: Activity,
        *,
        now: datetime = NOW,
        extra: Activity | None = None,
        entry_id: uuid.UUID | None = None,
    ) -> TierDecision | None:
        windows = upgrade_windows(self.RULES, self.AT, now)
        return best_upgrade(
            self.RULES,
            member_id=7,
            current=current,
            at=self.AT,
            judged=zip(windows, (at_order, up_to_now), strict=True),
            extra=extra,
            entry_id=entry_id,
        )

    def test_the_decision_starts_the_term_when_the_window_closed(self) -> None:
        entry_id = uuid.UUID("01890000-0000-7000-8000-000000000001")
        found = self.choose("silver", QUALIFIES_GOLD, QUALIFIES_GOLD, entry_id=entry_id)
        ends = datetime(2027, 5, 10, 12, tzinfo=UTC)
        assert found == TierDecision(
            7,
            "silver",
            TierState("gold", self.AT, ends),
            (
                Change(
                    "silver", "gold", "qualified", self.AT, ends, QUALIFIES_GOLD, rolling(self.AT), entry_id
                ),
            ),
        )

    def test_the_highest_tier_among_the_windows(self) -> None:
        # The order came in late: only the window up to now reaches platinum.
        found = self.choose("silver", QUALIFIES_GOLD, QUALIFIES_PLATINUM)
        assert found is not None
        assert found.state == TierState("platinum", self.NOW, datetime(2027, 6, 10, 12, tzinfo=UTC))
        assert found.changes[0].activity == QUALIFIES_PLATINUM
        assert found.changes[0].window == rolling(self.NOW)

    def test_the_earlier_window_when_both_reach_the_same_tier(self) -> None:
        found = self.choose(None, QUALIFIES_GOLD, QUALIFIES_GOLD)
        assert found is not None
        assert found.state.since == self.AT

    def test_nothing_when_no_window_reaches_above_the_current_tier(self) -> None:
        assert self.choose("gold", QUALIFIES_GOLD, QUALIFIES_GOLD) is None
        assert self.choose(None, RETAINS_SILVER, RETAINS_SILVER) is None

    def test_the_orders_own_activity_counts_in_each_window_holding_it(self) -> None:
        found = self.choose(None, RETAINS_GOLD, RETAINS_GOLD, extra=activity(1))
        assert found is not None
        assert (found.state.tier, found.changes[0].activity) == ("gold", QUALIFIES_GOLD)

    def test_the_orders_own_activity_does_not_count_in_a_window_that_starts_after_it(self) -> None:
        # Now is 13 months after the order: the window up to now no longer holds it.
        # With it, that window would reach platinum.
        later = datetime(2027, 6, 10, 12, tzinfo=UTC)
        found = self.choose(None, RETAINS_GOLD, activity(5), now=later, extra=activity(1))
        assert found is not None
        assert (found.state.tier, found.state.since) == ("gold", self.AT)


class TestKeepWithPoints:
    RULES = tier_rules(keep_with_points={"gold": 500})
    ENTRY = uuid.UUID("01890000-0000-7000-8000-0000000000e1")
    RENEWED = datetime(2028, 3, 10, 12, tzinfo=UTC)  # ENDS + 12 months

    def keep(self, state: TierState, now: datetime, rules: RulesDocument | None = None) -> Kept | KeepRefused:
        return keep_with_points(
            self.RULES if rules is None else rules, member_id=7, state=state, now=now, entry_id=self.ENTRY
        )

    def test_during_the_term_it_moves_the_end_forward_from_the_old_end_not_from_now(self) -> None:
        now = datetime(2026, 9, 1, 8, tzinfo=UTC)
        kept = self.keep(GOLD_STATE, now)
        assert kept == Kept(
            500,
            TierDecision(
                7,
                "gold",
                TierState("gold", QUALIFIED, self.RENEWED),
                (Change("gold", "gold", "kept_with_points", now, self.RENEWED, entry_id=self.ENTRY),),
            ),
        )
        assert isinstance(kept, Kept)
        assert kept.renewed == self.RENEWED

    def test_in_a_grace_the_job_recorded_it_saves_the_tier_and_ends_the_grace(self) -> None:
        in_grace = TierState("gold", QUALIFIED, ENDS, GRACE_ENDS)
        now = ENDS + timedelta(days=2)
        kept = self.keep(in_grace, now)
        assert isinstance(kept, Kept)
        assert kept.decision.state == TierState("gold", QUALIFIED, self.RENEWED, None)
        assert kept.decision.changes[0].effective_at == now

    @pytest.mark.parametrize(
        ("after_the_end", "kept"),
        [
            (timedelta(days=29), True),
            (timedelta(days=30) - timedelta(microseconds=1), True),
            (timedelta(days=30), False),  # the grace's last instant is not in it
            (timedelta(days=400), False),
        ],
    )
    def test_after_the_term_within_the_policys_grace_even_before_the_job_ran(
        self, after_the_end: timedelta, kept: bool
    ) -> None:
        found = self.keep(GOLD_STATE, ENDS + after_the_end)  # no grace recorded yet
        if kept:
            assert isinstance(found, Kept)
            assert found.renewed == self.RENEWED
        else:
            assert found == KeepRefused("ended")

    def test_a_recorded_grace_end_rules_over_the_policys(self) -> None:
        # Recorded under rules with a 10-day grace: the 30 days of these rules don't extend it.
        recorded = TierState("gold", QUALIFIED, ENDS, ENDS + timedelta(days=10))
        assert self.keep(recorded, ENDS + timedelta(days=10)) == KeepRefused("ended")
        assert isinstance(self.keep(recorded, ENDS + timedelta(days=9)), Kept)

    @pytest.mark.parametrize(
        "state",
        [
            TierState(),  # no tier
            TierState("silver", QUALIFIED, ENDS),  # no price for silver
            TierState("bronze", QUALIFIED, ENDS),  # a tier these rules no longer have
            TierState("silver", QUALIFIED, None, None, None, True),  # the price is asked first
        ],
    )
    def test_no_tier_or_none_the_program_sells_is_not_for_sale(self, state: TierState) -> None:
        assert self.keep(state, QUALIFIED + timedelta(days=1)) == KeepRefused("not_for_sale")

    def test_rules_without_keep_with_points_sell_nothing(self) -> None:
        assert self.keep(GOLD_STATE, QUALIFIED + timedelta(days=1), RULES) == KeepRefused("not_for_sale")

    @pytest.mark.parametrize(
        "state",
        [
            TierState("gold", QUALIFIED, None, None, None, True),  # pinned
            TierState("gold", QUALIFIED, ENDS, None, ENDS, False),  # until a date
            TierState("gold", QUALIFIED, None),  # no term
        ],
    )
    def test_a_tier_without_a_term_of_its_own_is_set_by_an_operator(self, state: TierState) -> None:
        assert self.keep(state, QUALIFIED + timedelta(days=1)) == KeepRefused("set_by_operator")
        # ... whenever asked: an operator's tier never "ended".
        assert self.keep(state, ENDS + timedelta(days=400)) == KeepRefused("set_by_operator")

    def test_twice_moves_the_end_twice(self) -> None:
        now = QUALIFIED + timedelta(days=1)
        first = self.keep(GOLD_STATE, now)
        assert isinstance(first, Kept)
        second = self.keep(first.decision.state, now)
        assert isinstance(second, Kept)
        assert second.renewed == datetime(2029, 3, 10, 12, tzinfo=UTC)
        assert second.decision.before == "gold"

    def test_a_term_ending_on_a_leap_day_is_renewed_to_the_end_of_february(self) -> None:
        state = TierState(
            "gold", datetime(2027, 2, 28, 12, tzinfo=UTC), datetime(2028, 2, 29, 12, tzinfo=UTC)
        )
        kept = self.keep(state, datetime(2028, 1, 5, tzinfo=UTC))
        assert isinstance(kept, Kept)
        assert kept.renewed == datetime(2029, 2, 28, 12, tzinfo=UTC)


class TestOperatorOverride:
    NOW = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)
    UNTIL = datetime(2027, 1, 10, 12, tzinfo=UTC)
    KEY = uuid.UUID("01890000-0000-7000-8000-0000000000a1")

    def override(self, state: TierState, code: str | None, until: datetime | None) -> TierDecision | None:
        return operator_override(
            member_id=7,
            state=state,
            code=code,
            until=until,
            now=self.NOW,
            actor_key_id=self.KEY,
            note="by hand",
        )

    def change(self, before: str | None, after: str | None, term_ends_at: datetime | None) -> Change:
        return Change(
            before, after, "override", self.NOW, term_ends_at, actor_key_id=self.KEY, note="by hand"
        )

    def test_without_until_the_tier_is_pinned_with_no_term(self) -> None:
        assert self.override(TierState(), "gold", None) == TierDecision(
            7,
            None,
            TierState("gold", self.NOW, None, None, None, True),
            (self.change(None, "gold", None),),
        )

    def test_with_until_the_term_ends_then_and_the_rules_judge_it_from_then(self) -> None:
        found = self.override(TierState("silver", QUALIFIED, ENDS), "gold", self.UNTIL)
        assert found == TierDecision(
            7,
            "silver",
            TierState("gold", self.NOW, self.UNTIL, None, self.UNTIL, False),
            (self.change("silver", "gold", self.UNTIL),),
        )
        # The state TestOverrideAndPin judges, but for `since`.
        assert found.state == replace(TestOverrideAndPin().overridden(), since=self.NOW)

    def test_the_same_tier_keeps_its_since_and_ends_a_grace(self) -> None:
        in_grace = TierState("gold", QUALIFIED, ENDS, GRACE_ENDS)
        found = self.override(in_grace, "gold", self.UNTIL)
        assert found is not None
        assert found.state == TierState("gold", QUALIFIED, self.UNTIL, None, self.UNTIL, False)
        assert found.changes == (self.change("gold", "gold", self.UNTIL),)

    def test_no_tier_drops_the_tier_and_ignores_until(self) -> None:
        assert self.override(GOLD_STATE, None, self.UNTIL) == TierDecision(
            7, "gold", TierState(), (self.change("gold", None, None),)
        )

    @pytest.mark.parametrize(
        ("state", "code", "until"),
        [
            (TierState("gold", QUALIFIED, None, None, None, True), "gold", None),
            (TierState("gold", QUALIFIED, UNTIL, None, UNTIL, False), "gold", UNTIL),
            (TierState(), None, None),
            (TierState(), None, UNTIL),
        ],
    )
    def test_the_state_it_already_has_is_no_decision(
        self, state: TierState, code: str | None, until: datetime | None
    ) -> None:
        assert self.override(state, code, until) is None

    def test_a_pinned_tier_given_an_end_is_a_change(self) -> None:
        pinned = TierState("gold", QUALIFIED, None, None, None, True)
        found = self.override(pinned, "gold", self.UNTIL)
        assert found is not None
        assert (found.state.pinned, found.state.override_until, found.state.since) == (
            False,
            self.UNTIL,
            QUALIFIED,
        )


class TestDecision:
    def test_nothing_changed_is_no_decision(self) -> None:
        assert decision(7, GOLD_STATE, Outcome(GOLD_STATE)) is None

    def test_a_decision_names_the_tier_it_started_from(self) -> None:
        after = TierState("silver", GRACE_ENDS, ENDS)
        change = Change("gold", "silver", "downgraded", GRACE_ENDS, ENDS)
        assert decision(7, GOLD_STATE, Outcome(after, (change,))) == TierDecision(7, "gold", after, (change,))

    def test_as_json_is_the_element_tier_apply_reads(self) -> None:
        entry_id = uuid.UUID("01890000-0000-7000-8000-000000000001")
        key_id = uuid.UUID("01890000-0000-7000-8000-000000000002")
        until = datetime(2027, 1, 10, 12, 30, 15, 250, tzinfo=UTC)
        found = TierDecision(
            42,
            "silver",
            TierState("gold", QUALIFIED, ENDS, GRACE_ENDS, until, True),
            (
                Change(
                    "silver",
                    "gold",
                    "qualified",
                    QUALIFIED,
                    ENDS,
                    activity(4, "200.50"),
                    rolling(QUALIFIED),
                    entry_id,
                ),
                Change("gold", "gold", "override", ENDS, None, None, None, None, key_id, "by hand"),
                Change(None, "silver", "qualified", ENDS, None, activity(2), Window(None, ENDS)),
            ),
        )
        assert json.dumps(found.as_json()) == (
            '{"member_id": 42, "from": "silver", '
            '"state": {"tier": "gold", "since": "2026-03-10T12:00:00+00:00", '
            '"term_ends_at": "2027-03-10T12:00:00+00:00", "grace_ends_at": "2027-04-09T12:00:00+00:00", '
            '"override_until": "2027-01-10T12:30:15.000250+00:00", "pinned": true}, '
            '"changes": ['
            '{"from": "silver", "to": "gold", "reason": "qualified", '
            '"effective_at": "2026-03-10T12:00:00+00:00", "term_ends_at": "2027-03-10T12:00:00+00:00", '
            '"activity": {"orders": 4, "spend": "200.50", "points": 200, '
            '"window_start": "2025-03-10T12:00:00+00:00", "window_end": "2026-03-10T12:00:00+00:00"}, '
            '"entry_id": "01890000-0000-7000-8000-000000000001", "actor_key_id": null, "note": null}, '
            '{"from": "gold", "to": "gold", "reason": "override", '
            '"effective_at": "2027-03-10T12:00:00+00:00", "term_ends_at": null, "activity": null, '
            '"entry_id": null, "actor_key_id": "01890000-0000-7000-8000-000000000002", "note": "by hand"}, '
            '{"from": null, "to": "silver", "reason": "qualified", '
            '"effective_at": "2027-03-10T12:00:00+00:00", "term_ends_at": null, '
            '"activity": {"orders": 2, "spend": "100.00", "points": 100, '
            '"window_start": null, "window_end": "2027-03-10T12:00:00+00:00"}, '
            '"entry_id": null, "actor_key_id": null, "note": null}'
            "]}"
        )

    def test_no_tier_in_json(self) -> None:
        assert TierDecision(1, "silver", TierState(), ()).as_json() == {
            "member_id": 1,
            "from": "silver",
            "state": {
                "tier": None,
                "since": None,
                "term_ends_at": None,
                "grace_ends_at": None,
                "override_until": None,
                "pinned": False,
            },
            "changes": [],
        }


# --- properties ---------------------------------------------------------------------------------------

_states = st.builds(
    TierState,
    tier=st.sampled_from([None, "silver", "gold", "platinum"]),
    since=st.just(QUALIFIED),
    term_ends_at=st.sampled_from([ENDS, ENDS + timedelta(days=200), None]),
    grace_ends_at=st.sampled_from([None, GRACE_ENDS]),
    override_until=st.sampled_from([None, ENDS - timedelta(days=30)]),
    pinned=st.booleans(),
)


class TestProperties:
    @settings(max_examples=300, deadline=None)
    @given(
        state=_states,
        days=st.integers(0, 1500),
        grace_days=st.integers(0, 60),
        downgrade=st.sampled_from(["one_down", "to_qualified"]),
        orders=st.lists(st.integers(0, 7), min_size=1, max_size=12),
    )
    def test_a_run_settles_and_a_rerun_for_the_same_instant_changes_nothing(
        self, state: TierState, days: int, grace_days: int, downgrade: str, orders: list[int]
    ) -> None:
        rules = tier_rules([SILVER, GOLD, PLATINUM], grace_days=grace_days, downgrade=downgrade)
        as_of = ENDS + timedelta(days=days)

        def activities(end: datetime) -> Activity:
            # Any activity, as long as a window's activity depends on its end only.
            return activity(orders[end.toordinal() % len(orders)])

        outcome, _ = settle(rules, state, as_of, activities)
        tiers = [state.tier, *(change.after for change in outcome.changes)]
        assert [change.before for change in outcome.changes] == tiers[:-1]
        assert outcome.state.tier == tiers[-1]
        assert all(change.effective_at <= as_of for change in outcome.changes)
        again, _ = settle(rules, outcome.state, as_of, activities)
        assert again == Outcome(outcome.state)
