"""Validating a rules document: defaults, decimal strings, and errors that point at the bad field."""

from __future__ import annotations

import copy
import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from app.rules import RulesDocument, default_document

MINIMAL: dict[str, Any] = {"earn": {"base": {"points": 1, "per": "1.00"}}}

FULL: dict[str, Any] = {
    "timezone": "Asia/Shanghai",
    "currency": "CNY",
    "earn": {
        "base": {"points": 1, "per": "1.00", "rounding": "floor"},
        "exclude_categories": ["gift_card"],
        "multipliers": [
            {"id": "member-day", "factor": "2", "when": {"day_of_month": [8]}},
            {"id": "weekend", "factor": "1.5", "when": {"weekday": [6, 7]}},
            {"id": "big-order", "factor": "2", "when": {"order_total_gte": "500.00"}},
            {"id": "birthday", "factor": "1.5", "when": {"birthday_month": True}},
            {"id": "shoes", "factor": "3", "when": {"category": ["shoes"]}},
            {"id": "app-only", "factor": "1.2", "when": {"channel": ["app"]}},
            {"id": "spring", "factor": "2", "when": {"between": ["2027-03-01", "2027-03-31"]}},
            {"id": "gold", "factor": "1.5", "when": {"tier": ["gold"]}},
        ],
        "stacking": "multiply",
        "bonuses": [{"id": "first-order", "points": 100, "when": {"first_order": True}}],
        "caps": {"per_order": 5000, "per_member_per_day": 10000},
        "pending_days": 14,
    },
    "events": {
        "sign_up": {"points": 50},
        "review": {"points": 10, "max_per_day": 1},
        "check_in": {"points": 5, "max_per_day": 1},
        "referral": {"referrer": 200, "referee": 100},
    },
    "redeem": {"min_points": 100, "increment": 10, "point_value": "0.01", "max_share_of_order": "0.5"},
    "expiry": {"policy": "rolling", "months": 12, "warn_days": 30},
    "tiers": [
        {"code": "silver", "name": "Silver", "rank": 1, "qualify": {"orders": 5}, "retain": {"orders": 3}},
        {
            "code": "gold",
            "name": "Gold",
            "rank": 2,
            "qualify": {"orders": 20, "spend": "200.00"},
            "retain": {"orders": 12},
        },
    ],
    "tier_policy": {
        "window": "rolling_12_months",
        "term_months": 12,
        "downgrade": "one_down",
        "grace_days": 30,
        "keep_with_points": {"gold": 2000},
    },
}


