"""Tiers: activity windows, terms, qualification, progress, upgrades and retention."""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.rules import RulesDocument
from app.rules.document import Thresholds, Tier
from app.rules.tiers import (
    Activity,
    Progress,
    Retention,
    keep_price,
    meets,
    missing,
    progress,
    qualified,
    retention,
    term_end,
    tier_by_code,
    upgrade,
    window_start,
)
from tests.rules.strategies import TIMEZONES, decimals, instants

EXAMPLES = settings(max_examples=200, deadline=None)

# RULES.md's tiers, listed out of rank order on purpose: rank decides, not the list.
SILVER: dict[str, Any] = {
    "code": "silver",
    "name": "Silver",
    "rank": 1,
    "qualify": {"orders": 5},
    "retain": {"orders": 3},
}
GOLD: dict[str, Any] = {
    "code": "gold",
    "name": "Gold",
    "rank": 2,
    "qualify": {"orders": 20, "spend": "200.00"},
    "retain": {"orders": 12},
}
BLACK: dict[str, Any] = {
    "code": "black",
    "name": "Black",
    "rank": 3,
    "qualify": {"orders": 50, "spend": "500.00"},
    "retain": {"orders": 30},
}


def at(text: str) -> datetime:
    """An instant from RFC 3339 text, in UTC."""
    return datetime.fromisoformat(text).astimezone(UTC)


def tiered(
    tiers: list[dict[str, Any]] | None = None, *, timezone: str = "UTC", **policy: Any
) -> RulesDocument:
    """A document with RULES.md's tiers and keep prices (or just `tiers`), `policy` merged
    into its tier_policy."""
    if tiers is None:
        tiers = [GOLD, BLACK, SILVER]
        policy = {"keep_with_points": {"gold": 2000, "black": 5000}, **policy}
    return RulesDocument.model_validate(
        {
            "timezone": timezone,
            "earn": {"base": {"points": 1, "per": "1", "rounding": "floor"}},
            "tiers": tiers,
            "tier_policy": policy,
        }
    )


def activity(orders: int = 0, spend: str = "0", points: int = 0) -> Activity:
    return Activity(orders=orders, spend=Decimal(spend), points=points)


def thresholds(**values: Any) -> Thresholds:
    return Thresholds.model_validate(values)


def code(tier: Tier | None) -> str | None:
    return None if tier is None else tier.code


PROGRAM = tiered()
TO_QUALIFIED = tiered(downgrade="to_qualified")
NOTHING = activity()
SILVER_ONLY = activity(orders=5)
GOLD_ACTIVITY = activity(orders=20, spend="200.00")
BLACK_ACTIVITY = activity(orders=50, spend="500.00")


# --- windows and terms ------------------------------------------------------------------------------


