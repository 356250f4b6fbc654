"""What a non-order activity (sign-up, review, check-in, referral, custom types) earns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from app.rules.document import RulesDocument
from app.rules.earning import ExplanationLine, RulesError, local_time


@dataclass(frozen=True, slots=True)
class EventFacts:
    type: str
    occurred_at: datetime  # timezone-aware
    earned_today: int  # events of this type that earned for the member on the same local day
    has_referrer: bool = False  # referral: the member was referred by another member
    referrals_before: int = 0  # referral: earlier referral events of the member


@dataclass(frozen=True, slots=True)
class EventEarning:
    points: int  # for the member
    referrer_points: int  # referral: for the member who referred them
    lines: tuple[ExplanationLine, ...]
    local_day: date


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
        return EventEarning(rule.points, 0, (ExplanationLine(rule_name, rule.points, "fixed points"),), day)
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