def changed(path: tuple[str | int, ...], value: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of the document (FULL by default) with the value at `path` set."""
    body = copy.deepcopy(FULL if base is None else base)
    target: Any = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


def refusal(body: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """The (location, type) of every error, for a document that must be refused."""
    with pytest.raises(ValidationError) as refused:
        RulesDocument.model_validate(body)
    return [(error["loc"], error["type"]) for error in refused.value.errors()]


def locations(body: dict[str, Any]) -> list[tuple[str | int, ...]]:
    return [loc for loc, _ in refusal(body)]


class TestDefaults:
    def test_default_document(self) -> None:
        rules = default_document()
        assert rules.timezone == "UTC"
        assert rules.currency is None
        assert (rules.earn.base.points, rules.earn.base.per, rules.earn.base.rounding) == (
            1,
            Decimal(1),
            "floor",
        )
        assert rules.earn.exclude_categories == []
        assert rules.earn.multipliers == []
        assert rules.earn.stacking == "multiply"
        assert rules.earn.bonuses == []
        assert (rules.earn.caps.per_order, rules.earn.caps.per_member_per_day) == (None, None)
        assert rules.earn.pending_days == 0
        assert rules.events == {}
        redeem = rules.redeem
        assert (redeem.min_points, redeem.increment, redeem.point_value, redeem.max_share_of_order) == (
            None,
            None,
            None,
            None,
        )
        assert rules.expiry.policy == "none"
        assert rules.tiers == []
        assert rules.tier_policy.window == "rolling_12_months"
        assert rules.tier_policy.keep_with_points == {}
        assert rules.refunds.shortfall == "record"

    def test_only_the_base_is_required(self) -> None:
        rules = RulesDocument.model_validate(MINIMAL)
        assert rules.earn.base.rounding == "floor"
        assert rules == RulesDocument.model_validate({"earn": {"base": {"points": 1, "per": "1.00"}}})
        assert rules.model_dump(exclude={"earn"}) == default_document().model_dump(exclude={"earn"})

    def test_without_earn(self) -> None:
        assert refusal({}) == [(("earn",), "missing")]

    def test_without_a_base(self) -> None:
        assert refusal({"earn": {}}) == [(("earn", "base"), "missing")]

    def test_the_sketch_in_rules_md(self) -> None:
        rules = RulesDocument.model_validate(FULL)
        assert rules.earn.multipliers[6].when.between == (date(2027, 3, 1), date(2027, 3, 31))
        assert rules.earn.multipliers[1].factor == Decimal("1.5")
        assert rules.events["referral"].referrer == 200

    def test_round_trips_through_json(self) -> None:
        rules = RulesDocument.model_validate(FULL)
        dumped = rules.model_dump(mode="json")
        assert dumped["earn"]["multipliers"][1]["factor"] == "1.5"
        assert dumped["earn"]["base"]["per"] == "1.00"
        assert RulesDocument.model_validate_json(json.dumps(dumped)) == rules


class TestDecimalStrings:
    @pytest.mark.parametrize("number", [1, 1.0, 1.5])
    def test_a_number_for_per_is_refused(self, number: float) -> None:
        assert locations(changed(("earn", "base", "per"), number)) == [("earn", "base", "per")]

    @pytest.mark.parametrize("number", [2, 2.0, 1.5])
    def test_a_number_for_a_factor_is_refused(self, number: float) -> None:
        assert locations(changed(("earn", "multipliers", 0, "factor"), number)) == [
            ("earn", "multipliers", 0, "factor")
        ]

    def test_a_json_number_is_refused(self) -> None:
        text = '{"earn": {"base": {"points": 1, "per": 1.00}}}'
        with pytest.raises(ValidationError) as refused:
            RulesDocument.model_validate_json(text)
        assert [error["loc"] for error in refused.value.errors()] == [("earn", "base", "per")]
        assert "decimal string" in refused.value.errors()[0]["msg"]

    def test_a_json_string_is_exact(self) -> None:
        rules = RulesDocument.model_validate_json('{"earn": {"base": {"points": 1, "per": "0.1"}}}')
        assert rules.earn.base.per == Decimal("0.1")

    @pytest.mark.parametrize("text", ["abc", "", "NaN", "Infinity", "1e400000000000"])
    def test_not_a_decimal(self, text: str) -> None:
        assert locations(changed(("earn", "multipliers", 1, "factor"), text)) == [
            ("earn", "multipliers", 1, "factor")
        ]

    @pytest.mark.parametrize("factor", ["0", "-1", "100.01", "1.00001"])
    def test_factor_limits(self, factor: str) -> None:
        assert locations(changed(("earn", "multipliers", 0, "factor"), factor)) == [
            ("earn", "multipliers", 0, "factor")
        ]

    @pytest.mark.parametrize("per", ["0", "-1.00", "0.00001"])
    def test_per_limits(self, per: str) -> None:
        assert locations(changed(("earn", "base", "per"), per)) == [("earn", "base", "per")]

    def test_order_total_gte(self) -> None:
        assert locations(changed(("earn", "multipliers", 2, "when", "order_total_gte"), 500)) == [
            ("earn", "multipliers", 2, "when", "order_total_gte")
        ]


class TestTimezone:
    @pytest.mark.parametrize("timezone", ["Mars/Olympus_Mons", "", "asia/shanghai", "+08:00"])
    def test_unknown_is_refused(self, timezone: str) -> None:
        assert locations(changed(("timezone",), timezone)) == [("timezone",)]

    @pytest.mark.parametrize("timezone", ["Asia/Shanghai", "Europe/Berlin", "UTC"])
    def test_iana_names(self, timezone: str) -> None:
        assert RulesDocument.model_validate(changed(("timezone",), timezone)).timezone == timezone


class TestUniqueIds:
    def test_duplicate_multiplier_ids_are_refused(self) -> None:
        body = changed(("earn", "multipliers", 1, "id"), "member-day")
        assert locations(body) == [("earn", "multipliers")]

    def test_duplicate_bonus_ids_are_refused(self) -> None:
        bonus = {"id": "first-order", "points": 5}
        body = changed(("earn", "bonuses"), [*FULL["earn"]["bonuses"], bonus])
        assert locations(body) == [("earn", "bonuses")]

    def test_a_multiplier_and_a_bonus_may_share_an_id(self) -> None:
        body = changed(("earn", "bonuses", 0, "id"), "member-day")
        assert RulesDocument.model_validate(body).earn.bonuses[0].id == "member-day"


class TestEvents:
    @pytest.mark.parametrize(
        "referral",
        [
            {"referrer": 200},
            {"referee": 100},
            {"points": 50},
            {"points": 50, "referrer": 200, "referee": 100},
        ],
    )
    def test_referral_needs_referrer_and_referee(self, referral: dict[str, int]) -> None:
        assert locations(changed(("events", "referral"), referral)) == [("events",)]

    def test_other_events_need_points(self) -> None:
        assert locations(changed(("events", "review"), {"max_per_day": 1})) == [("events",)]
        assert locations(changed(("events", "review"), {"referrer": 1, "referee": 1})) == [("events",)]

    def test_a_referral_may_give_one_side_nothing(self) -> None:
        rules = RulesDocument.model_validate(changed(("events", "referral"), {"referrer": 200, "referee": 0}))
        assert rules.events["referral"].referee == 0

    def test_max_per_day_must_be_positive(self) -> None:
        assert locations(changed(("events", "review", "max_per_day"), 0)) == [
            ("events", "review", "max_per_day")
        ]


class TestUnknownKeys:
    def test_at_the_top(self) -> None:
        assert refusal(changed(("earns",), {})) == [(("earns",), "extra_forbidden")]

    def test_in_a_condition(self) -> None:
        body = changed(("earn", "multipliers", 0, "when", "day_of_mnth"), [8])
        assert refusal(body) == [(("earn", "multipliers", 0, "when", "day_of_mnth"), "extra_forbidden")]

    def test_in_the_base(self) -> None:
        assert refusal(changed(("earn", "base", "round"), "floor")) == [
            (("earn", "base", "round"), "extra_forbidden")
        ]

    def test_in_caps(self) -> None:
        assert refusal(changed(("earn", "caps", "per_day"), 10)) == [
            (("earn", "caps", "per_day"), "extra_forbidden")
        ]


class TestErrorLocations:
    @pytest.mark.parametrize(
        ("path", "value"),
        [
            (("earn", "base", "points"), 0),
            (("earn", "base", "points"), "1"),
            (("earn", "base", "rounding"), "nearest"),
            (("earn", "stacking"), "sum"),
            (("earn", "multipliers", 1, "when", "weekday", 0), 0),
            (("earn", "multipliers", 0, "when", "day_of_month", 0), 32),
            (("earn", "multipliers", 6, "when", "between"), ["2027-03-31", "2027-03-01"]),
            (("earn", "caps", "per_order"), 0),
            (("earn", "pending_days"), -1),
            (("redeem", "point_value"), 0.01),
            (("expiry", "months"), 0),
        ],
    )
    def test_point_at_the_bad_field(self, path: tuple[str | int, ...], value: Any) -> None:
        assert locations(changed(path, value)) == [path]

    def test_two_bad_fields_two_errors(self) -> None:
        body = changed(("earn", "multipliers", 0, "factor"), 2)
        body = changed(("earn", "base", "per"), 1, body)
        assert sorted(locations(body), key=str) == sorted(
            [("earn", "base", "per"), ("earn", "multipliers", 0, "factor")], key=str
        )


class TestConditions:
    def test_between_in_order(self) -> None:
        when = {"between": ["2027-03-31", "2027-03-01"]}
        assert locations(changed(("earn", "multipliers", 0, "when"), when)) == [
            ("earn", "multipliers", 0, "when", "between")
        ]

    def test_hour_between_must_differ(self) -> None:
        when = {"hour_between": [18, 18]}
        assert locations(changed(("earn", "multipliers", 0, "when"), when)) == [
            ("earn", "multipliers", 0, "when", "hour_between")
        ]

    @pytest.mark.parametrize("hours", [[24, 2], [-1, 2], [18, 25]])
    def test_hours_in_range(self, hours: list[int]) -> None:
        found = locations(changed(("earn", "multipliers", 0, "when"), {"hour_between": hours}))
        assert len(found) == 1
        assert found[0][:5] == ("earn", "multipliers", 0, "when", "hour_between")

    def test_empty_lists_are_refused(self) -> None:
        assert locations(changed(("earn", "multipliers", 0, "when"), {"day_of_month": []})) == [
            ("earn", "multipliers", 0, "when", "day_of_month")
        ]