class TestWindowStart:
    def test_rolling_is_twelve_months_of_local_wall_time(self) -> None:
        rules = tiered(timezone="Asia/Shanghai")
        assert window_start(rules, at("2026-06-10T03:00Z")) == at("2025-06-10T03:00Z")

    def test_rolling_across_a_change_to_summer_time(self) -> None:
        # Noon on Mar 29 2026 in Berlin is summer time (UTC+2); noon on Mar 29 2025 was
        # still winter time (UTC+1): the window starts at noon there, not 365 days of UTC back.
        rules = tiered(timezone="Europe/Berlin")
        assert window_start(rules, at("2026-03-29T12:00+02:00")) == at("2025-03-29T11:00Z")

    def test_rolling_into_a_spring_gap(self) -> None:
        # 02:30 on Mar 30 2025 did not exist in Berlin: read with the offset before the gap,
        # as lifecycle (and PostgreSQL) do.
        rules = tiered(timezone="Europe/Berlin")
        assert window_start(rules, at("2026-03-30T02:30+02:00")) == at("2025-03-30T01:30Z")

    @pytest.mark.parametrize(
        ("end", "start"),
        [
            ("2028-02-29T12:00Z", "2027-02-28T12:00Z"),
            ("2028-03-01T12:00Z", "2027-03-01T12:00Z"),
            ("2029-02-28T12:00Z", "2028-02-28T12:00Z"),
        ],
    )
    def test_rolling_around_february_29(self, end: str, start: str) -> None:
        assert window_start(tiered(), at(end)) == at(start)

    @pytest.mark.parametrize(
        ("end", "start"),
        [
            # 23:59:59.999999 on Dec 31 in Shanghai: still 2026
            ("2026-12-31T15:59:59.999999Z", "2025-12-31T16:00Z"),
            # midnight on Jan 1 2027 in Shanghai, though still Dec 31 in UTC
            ("2026-12-31T16:00Z", "2026-12-31T16:00Z"),
            ("2027-06-30T23:00Z", "2026-12-31T16:00Z"),
        ],
    )
    def test_calendar_year_in_shanghai(self, end: str, start: str) -> None:
        rules = tiered(timezone="Asia/Shanghai", window="calendar_year")
        assert window_start(rules, at(end)) == at(start)

    def test_calendar_year_starts_in_winter_time(self) -> None:
        # Jul 1 in New York is summer time (UTC-4); its year began at midnight UTC-5.
        rules = tiered(timezone="America/New_York", window="calendar_year")
        assert window_start(rules, at("2026-07-01T12:00Z")) == at("2026-01-01T05:00Z")

    def test_lifetime_has_no_start(self) -> None:
        assert window_start(tiered(window="lifetime"), at("2026-06-10T03:00Z")) is None

    @pytest.mark.parametrize("window", ["rolling_12_months", "calendar_year"])
    def test_a_naive_instant_is_refused(self, window: str) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            window_start(tiered(window=window), datetime(2026, 6, 10, 3, 0))


