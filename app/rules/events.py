"""What a non-order activity (sign-up, review, check-in, referral, custom types) earns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from app.rules.document import RulesDocument, Streak
from app.rules.earning import ExplanationLine, RulesError, local_time


@dataclass(frozen=True, slots=True)
class EventFacts:
    type: str
    occurred_at: datetime  # timezone-aware
    earned_today: int  # events of this type that earned for the member on the same local day
    has_referrer: bool = False  # referral: the member was referred by another member
    referrals_before: int = 0  # referral: earlier referral events of the member
    # a type with a streak: the member's latest event of the type that counted
    # towards a streak (its local day and its position in that streak), if any
    last_streak: StreakMark | None = None


@dataclass(frozen=True, slots=True)
class StreakMark:
    """Where a member's streak stood after one event: its local day and its position
    in the streak, 1 to `days` (`days`: that event completed the streak)."""

    day: date
    position: int


@dataclass(frozen=True, slots=True)
class EventEarning:
    points: int  # for the member, streak bonus included
    referrer_points: int  # referral: for the member who referred them
    lines: tuple[ExplanationLine, ...]
    local_day: date
    # the type has a streak and this event counts towards it: where the streak
    # stands after it (None: it does not count, being on a day already counted or
    # on an earlier day than the latest one counted)
    streak: StreakMark | None = None


def streak_step(streak: Streak, last: StreakMark | None, day: date) -> StreakMark | None:
    """Where the streak stands after an event on local day `day`, given the last
    event that counted (`last`): the next position on the day after it, 1 after a
    gap (or after a completed streak: days 8..14 complete the next one of 7). An
    event on a day already counted, or before it (reported late), counts once and
    changes nothing: None."""
    if last is None or day > last.day + timedelta(days=1):
        return StreakMark(day, 1)
    if day <= last.day:
        return None
    return StreakMark(day, 1 if last.position >= streak.days else last.position + 1)


def local_day(rules: RulesDocument, instant: datetime) -> date:
    return local_time(rules, instant).date()


def earn_event(rules: RulesDocument, facts: EventFacts) -> EventEarning:
    rule = rules.events.get(facts.type)
    if rule is None:
        known = ", ".join(sorted(rules.events)) or "none"
        raise RulesError(
            "unknown_event_type",
            f"the program's rules give no points for {facts.type} events (known: {known})",
            field="body.type",
        )
    day = local_day(rules, facts.occurred_at)
    if rule.max_per_day is not None and facts.earned_today >= rule.max_per_day:
        raise RulesError(
            "event_limit_reached",
            f"{facts.type} earns at most {rule.max_per_day} time(s) a day; "
            f"{facts.earned_today} already on {day.isoformat()}",
        )
    rule_name = f"event:{facts.type}"
    if facts.type != "referral":
        assert rule.points is not None  # the document validator guarantees it
        own = [ExplanationLine(rule_name, rule.points, "fixed points")]
        mark = None if rule.streak is None else streak_step(rule.streak, facts.last_streak, day)
        if rule.streak is not None and mark is not None and mark.position == rule.streak.days:
            first = day - timedelta(days=rule.streak.days - 1)
            own.append(
                ExplanationLine(
                    f"{rule_name}:streak",
                    rule.streak.points,
                    f"+{rule.streak.points} for {rule.streak.days} days in a row "
                    f"({first.isoformat()} to {day.isoformat()})",
                )
            )
        return EventEarning(sum(line.points for line in own), 0, tuple(own), day, mark)
    if not facts.has_referrer:
        raise RulesError("no_referrer", "the member was not referred by anyone (enrol with referred_by)")
    if facts.referrals_before:
        raise RulesError("event_limit_reached", "a member's referral earns once")
    assert rule.referee is not None
    assert rule.referrer is not None
    lines = (
        ExplanationLine(f"{rule_name}:referee", rule.referee, "for the new member"),
        ExplanationLine(f"{rule_name}:referrer", rule.referrer, "for the member who referred them"),
    )
    return EventEarning(rule.referee, rule.referrer, lines, day)
