"""What a non-order activity earns."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from app.rules import EventFacts, ExplanationLine, RulesDocument, RulesError, earn_event
from tests.rules.strategies import document

RULES = document(
    events={
        "sign_up": {"points": 50},
        "review": {"points": 10, "max_per_day": 1},
        "check_in": {"points": 5, "max_per_day": 3},
        "share": {"points": 2},
        "referral": {"referrer": 200, "referee": 100},
    },
    timezone="Asia/Shanghai",
)
NOON = datetime(2026, 6, 10, 4, 0, tzinfo=UTC)  # noon in Shanghai


def event(
    kind: str,
    *,
    earned_today: int = 0,
    occurred_at: datetime = NOON,
    has_referrer: bool = False,
    referrals_before: int = 0,
) -> EventFacts:
    return EventFacts(
        type=kind,
        occurred_at=occurred_at,
        earned_today=earned_today,
        has_referrer=has_referrer,
        referrals_before=referrals_before,
    )


def refused(rules: RulesDocument, facts: EventFacts) -> RulesError:
    with pytest.raises(RulesError) as error:
        earn_event(rules, facts)
    return error.value


class TestFixedPoints:
    def test_sign_up(self) -> None:
        result = earn_event(RULES, event("sign_up"))
        assert (result.points, result.referrer_points) == (50, 0)
        assert result.lines == (ExplanationLine("event:sign_up", 50, "fixed points"),)

    def test_local_day_in_the_program_timezone(self) -> None:
        # 16:30 UTC on the 7th is 00:30 on the 8th in Shanghai.
        late = datetime(2026, 12, 7, 16, 30, tzinfo=UTC)
        assert earn_event(RULES, event("sign_up", occurred_at=late)).local_day == date(2026, 12, 8)
        assert earn_event(RULES, event("sign_up", occurred_at=NOON)).local_day == date(2026, 6, 10)

    def test_without_a_limit_any_number_a_day(self) -> None:
        assert earn_event(RULES, event("share", earned_today=1000)).points == 2


class TestMaxPerDay:
    def test_first_of_the_day(self) -> None:
        assert earn_event(RULES, event("review", earned_today=0)).points == 10

    def test_limit_reached(self) -> None:
        error = refused(RULES, event("review", earned_today=1))
        assert error.code == "event_limit_reached"

    @pytest.mark.parametrize(("earned_today", "earns"), [(0, True), (2, True), (3, False), (4, False)])
    def test_up_to_the_limit(self, earned_today: int, earns: bool) -> None:
        facts = event("check_in", earned_today=earned_today)
        if earns:
            assert earn_event(RULES, facts).points == 5
        else:
            assert refused(RULES, facts).code == "event_limit_reached"


class TestUnknownType:
    def test_refused(self) -> None:
        error = refused(RULES, event("birthday_party"))
        assert error.code == "unknown_event_type"
        assert error.field == "body.type"

    def test_a_program_without_events(self) -> None:
        assert refused(document(), event("sign_up")).code == "unknown_event_type"


class TestReferral:
    def test_both_sides_earn(self) -> None:
        result = earn_event(RULES, event("referral", has_referrer=True))
        assert (result.points, result.referrer_points) == (100, 200)
        assert [(item.rule, item.points) for item in result.lines] == [
            ("event:referral:referee", 100),
            ("event:referral:referrer", 200),
        ]

    def test_needs_a_referrer(self) -> None:
        assert refused(RULES, event("referral", has_referrer=False)).code == "no_referrer"

    def test_earns_once(self) -> None:
        error = refused(RULES, event("referral", has_referrer=True, referrals_before=1))
        assert error.code == "event_limit_reached"

    def test_a_daily_limit_applies_too(self) -> None:
        rules = document(events={"referral": {"referrer": 200, "referee": 100, "max_per_day": 1}})
        error = refused(rules, event("referral", has_referrer=True, earned_today=1))
        assert error.code == "event_limit_reached"