class TestTermEnd:
    @pytest.mark.parametrize(
        ("start", "months", "end"),
        [
            ("2026-06-10T03:00Z", 12, "2027-06-10T03:00Z"),
            ("2026-01-31T10:00Z", 1, "2026-02-28T10:00Z"),
            ("2028-01-31T10:00Z", 1, "2028-02-29T10:00Z"),
            ("2028-02-29T10:00Z", 12, "2029-02-28T10:00Z"),
            ("2026-08-31T10:00Z", 6, "2027-02-28T10:00Z"),
            ("2026-05-31T10:00Z", 120, "2036-05-31T10:00Z"),
        ],
    )
    def test_month_ends_clamp(self, start: str, months: int, end: str) -> None:
        assert term_end(tiered(term_months=months), at(start)) == at(end)

    def test_the_month_is_counted_on_the_local_date(self) -> None:
        # 20:00 UTC on Jan 31 is 04:00 on Feb 1 in Shanghai: one month on is Mar 1 there,
        # where counting in UTC would clamp to Feb 28.
        rules = tiered(timezone="Asia/Shanghai", term_months=1)
        assert term_end(rules, at("2026-01-31T20:00Z")) == at("2026-03-01T04:00+08:00")

    def test_wall_time_survives_a_change_to_summer_time(self) -> None:
        rules = tiered(timezone="Europe/Berlin", term_months=6)
        assert term_end(rules, at("2026-02-10T11:00Z")) == at("2026-08-10T10:00Z")

    def test_a_naive_instant_is_refused(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            term_end(tiered(), datetime(2026, 6, 10, 3, 0))


# --- thresholds -------------------------------------------------------------------------------------


class TestMeets:
    def test_every_set_threshold_must_be_met(self) -> None:
        gold = thresholds(orders=20, spend="200.00")
        assert meets(gold, activity(orders=20, spend="200.00"))
        assert not meets(gold, activity(orders=19, spend="1000.00"))
        assert not meets(gold, activity(orders=100, spend="199.99"))

    def test_unset_thresholds_do_not_count(self) -> None:
        assert meets(thresholds(points=100), activity(points=100))
        assert not meets(thresholds(points=100), activity(orders=1000, spend="10000", points=99))


class TestMissing:
    def test_what_is_left_per_unmet_threshold(self) -> None:
        lacking = missing(thresholds(orders=20, spend="200.00", points=500), activity(18, "20", 600))
        assert lacking == {"orders": 2, "spend": "180.00"}

    def test_keys_come_in_threshold_order(self) -> None:
        lacking = missing(thresholds(orders=20, spend="200.00", points=500), NOTHING)
        assert list(lacking) == ["orders", "spend", "points"]
        assert lacking == {"orders": 20, "spend": "200.00", "points": 500}

    def test_nothing_when_met(self) -> None:
        assert missing(thresholds(orders=20, spend="200.00"), activity(21, "200.00")) == {}

    @pytest.mark.parametrize(
        ("threshold", "spend", "shown"),
        [
            ("200.00", "20", "180.00"),
            ("200.00", "199.99", "0.01"),
            ("200", "20.00", "180"),
            ("200.0000", "0.5", "199.5000"),
            # shortfalls finer than the threshold round up: doing what it says is enough
            ("200", "19.50", "181"),
            ("200.00", "199.995", "0.01"),
            ("0.01", "0", "0.01"),
        ],
    )
    def test_spend_in_the_thresholds_places(self, threshold: str, spend: str, shown: str) -> None:
        assert missing(thresholds(spend=threshold), activity(spend=spend)) == {"spend": shown}


# --- tiers --------------------------------------------------------------------------------------------


class TestTierByCode:
    def test_finds_a_tier(self) -> None:
        gold = tier_by_code(PROGRAM, "gold")
        assert gold is not None
        assert (gold.name, gold.rank) == ("Gold", 2)

    def test_an_unknown_code(self) -> None:
        assert tier_by_code(PROGRAM, "platinum") is None
        assert tier_by_code(tiered([]), "gold") is None


class TestQualified:
    @pytest.mark.parametrize(
        ("facts", "tier"),
        [
            (NOTHING, None),
            (activity(orders=4, spend="10000"), None),
            (SILVER_ONLY, "silver"),
            (activity(orders=20, spend="199.99"), "silver"),
            (GOLD_ACTIVITY, "gold"),
            (activity(orders=49, spend="10000"), "gold"),
            (BLACK_ACTIVITY, "black"),
        ],
    )
    def test_the_best_tier_reached(self, facts: Activity, tier: str | None) -> None:
        assert code(qualified(PROGRAM, facts)) == tier

    def test_rank_decides_not_the_list(self) -> None:
        # The lower rank is listed first and needs more: the activity reaches both.
        rules = tiered(
            [
                {"code": "bronze", "name": "Bronze", "rank": 1, "qualify": {"orders": 10}},
                {"code": "club", "name": "Club", "rank": 5, "qualify": {"points": 100}},
            ]
        )
        assert code(qualified(rules, activity(orders=10, points=100))) == "club"

    def test_no_tiers(self) -> None:
        assert qualified(tiered([]), BLACK_ACTIVITY) is None


class TestProgress:
    def test_from_no_tier_to_the_lowest(self) -> None:
        silver = tier_by_code(PROGRAM, "silver")
        assert silver is not None
        assert progress(PROGRAM, None, activity(orders=2)) == Progress(
            next_tier=silver, missing={"orders": 3}
        )

    def test_to_the_next_tier(self) -> None:
        result = progress(PROGRAM, "silver", activity(orders=18, spend="20"))
        assert result is not None
        assert result.next_tier.code == "gold"
        assert result.missing == {"orders": 2, "spend": "180.00"}

    def test_the_next_tier_is_already_met(self) -> None:
        result = progress(PROGRAM, "silver", BLACK_ACTIVITY)
        assert result is not None
        assert (result.next_tier.code, result.missing) == ("gold", {})

    def test_nothing_above_the_top(self) -> None:
        assert progress(PROGRAM, "black", NOTHING) is None
        assert progress(tiered([]), None, NOTHING) is None

    def test_an_unknown_code_counts_as_no_tier(self) -> None:
        result = progress(PROGRAM, "platinum", NOTHING)
        assert result is not None
        assert (result.next_tier.code, result.missing) == ("silver", {"orders": 5})


class TestUpgrade:
    @pytest.mark.parametrize(
        ("current", "facts", "tier"),
        [
            (None, SILVER_ONLY, "silver"),
            (None, NOTHING, None),
            ("silver", GOLD_ACTIVITY, "gold"),
            ("silver", SILVER_ONLY, None),
            ("gold", SILVER_ONLY, None),
            ("black", GOLD_ACTIVITY, None),
        ],
    )
    def test_only_upwards(self, current: str | None, facts: Activity, tier: str | None) -> None:
        assert code(upgrade(PROGRAM, current, facts)) == tier

    @pytest.mark.parametrize("current", [None, "silver"])
    def test_a_member_jumps_two_tiers(self, current: str | None) -> None:
        assert code(upgrade(PROGRAM, current, BLACK_ACTIVITY)) == "black"

    def test_an_unknown_code_counts_as_rank_zero(self) -> None:
        assert code(upgrade(PROGRAM, "platinum", SILVER_ONLY)) == "silver"
        assert upgrade(PROGRAM, "platinum", NOTHING) is None


class TestRetention:
    KEEPS = Retention(keeps=True, target=None, missing={})

    def test_retain_thresholds_keep_the_tier(self) -> None:
        # 12 orders and no spend keep Gold, though they would not reach it.
        assert retention(PROGRAM, "gold", activity(orders=12)) == self.KEEPS

    def test_without_retain_the_qualify_thresholds_apply(self) -> None:
        rules = tiered([{**SILVER, "retain": None}])
        assert retention(rules, "silver", SILVER_ONLY) == self.KEEPS
        assert retention(rules, "silver", activity(orders=4)) == Retention(
            keeps=False, target=None, missing={"orders": 1}
        )

    def test_qualifying_again_keeps_a_stricter_retain(self) -> None:
        rules = tiered([{**SILVER, "retain": {"orders": 10}}])
        assert retention(rules, "silver", SILVER_ONLY) == self.KEEPS

    def test_qualifying_higher_keeps(self) -> None:
        assert retention(PROGRAM, "gold", BLACK_ACTIVITY) == self.KEEPS

    def test_one_down(self) -> None:
        result = retention(PROGRAM, "black", activity(orders=29))
        assert (result.keeps, code(result.target), result.missing) == (False, "gold", {"orders": 1})

    def test_one_down_even_when_the_activity_reaches_less(self) -> None:
        assert code(retention(PROGRAM, "black", NOTHING).target) == "gold"

    def test_one_down_lands_on_the_qualified_tier_just_below(self) -> None:
        # Gold's qualify is met (20 orders, 200.00) but Black's retain (30 orders) is not.
        result = retention(PROGRAM, "black", activity(orders=25, spend="300.00"))
        assert (result.keeps, code(result.target)) == (False, "gold")

    def test_one_down_from_the_lowest_is_no_tier(self) -> None:
        assert retention(PROGRAM, "silver", activity(orders=2)) == Retention(
            keeps=False, target=None, missing={"orders": 1}
        )

    def test_one_down_follows_rank_gaps(self) -> None:
        rules = tiered([{**SILVER, "rank": 10}, {**GOLD, "rank": 40}, {**BLACK, "rank": 900}])
        assert code(retention(rules, "black", NOTHING).target) == "gold"

    @pytest.mark.parametrize(
        ("facts", "tier"),
        [(NOTHING, None), (SILVER_ONLY, "silver"), (activity(orders=29, spend="500.00"), "gold")],
    )
    def test_to_qualified(self, facts: Activity, tier: str | None) -> None:
        result = retention(TO_QUALIFIED, "black", facts)
        assert (result.keeps, code(result.target)) == (False, tier)
        assert result.missing == {"orders": 30 - facts.orders}

    def test_a_tier_the_rules_dropped(self) -> None:
        assert retention(PROGRAM, "platinum", GOLD_ACTIVITY) == Retention(
            keeps=False, target=tier_by_code(PROGRAM, "gold"), missing={}
        )
        assert retention(PROGRAM, "platinum", NOTHING) == Retention(keeps=False, target=None, missing={})


class TestKeepPrice:
    def test_prices(self) -> None:
        assert keep_price(PROGRAM, "gold") == 2000
        assert keep_price(PROGRAM, "black") == 5000

    def test_tiers_without_a_price(self) -> None:
        assert keep_price(PROGRAM, "silver") is None
        assert keep_price(PROGRAM, "platinum") is None


# --- properties ---------------------------------------------------------------------------------------

CODES = ("t0", "t1", "t2", "t3")
_threshold_bodies = st.fixed_dictionaries(
    {},
    optional={
        "orders": st.integers(1, 60),
        "spend": decimals(10**6, places=(0, 2, 4), min_units=1).map(str),
        "points": st.integers(1, 20_000),
        "referrals": st.integers(1, 10),
    },
).filter(bool)


@st.composite
def tiered_documents(draw: st.DrawFn) -> RulesDocument:
    """One to four tiers with random ranks and thresholds, listed in random order; a random policy."""
    count = draw(st.integers(1, len(CODES)))
    ranks = draw(st.lists(st.integers(1, 1000), min_size=count, max_size=count, unique=True))
    tiers = [
        {
            "code": CODES[index],
            "name": CODES[index].upper(),
            "rank": rank,
            "qualify": draw(_threshold_bodies),
            "retain": draw(st.one_of(st.none(), _threshold_bodies)),
        }
        for index, rank in enumerate(ranks)
    ]
    return RulesDocument.model_validate(
        {
            "timezone": draw(st.sampled_from(TIMEZONES)),
            "earn": {"base": {"points": 1, "per": "1", "rounding": "floor"}},
            "tiers": draw(st.permutations(tiers)),
            "tier_policy": {
                "window": draw(st.sampled_from(["rolling_12_months", "calendar_year", "lifetime"])),
                "downgrade": draw(st.sampled_from(["one_down", "to_qualified"])),
            },
        }
    )


activities = st.builds(
    Activity,
    orders=st.integers(0, 80),
    spend=decimals(10**6, places=(0, 2, 4)),
    points=st.integers(0, 30_000),
    referrals=st.integers(0, 12),
)
increases = st.builds(
    Activity,
    orders=st.integers(0, 40),
    spend=decimals(10**6, places=(0, 2, 4)),
    points=st.integers(0, 20_000),
    referrals=st.integers(0, 6),
)
# Codes of these rules or of no tier any more (a document with fewer tiers lacks t1..t3).
held_codes = st.sampled_from((*CODES, "gone"))
currents = st.one_of(st.none(), held_codes)


def plus(facts: Activity, more: Activity) -> Activity:
    return Activity(
        facts.orders + more.orders,
        facts.spend + more.spend,
        facts.points + more.points,
        facts.referrals + more.referrals,
    )


def rank(tier: Tier | None) -> int:
    return 0 if tier is None else tier.rank


class TestProperties:
    @EXAMPLES
    @given(rules=tiered_documents(), facts=activities)
    def test_qualified_is_the_best_tier_met(self, rules: RulesDocument, facts: Activity) -> None:
        reached = qualified(rules, facts)
        met = [tier.rank for tier in rules.tiers if meets(tier.qualify, facts)]
        assert rank(reached) == max(met, default=0)

    @EXAMPLES
    @given(rules=tiered_documents(), facts=activities, more=increases)
    def test_more_activity_never_qualifies_lower(
        self, rules: RulesDocument, facts: Activity, more: Activity
    ) -> None:
        assert rank(qualified(rules, plus(facts, more))) >= rank(qualified(rules, facts))

    @EXAMPLES
    @given(rules=tiered_documents(), current=currents, facts=activities)
    def test_an_upgrade_ranks_above_the_current_tier(
        self, rules: RulesDocument, current: str | None, facts: Activity
    ) -> None:
        result = upgrade(rules, current, facts)
        held = None if current is None else tier_by_code(rules, current)
        if result is None:
            assert rank(qualified(rules, facts)) <= rank(held)
        else:
            assert result == qualified(rules, facts)
            assert result.rank > rank(held)

    @EXAMPLES
    @given(rules=tiered_documents(), current=held_codes, facts=activities)
    def test_a_drop_never_lands_below_the_qualified_tier(
        self, rules: RulesDocument, current: str, facts: Activity
    ) -> None:
        result = retention(rules, current, facts)
        held = tier_by_code(rules, current)
        reached = qualified(rules, facts)
        if result.keeps:
            assert held is not None
            assert result == Retention(keeps=True, target=None, missing={})
            return
        if held is None or rules.tier_policy.downgrade == "to_qualified":
            assert result.target == reached
        else:
            assert rank(result.target) >= rank(reached)
            # exactly one rung down
            assert [tier for tier in rules.tiers if rank(result.target) < tier.rank < held.rank] == []
        if held is not None:
            assert rank(result.target) < held.rank
            assert result.missing != {}

    @EXAMPLES
    @given(rules=tiered_documents(), current=held_codes, facts=activities, more=increases)
    def test_more_activity_never_loses_a_kept_tier(
        self, rules: RulesDocument, current: str, facts: Activity, more: Activity
    ) -> None:
        if retention(rules, current, facts).keeps:
            assert retention(rules, current, plus(facts, more)).keeps

    @EXAMPLES
    @given(rules=tiered_documents(), current=currents, facts=activities)
    def test_progress_misses_nothing_only_when_the_next_tier_is_met(
        self, rules: RulesDocument, current: str | None, facts: Activity
    ) -> None:
        result = progress(rules, current, facts)
        held = None if current is None else tier_by_code(rules, current)
        above = sorted((tier for tier in rules.tiers if tier.rank > rank(held)), key=lambda tier: tier.rank)
        if result is None:
            assert above == []
        else:
            assert result.next_tier == above[0]
            assert (result.missing == {}) == meets(result.next_tier.qualify, facts)

    @EXAMPLES
    @given(rules=tiered_documents(), facts=activities)
    def test_doing_what_is_missing_is_enough(self, rules: RulesDocument, facts: Activity) -> None:
        for tier in rules.tiers:
            lacking = missing(tier.qualify, facts)
            topped_up = Activity(
                facts.orders + int(lacking.get("orders", 0)),
                facts.spend + Decimal(lacking.get("spend", 0)),
                facts.points + int(lacking.get("points", 0)),
                facts.referrals + int(lacking.get("referrals", 0)),
            )
            assert meets(tier.qualify, topped_up)

    @EXAMPLES
    @given(rules=tiered_documents(), end=instants)
    def test_a_window_starts_before_it_ends(self, rules: RulesDocument, end: datetime) -> None:
        start = window_start(rules, end)
        if rules.tier_policy.window == "lifetime":
            assert start is None
        else:
            assert start is not None
            assert start <= end
            local = start.astimezone(ZoneInfo(rules.timezone))
            if rules.tier_policy.window == "calendar_year":
                assert (local.month, local.day, local.time()) == (1, 1, time(0))
                assert local.year == end.astimezone(ZoneInfo(rules.timezone)).year


class TestReferrals:
    """ "Invite 3 friends to move up", "keep your level by inviting friends"."""

    RULES = tiered(
        [
            {**SILVER, "qualify": {"orders": 1}, "retain": {"orders": 1}},
            {**GOLD, "qualify": {"orders": 1, "referrals": 3}, "retain": {"referrals": 1}},
        ]
    )

    def test_the_third_referral_qualifies(self) -> None:
        assert qualified(self.RULES, Activity(1, Decimal(0), 0, referrals=2)).code == "silver"  # type: ignore[union-attr]
        assert qualified(self.RULES, Activity(1, Decimal(0), 0, referrals=3)).code == "gold"  # type: ignore[union-attr]

    def test_progress_shows_the_missing_referrals(self) -> None:
        ahead = progress(self.RULES, "silver", Activity(4, Decimal(0), 0, referrals=1))
        assert ahead == Progress(next_tier=tier_by_code(self.RULES, "gold"), missing={"referrals": 2})  # type: ignore[arg-type]

    def test_one_referral_in_the_window_keeps_gold(self) -> None:
        assert retention(self.RULES, "gold", Activity(0, Decimal(0), 0, referrals=1)).keeps
        missed = retention(self.RULES, "gold", Activity(5, Decimal(0), 0, referrals=0))
        assert (missed.keeps, missed.missing) == (False, {"referrals": 1})
        assert missed.target is not None
        assert missed.target.code == "silver"

    def test_a_threshold_of_only_referrals_is_valid(self) -> None:
        assert Thresholds(referrals=2).referrals == 2
        with pytest.raises(ValueError, match="referrals"):
            Thresholds()
