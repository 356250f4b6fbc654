"""Event streaks ("check in 7 days in a row"): where a streak stands after each
event, the bonus line, and properties over random sequences of days."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.rules import EventFacts, ExplanationLine, RulesDocument, earn_event
from app.rules.document import Streak
from app.rules.events import StreakMark, streak_step
from tests.rules.strategies import document

EXAMPLES = settings(max_examples=300, deadline=None)
WEEK = Streak(days=7, points=50)
RULES = document(
    events={"check_in": {"points": 5, "streak": {"days": 7, "points": 50}}, "review": {"points": 10}},
    timezone="Asia/Shanghai",
)
DAY = date(2026, 6, 1)


def noon(day: date, zone: str = "Asia/Shanghai") -> datetime:
    return datetime.combine(day, time(12), tzinfo=ZoneInfo(zone)).astimezone(UTC)


class TestStreakStep:
    def test_the_first_event_starts_a_streak(self) -> None:
        assert streak_step(WEEK, None, DAY) == StreakMark(DAY, 1)

    def test_the_next_day_moves_it_on(self) -> None:
        assert streak_step(WEEK, StreakMark(DAY, 3), DAY + timedelta(days=1)) == StreakMark(
            DAY + timedelta(days=1), 4
        )

    def test_the_same_day_counts_once(self) -> None:
        assert streak_step(WEEK, StreakMark(DAY, 3), DAY) is None

    def test_an_earlier_day_reported_late_changes_nothing(self) -> None:
        assert streak_step(WEEK, StreakMark(DAY, 3), DAY - timedelta(days=2)) is None

    def test_a_missed_day_starts_again(self) -> None:
        assert streak_step(WEEK, StreakMark(DAY, 6), DAY + timedelta(days=2)) == StreakMark(
            DAY + timedelta(days=2), 1
        )

    def test_after_a_completed_streak_the_count_starts_again(self) -> None:
        assert streak_step(WEEK, StreakMark(DAY, 7), DAY + timedelta(days=1)) == StreakMark(
            DAY + timedelta(days=1), 1
        )


class TestEarnWithAStreak:
    def earn(self, day: date, last: StreakMark | None, kind: str = "check_in") -> tuple[int, list[str]]:
        result = earn_event(RULES, EventFacts(kind, noon(day), 0, last_streak=last))
        return result.points, [line.rule for line in result.lines]

    def test_the_seventh_day_pays_the_bonus_on_its_own_line(self) -> None:
        result = earn_event(
            RULES, EventFacts("check_in", noon(DAY), 0, last_streak=StreakMark(DAY - timedelta(days=1), 6))
        )
        assert result.points == 55
        assert result.streak == StreakMark(DAY, 7)
        assert result.lines == (
            ExplanationLine("event:check_in", 5, "fixed points"),
            ExplanationLine(
                "event:check_in:streak", 50, "+50 for 7 days in a row (2026-05-26 to 2026-06-01)"
            ),
        )

    def test_other_days_pay_the_fixed_points(self) -> None:
        assert self.earn(DAY, StreakMark(DAY - timedelta(days=1), 5)) == (5, ["event:check_in"])
        assert self.earn(DAY, None) == (5, ["event:check_in"])

    def test_a_second_event_the_same_day_earns_but_does_not_count(self) -> None:
        result = earn_event(RULES, EventFacts("check_in", noon(DAY), 1, last_streak=StreakMark(DAY, 6)))
        assert (result.points, result.streak) == (5, None)

    def test_a_type_without_a_streak_has_no_mark(self) -> None:
        result = earn_event(RULES, EventFacts("review", noon(DAY), 0))
        assert result.streak is None

    def test_the_day_is_the_programs_local_day(self) -> None:
        # 16:30 UTC on 2026-05-31 is 00:30 on 2026-06-01 in Shanghai: the day after 05-31.
        late = datetime(2026, 5, 31, 16, 30, tzinfo=UTC)
        result = earn_event(
            RULES, EventFacts("check_in", late, 0, last_streak=StreakMark(date(2026, 5, 31), 6))
        )
        assert result.streak == StreakMark(DAY, 7)
        assert result.points == 55


class TestDocument:
    def test_a_streak_needs_two_days_or_more(self) -> None:
        with pytest.raises(ValidationError, match="greater than or equal to 2"):
            document(events={"check_in": {"points": 5, "streak": {"days": 1, "points": 50}}})

    def test_referral_takes_no_streak(self) -> None:
        with pytest.raises(ValidationError, match="referral earns once"):
            document(events={"referral": {"referrer": 1, "referee": 1, "streak": {"days": 7, "points": 5}}})

    def test_points_are_whole_and_positive(self) -> None:
        with pytest.raises(ValidationError):
            document(events={"check_in": {"points": 5, "streak": {"days": 7, "points": 0}}})
        with pytest.raises(ValidationError):
            document(events={"check_in": {"points": 5, "streak": {"days": 7, "points": "50"}}})


# --- properties -----------------------------------------------------------------------------

# Days as offsets from DAY, in the order the events are reported: mostly forward,
# with repeats (several a day), gaps and the odd day reported late.
_steps = st.lists(st.sampled_from([0, 0, 1, 1, 1, 1, 1, 2, 3, -1, -4]), max_size=60)


def _days(steps: list[int]) -> list[date]:
    day, days = DAY, []
    for step in steps:
        day += timedelta(days=step)
        days.append(day)
    return days


def _bonuses_by_runs(days: list[date], length: int) -> int:
    """Completed streaks counted from scratch: each maximal run of consecutive new
    days (each later than every day counted before it) completes one streak per
    `length` days of it."""
    total = run = 0
    last: date | None = None
    for day in days:
        if last is not None and day <= last:
            continue  # the same day again, or reported late: not counted
        run = run + 1 if last is not None and day == last + timedelta(days=1) else 1
        last = day
        if run % length == 0:
            total += 1
    return total


class TestProperties:
    @EXAMPLES
    @given(steps=_steps, length=st.integers(2, 9))
    def test_each_completed_streak_pays_exactly_once(self, steps: list[int], length: int) -> None:
        streak = Streak(days=length, points=1)
        last: StreakMark | None = None
        paid = 0
        for day in _days(steps):
            mark = streak_step(streak, last, day)
            if mark is not None:
                assert 1 <= mark.position <= length
                assert last is None or mark.day > last.day
                last = mark
                paid += mark.position == length
        assert paid == _bonuses_by_runs(_days(steps), length)

    @EXAMPLES
    @given(steps=_steps)
    def test_earning_adds_the_bonus_to_the_fixed_points_and_lines_add_up(self, steps: list[int]) -> None:
        last: StreakMark | None = None
        total = 0
        for day in _days(steps):
            result = earn_event(RULES, EventFacts("check_in", noon(day), 0, last_streak=last))
            assert result.points == sum(line.points for line in result.lines)
            assert result.points == 5 + (
                50 if result.streak is not None and result.streak.position == 7 else 0
            )
            if result.streak is not None:
                last = result.streak
            total += result.points
        days = _days(steps)
        assert total == 5 * len(days) + 50 * _bonuses_by_runs(days, 7)


def test_documents_without_streaks_are_unchanged() -> None:
    plain: RulesDocument = document(events={"check_in": {"points": 5}})
    result = earn_event(
        plain, EventFacts("check_in", noon(DAY), 0, last_streak=StreakMark(DAY - timedelta(days=1), 6))
    )
    assert (result.points, result.streak) == (5, None)
