"""What one order earns, rule by rule, with concrete numbers."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest

from app.rules import ExplanationLine, OrderEarning, OrderFacts, RulesDocument, RulesError, earn_order
from tests.rules.strategies import document, line, order, with_multipliers

# 100.00 at 1 point per 1.00 earns 100; a matching "x2" multiplier makes it 200.
PLAIN, DOUBLED = 100, 200


def at(text: str) -> datetime:
    """An instant, from an ISO string with an offset (Z for UTC)."""
    instant = datetime.fromisoformat(text)
    assert instant.tzinfo is not None
    return instant


def points_with(when: dict[str, Any], facts: OrderFacts, *, timezone: str = "UTC") -> int:
    rules = with_multipliers({"id": "double", "factor": "2", "when": when}, timezone=timezone)
    return earn_order(rules, facts).points


def rules_named(result: OrderEarning) -> list[str]:
    return [item.rule for item in result.lines]


def points_of(result: OrderEarning, rule: str) -> int:
    (points,) = [item.points for item in result.lines if item.rule == rule]
    return points


class TestDayOfMonth:
    def test_applies_on_a_listed_day(self) -> None:
        assert points_with({"day_of_month": [1, 8]}, order(paid_at=at("2026-06-08T12:00:00Z"))) == DOUBLED

    def test_not_on_another_day(self) -> None:
        assert points_with({"day_of_month": [1, 8]}, order(paid_at=at("2026-06-09T12:00:00Z"))) == PLAIN


class TestWeekday:
    @pytest.mark.parametrize(
        ("paid_at", "expected"),
        [
            ("2026-06-08T12:00:00Z", DOUBLED),  # Monday
            ("2026-06-07T12:00:00Z", PLAIN),  # Sunday
            ("2026-06-09T12:00:00Z", PLAIN),  # Tuesday
        ],
    )
    def test_one_is_monday(self, paid_at: str, expected: int) -> None:
        assert points_with({"weekday": [1]}, order(paid_at=at(paid_at))) == expected

    def test_seven_is_sunday(self) -> None:
        assert points_with({"weekday": [6, 7]}, order(paid_at=at("2026-06-07T12:00:00Z"))) == DOUBLED

    def test_read_in_the_program_timezone(self) -> None:
        # Sunday 20:00 UTC is Monday 04:00 in Shanghai.
        facts = order(paid_at=at("2026-06-07T20:00:00Z"))
        assert points_with({"weekday": [1]}, facts, timezone="Asia/Shanghai") == DOUBLED
        assert points_with({"weekday": [1]}, facts, timezone="UTC") == PLAIN


SPRING: dict[str, Any] = {"between": ["2027-03-01", "2027-03-31"]}


class TestBetween:
    @pytest.mark.parametrize(
        ("paid_at", "expected"),
        [
            ("2027-02-28T15:59:59Z", PLAIN),  # 23:59:59 on 28 February in Shanghai
            ("2027-02-28T16:00:00Z", DOUBLED),  # midnight, 1 March
            ("2027-03-15T12:00:00Z", DOUBLED),
            ("2027-03-31T15:59:59Z", DOUBLED),  # 23:59:59 on 31 March
            ("2027-03-31T16:00:00Z", PLAIN),  # midnight, 1 April
        ],
    )
    def test_both_dates_included(self, paid_at: str, expected: int) -> None:
        assert points_with(SPRING, order(paid_at=at(paid_at)), timezone="Asia/Shanghai") == expected

    def test_a_single_day(self) -> None:
        when = {"between": ["2027-03-01", "2027-03-01"]}
        assert points_with(when, order(paid_at=at("2027-03-01T23:59:59Z"))) == DOUBLED
        assert points_with(when, order(paid_at=at("2027-03-02T00:00:00Z"))) == PLAIN


class TestHourBetween:
    @pytest.mark.parametrize(
        ("time", "expected"),
        [("17:59:59", PLAIN), ("18:00:00", DOUBLED), ("21:59:59", DOUBLED), ("22:00:00", PLAIN)],
    )
    def test_from_included_to_excluded(self, time: str, expected: int) -> None:
        facts = order(paid_at=at(f"2026-06-10T{time}Z"))
        assert points_with({"hour_between": [18, 22]}, facts) == expected

    @pytest.mark.parametrize(
        ("time", "expected"),
        [
            ("21:59:59", PLAIN),
            ("22:00:00", DOUBLED),
            ("23:30:00", DOUBLED),
            ("00:00:00", DOUBLED),
            ("01:59:59", DOUBLED),
            ("02:00:00", PLAIN),
            ("12:00:00", PLAIN),
        ],
    )
    def test_wraps_past_midnight(self, time: str, expected: int) -> None:
        facts = order(paid_at=at(f"2026-06-10T{time}Z"))
        assert points_with({"hour_between": [22, 2]}, facts) == expected

    @pytest.mark.parametrize(("time", "expected"), [("19:59:59", PLAIN), ("23:59:59", DOUBLED)])
    def test_to_midnight(self, time: str, expected: int) -> None:
        facts = order(paid_at=at(f"2026-06-10T{time}Z"))
        assert points_with({"hour_between": [20, 24]}, facts) == expected

    def test_read_in_the_program_timezone(self) -> None:
        # 11:00 UTC is 19:00 in Shanghai.
        facts = order(paid_at=at("2026-06-10T11:00:00Z"))
        assert points_with({"hour_between": [18, 22]}, facts, timezone="Asia/Shanghai") == DOUBLED
        assert points_with({"hour_between": [18, 22]}, facts, timezone="UTC") == PLAIN


class TestOrderTotalGte:
    def test_at_the_threshold(self) -> None:
        assert points_with({"order_total_gte": "500.00"}, order("500.00")) == 1000

    def test_below_the_threshold(self) -> None:
        assert points_with({"order_total_gte": "500.00"}, order("499.99")) == 499


class TestBirthdayMonth:
    DECEMBER = date(1990, 12, 25)

    def test_true_in_the_birthday_month(self) -> None:
        facts = order(paid_at=at("2026-12-03T12:00:00Z"), birthday=self.DECEMBER)
        assert points_with({"birthday_month": True}, facts) == DOUBLED

    def test_true_in_another_month(self) -> None:
        facts = order(paid_at=at("2026-11-03T12:00:00Z"), birthday=self.DECEMBER)
        assert points_with({"birthday_month": True}, facts) == PLAIN

    def test_true_without_a_birthday(self) -> None:
        facts = order(paid_at=at("2026-12-03T12:00:00Z"), birthday=None)
        assert points_with({"birthday_month": True}, facts) == PLAIN

    def test_false_in_the_birthday_month(self) -> None:
        facts = order(paid_at=at("2026-12-03T12:00:00Z"), birthday=self.DECEMBER)
        assert points_with({"birthday_month": False}, facts) == PLAIN

    def test_false_in_another_month(self) -> None:
        facts = order(paid_at=at("2026-11-03T12:00:00Z"), birthday=self.DECEMBER)
        assert points_with({"birthday_month": False}, facts) == DOUBLED

    def test_false_without_a_birthday(self) -> None:
        # A member with no birthday on file is never in their birthday month.
        facts = order(paid_at=at("2026-12-03T12:00:00Z"), birthday=None)
        assert points_with({"birthday_month": False}, facts) == DOUBLED

    def test_month_read_in_the_program_timezone(self) -> None:
        # 30 November 16:30 UTC is 1 December 00:30 in Shanghai.
        facts = order(paid_at=at("2026-11-30T16:30:00Z"), birthday=self.DECEMBER)
        assert points_with({"birthday_month": True}, facts, timezone="Asia/Shanghai") == DOUBLED
        assert points_with({"birthday_month": True}, facts, timezone="UTC") == PLAIN


class TestTier:
    @pytest.mark.parametrize(("tier", "expected"), [("gold", DOUBLED), ("silver", PLAIN), (None, PLAIN)])
    def test_member_tier(self, tier: str | None, expected: int) -> None:
        assert points_with({"tier": ["gold", "black"]}, order(tier=tier)) == expected


class TestChannel:
    @pytest.mark.parametrize(("channel", "expected"), [("app", DOUBLED), ("web", PLAIN), (None, PLAIN)])
    def test_order_channel(self, channel: str | None, expected: int) -> None:
        assert points_with({"channel": ["app"]}, order(channel=channel)) == expected


class TestCategory:
    SHOES = line("SHOE-1", "100.00", category="shoes")
    SOCKS = line("SOCK-1", "25.00", quantity=2, category="socks")

    def test_applies_to_matching_lines_only(self) -> None:
        rules = with_multipliers({"id": "shoes", "factor": "3", "when": {"category": ["shoes"]}})
        result = earn_order(rules, order("150.00", lines=(self.SHOES, self.SOCKS)))
        assert result.points == 150 + 200  # the shoes earn 300, the socks 50
        assert points_of(result, "shoes") == 200
        assert "on matching lines" in result.lines[1].detail

    def test_not_on_what_the_lines_do_not_cover(self) -> None:
        # 10.00 shipping earns the base rate only.
        rules = with_multipliers({"id": "shoes", "factor": "3", "when": {"category": ["shoes"]}})
        assert earn_order(rules, order("110.00", lines=(self.SHOES,))).points == 110 + 200

    def test_no_matching_line(self) -> None:
        rules = with_multipliers({"id": "shoes", "factor": "3", "when": {"category": ["shoes"]}})
        result = earn_order(rules, order("50.00", lines=(self.SOCKS,)))
        assert result.points == 50
        assert rules_named(result) == ["base"]

    def test_an_order_without_lines(self) -> None:
        rules = with_multipliers({"id": "shoes", "factor": "3", "when": {"category": ["shoes"]}})
        assert earn_order(rules, order("100.00")).points == PLAIN

    def test_a_bonus_needs_one_matching_line(self) -> None:
        rules = document({"bonuses": [{"id": "shoe-bonus", "points": 30, "when": {"category": ["shoes"]}}]})
        assert earn_order(rules, order("150.00", lines=(self.SHOES, self.SOCKS))).points == 180
        assert earn_order(rules, order("50.00", lines=(self.SOCKS,))).points == 50


class TestSku:
    def test_applies_to_matching_lines_only(self) -> None:
        lines = (line("SKU-A", "40.00"), line("SKU-B", "60.00"))
        rules = with_multipliers({"id": "sku-a", "factor": "2", "when": {"sku": ["SKU-A"]}})
        result = earn_order(rules, order("100.00", lines=lines))
        assert result.points == 140
        assert points_of(result, "sku-a") == 40

    def test_with_a_category_both_must_match(self) -> None:
        lines = (line("SKU-A", "40.00", category="shoes"), line("SKU-A", "60.00", category="socks"))
        when = {"sku": ["SKU-A"], "category": ["shoes"]}
        assert (
            earn_order(with_multipliers({"id": "m", "factor": "2", "when": when}), order(lines=lines)).points
            == 140
        )


class TestFirstOrder:
    RULES = document({"bonuses": [{"id": "first-order", "points": 100, "when": {"first_order": True}}]})

    def test_bonus_on_the_first_order(self) -> None:
        result = earn_order(self.RULES, order("20.00", first_order=True))
        assert result.points == 120
        assert result.lines[-1] == ExplanationLine("first-order", 100, "+100 (first_order)")

    def test_no_bonus_later(self) -> None:
        result = earn_order(self.RULES, order("20.00", first_order=False))
        assert result.points == 20
        assert rules_named(result) == ["base"]

    def test_false_means_a_returning_member(self) -> None:
        rules = document({"bonuses": [{"id": "welcome-back", "points": 5, "when": {"first_order": False}}]})
        assert earn_order(rules, order("20.00", first_order=False)).points == 25
        assert earn_order(rules, order("20.00", first_order=True)).points == 20


MONDAY_IN_THE_APP: dict[str, Any] = {"weekday": [1], "channel": ["app"]}


class TestAllOf:
    def test_every_clause_must_hold(self) -> None:
        monday = at("2026-06-08T12:00:00Z")
        assert points_with(MONDAY_IN_THE_APP, order(paid_at=monday, channel="app")) == DOUBLED
        assert points_with(MONDAY_IN_THE_APP, order(paid_at=monday, channel="web")) == PLAIN
        assert (
            points_with(MONDAY_IN_THE_APP, order(paid_at=at("2026-06-09T12:00:00Z"), channel="app")) == PLAIN
        )


class TestProgramTimezone:
    """A member day on the 8th starts at local midnight in Shanghai (16:00 UTC on the 7th)."""

    MEMBER_DAY = with_multipliers(
        {"id": "member-day", "factor": "2", "when": {"day_of_month": [8]}}, timezone="Asia/Shanghai"
    )

    def test_just_after_local_midnight(self) -> None:
        result = earn_order(self.MEMBER_DAY, order(paid_at=at("2026-12-07T16:30:00Z")))
        assert result.points == DOUBLED
        assert result.local_day == date(2026, 12, 8)
        assert rules_named(result) == ["base", "member-day"]

    def test_just_before_local_midnight(self) -> None:
        result = earn_order(self.MEMBER_DAY, order(paid_at=at("2026-12-07T15:59:59Z")))
        assert result.points == PLAIN
        assert result.local_day == date(2026, 12, 7)

    def test_the_same_instant_in_utc_is_the_7th(self) -> None:
        rules = with_multipliers({"id": "member-day", "factor": "2", "when": {"day_of_month": [8]}})
        assert earn_order(rules, order(paid_at=at("2026-12-07T16:30:00Z"))).points == PLAIN

    @pytest.mark.parametrize("paid_at", ["2026-12-07T10:30:00-06:00", "2026-12-08T00:30:00+08:00"])
    def test_the_offset_of_paid_at_does_not_matter(self, paid_at: str) -> None:
        assert earn_order(self.MEMBER_DAY, order(paid_at=at(paid_at))).points == DOUBLED


class TestStacking:
    FACTORS = ({"id": "double", "factor": "2"}, {"id": "half-more", "factor": "1.5"})

    @pytest.mark.parametrize(("stacking", "expected"), [("multiply", 300), ("add", 250), ("best", 200)])
    def test_two_and_one_and_a_half(self, stacking: str, expected: int) -> None:
        result = earn_order(with_multipliers(*self.FACTORS, stacking=stacking), order("100.00"))
        assert result.points == expected
        assert sum(item.points for item in result.lines) == expected

    @pytest.mark.parametrize(("stacking", "expected"), [("multiply", 300), ("add", 250), ("best", 200)])
    def test_order_of_the_rules_does_not_matter(self, stacking: str, expected: int) -> None:
        result = earn_order(with_multipliers(*reversed(self.FACTORS), stacking=stacking), order("100.00"))
        assert result.points == expected

    def test_multiply_explains_each_factor(self) -> None:
        result = earn_order(with_multipliers(*self.FACTORS), order("100.00"))
        assert [(item.rule, item.points) for item in result.lines] == [
            ("base", 100),
            ("double", 100),
            ("half-more", 100),
        ]

    def test_best_explains_the_smaller_factor_as_nothing(self) -> None:
        result = earn_order(with_multipliers(*self.FACTORS, stacking="best"), order("100.00"))
        assert [(item.rule, item.points) for item in result.lines] == [
            ("base", 100),
            ("double", 100),
            ("half-more", 0),
        ]

    def test_add_never_goes_below_zero(self) -> None:
        # 0.5x and 0.4x add up to -0.1x: the order earns nothing, not a negative amount.
        rules = with_multipliers({"id": "a", "factor": "0.5"}, {"id": "b", "factor": "0.4"}, stacking="add")
        result = earn_order(rules, order("100.00"))
        assert result.points == 0
        assert sum(item.points for item in result.lines) == 0

    def test_only_matching_lines_stack(self) -> None:
        lines = (line("SHOE", "100.00", category="shoes"), line("SOCK", "100.00", category="socks"))
        rules = with_multipliers(
            {"id": "everything", "factor": "2"},
            {"id": "shoes", "factor": "3", "when": {"category": ["shoes"]}},
            stacking="add",
        )
        # shoes: 2 + (3 - 1) = 4x, socks: 2x
        assert earn_order(rules, order("200.00", lines=lines)).points == 400 + 200


class TestExcludedCategories:
    RULES = document({"exclude_categories": ["gift_card"]})
    GIFT_CARD = line("GC-100", "100.00", category="gift_card")
    SHOES = line("SHOE", "50.00", category="shoes")

    def test_earn_nothing(self) -> None:
        result = earn_order(self.RULES, order("150.00", lines=(self.GIFT_CARD, self.SHOES)))
        assert result.points == 50
        assert result.lines[0].detail == "50.00 CNY at 1 per 1.00, floor; 100.00 CNY excluded"

    def test_are_not_multiplied(self) -> None:
        rules = document(
            {"exclude_categories": ["gift_card"], "multipliers": [{"id": "double", "factor": "2"}]}
        )
        assert earn_order(rules, order("150.00", lines=(self.GIFT_CARD, self.SHOES))).points == 100

    def test_a_multiplier_on_an_excluded_category_applies_to_nothing(self) -> None:
        rules = document(
            {
                "exclude_categories": ["gift_card"],
                "multipliers": [{"id": "cards", "factor": "5", "when": {"category": ["gift_card"]}}],
            }
        )
        result = earn_order(rules, order("150.00", lines=(self.GIFT_CARD, self.SHOES)))
        assert result.points == 50
        assert rules_named(result) == ["base"]

    def test_share_a_discount(self) -> None:
        # The lines add up to 150.00, the customer paid 120.00: the shoes' share is 40.00.
        assert earn_order(self.RULES, order("120.00", lines=(self.GIFT_CARD, self.SHOES))).points == 40

    def test_shipping_still_earns(self) -> None:
        assert earn_order(self.RULES, order("105.00", lines=(self.GIFT_CARD,))).points == 5


class TestCaps:
    def test_per_order(self) -> None:
        rules = document({"multipliers": [{"id": "double", "factor": "2"}], "caps": {"per_order": 150}})
        result = earn_order(rules, order("100.00"))
        assert result.points == 150
        assert result.lines[-1] == ExplanationLine("cap:per_order", -50, "at most 150 per order")
        assert sum(item.points for item in result.lines) == 150

    def test_per_order_clips_bonuses_too(self) -> None:
        rules = document(
            {"bonuses": [{"id": "welcome", "points": 100}], "caps": {"per_order": 120}},
        )
        result = earn_order(rules, order("100.00"))
        assert result.points == 120
        assert [(item.rule, item.points) for item in result.lines] == [
            ("base", 100),
            ("welcome", 100),
            ("cap:per_order", -80),
        ]

    def test_per_member_per_day(self) -> None:
        rules = document({"caps": {"per_member_per_day": 1000}}, timezone="Asia/Shanghai")
        result = earn_order(rules, order("100.00", earned_today=950, paid_at=at("2026-12-07T16:30:00Z")))
        assert result.points == 50
        clip = result.lines[-1]
        assert (clip.rule, clip.points) == ("cap:per_member_per_day", -50)
        assert "950 already earned on 2026-12-08" in clip.detail

    def test_per_member_per_day_already_reached(self) -> None:
        rules = document({"caps": {"per_member_per_day": 1000}})
        result = earn_order(rules, order("100.00", earned_today=1200))
        assert result.points == 0
        assert (result.lines[-1].rule, result.lines[-1].points) == ("cap:per_member_per_day", -100)

    def test_both(self) -> None:
        rules = document({"caps": {"per_order": 80, "per_member_per_day": 1000}})
        result = earn_order(rules, order("100.00", earned_today=950))
        assert result.points == 50
        assert [(item.rule, item.points) for item in result.lines] == [
            ("base", 100),
            ("cap:per_order", -20),
            ("cap:per_member_per_day", -30),
        ]

    def test_no_clip_below_the_caps(self) -> None:
        rules = document({"caps": {"per_order": 100, "per_member_per_day": 1000}})
        result = earn_order(rules, order("100.00", earned_today=900))
        assert result.points == 100
        assert rules_named(result) == ["base"]


class TestRounding:
    @pytest.mark.parametrize(
        ("total", "floor", "half_up", "ceil"),
        [("10.00", 10, 10, 10), ("10.49", 10, 10, 11), ("10.50", 10, 11, 11), ("10.99", 10, 11, 11)],
    )
    def test_modes(self, total: str, floor: int, half_up: int, ceil: int) -> None:
        for rounding, expected in (("floor", floor), ("half_up", half_up), ("ceil", ceil)):
            rules = document({"base": {"points": 1, "per": "1.00", "rounding": rounding}})
            assert earn_order(rules, order(total)).points == expected, rounding

    def test_once_after_multipliers(self) -> None:
        # 1.50 earns 1.5 points; doubled, 3. Rounding the base first would give 2.
        rules = document({"multipliers": [{"id": "double", "factor": "2"}]})
        result = earn_order(rules, order("1.50"))
        assert result.points == 3
        assert [(item.rule, item.points) for item in result.lines] == [("base", 1), ("double", 2)]

    def test_once_after_a_multiplier_on_a_rate_of_thirds(self) -> None:
        # 1.00 at 1 point per 3 is 1/3 point; tripled, exactly 1.
        rules = document(
            {
                "base": {"points": 1, "per": "3", "rounding": "floor"},
                "multipliers": [{"id": "triple", "factor": "3"}],
            }
        )
        assert earn_order(rules, order("1.00")).points == 1

    def test_once_over_the_whole_order(self) -> None:
        # Three lines of 0.50 earn 1.5 points together: 1, not 0 + 0 + 0.
        lines = tuple(line(sku, "0.50") for sku in ("A", "B", "C"))
        assert earn_order(document(), order("1.50", lines=lines)).points == 1

    @pytest.mark.parametrize(
        ("points", "per", "rounding", "total", "expected"),
        [
            (1, "3.00", "floor", "3.00", 1),  # exactly 1
            (1, "3.00", "floor", "9.00", 3),  # exactly 3
            (1, "7", "floor", "7.00", 1),  # exactly 1
            (2, "3.00", "ceil", "1.50", 1),  # exactly 1
            (1, "0.3", "half_up", "1976.85", 6590),  # exactly 6589.5
        ],
    )
    def test_a_rate_that_is_not_a_finite_decimal(
        self, points: int, per: str, rounding: str, total: str, expected: int
    ) -> None:
        # 1/3 point per unit has no finite decimal form; the order's exact points do.
        rules = document({"base": {"points": points, "per": per, "rounding": rounding}})
        assert earn_order(rules, order(total)).points == expected

    def test_a_discount_shared_in_thirds(self) -> None:
        # Three lines of 1.00, 2.00 paid: each line's share is 2/3, and 3x the order is 6 points.
        lines = tuple(line(sku, "1.00") for sku in ("A", "B", "C"))
        rules = document(
            {
                "base": {"points": 1, "per": "1.00", "rounding": "ceil"},
                "multipliers": [{"id": "x3", "factor": "3"}],
            }
        )
        assert earn_order(rules, order("2.00", lines=lines)).points == 6

    def test_a_discount_shared_in_thirds_with_a_factor_per_line(self) -> None:
        # Shares of 2/3 each: socks earn 2/3 x 1.5 = 1 point each, shoes 2/3 x 3 = 2; 4 exactly.
        lines = (
            line("SOCK-1", "1.00", category="socks"),
            line("SOCK-2", "1.00", category="socks"),
            line("SHOE", "1.00", category="shoes"),
        )
        rules = document(
            {
                "multipliers": [
                    {"id": "socks", "factor": "1.5", "when": {"category": ["socks"]}},
                    {"id": "shoes", "factor": "3", "when": {"category": ["shoes"]}},
                ]
            }
        )
        assert earn_order(rules, order("2.00", lines=lines)).points == 4


class TestCurrency:
    def test_mismatch_is_refused(self) -> None:
        rules = document(currency="CNY")
        with pytest.raises(RulesError) as refused:
            earn_order(rules, order(currency="USD"))
        assert refused.value.code == "currency_mismatch"

    def test_the_program_currency_earns(self) -> None:
        assert earn_order(document(currency="CNY"), order(currency="CNY")).points == PLAIN

    def test_no_currency_takes_any(self) -> None:
        assert earn_order(document(), order(currency="USD")).points == PLAIN


class TestExplanation:
    def test_names_the_base_rate(self) -> None:
        result = earn_order(document(), order("12.34"))
        assert result.lines == (ExplanationLine("base", 12, "12.34 CNY at 1 per 1.00, floor"),)

    def test_describes_the_conditions(self) -> None:
        rules = with_multipliers({"id": "weekend", "factor": "1.5", "when": {"weekday": [6, 7]}})
        result = earn_order(rules, order(paid_at=at("2026-06-07T12:00:00Z")))
        assert result.lines[1] == ExplanationLine("weekend", 50, "x1.5 (weekday 6,7)")

    def test_without_details(self) -> None:
        # A what-if replay skips the sentences, not the points.
        rules = document(
            {
                "multipliers": [{"id": "weekend", "factor": "1.5", "when": {"weekday": [6, 7]}}],
                "bonuses": [{"id": "welcome", "points": 10}],
                "caps": {"per_order": 150},
            }
        )
        facts = order(paid_at=at("2026-06-07T12:00:00Z"))
        explained = earn_order(rules, facts)
        bare = earn_order(rules, facts, explain=False)
        assert bare.points == explained.points == 150
        assert [(item.rule, item.points) for item in bare.lines] == [
            (item.rule, item.points) for item in explained.lines
        ]
        assert [item.detail for item in bare.lines] == ["", "", "", ""]
        assert all(item.detail for item in explained.lines)
        assert bare.segments == ()
        assert explained.segments

    def test_the_same_facts_earn_the_same(self) -> None:
        rules: RulesDocument = with_multipliers(
            {"id": "weekend", "factor": "1.5", "when": {"weekday": [6, 7]}}
        )
        facts = order(paid_at=at("2026-06-07T12:00:00Z"))
        assert earn_order(rules, facts) == earn_order(rules, facts)
