"""Which tier a member's activity reaches, keeps or drops to, and what is missing.

Pure, like the rest of the rules: the service counts the member's activity in the
window (orders not fully refunded, spend and points net of refunds) and passes it in
with every instant.

Windows and terms are calendar months in the program's timezone, computed exactly
like expiry dates (`lifecycle._local_months_later`): a job that selects activity
between `window_start` and the evaluation instant in SQL sees the same window to the
microsecond. The document's list of tiers may come in any order; rank decides.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from app.rules.document import RulesDocument, Thresholds, Tier

# One helper for every calendar-month step in the rules, so that expiry, windows and
# terms agree with each other and with PostgreSQL on month ends and DST gaps.
from app.rules.lifecycle import _local_months_later

__all__ = [
    "Activity",
    "Progress",
    "Retention",
    "keep_price",
    "meets",
    "missing",
    "progress",
    "qualified",
    "retention",
    "term_end",
    "tier_by_code",
    "upgrade",
    "window_start",
]

_WINDOW_MONTHS = 12
# Wide enough that a threshold (at most 10^12 with 4 places) minus any spend the
# service can count is exact; only the final rounding to the threshold's places rounds.
_EXACT = decimal.Context(prec=60, traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow])


@dataclass(frozen=True, slots=True)
class Activity:
    """A member's qualifying activity in one window, already net of refunds."""

    orders: int
    spend: Decimal
    points: int
    # members this member referred whose first order falls in the window (read only
    # when a tier names `referrals`: 0 otherwise)
    referrals: int = 0


@dataclass(frozen=True, slots=True)
class Progress:
    """The tier a member is working towards, and what they still lack for it."""

    next_tier: Tier
    missing: dict[str, int | str]


@dataclass(frozen=True, slots=True)
class Retention:
    """The verdict at a term's end. `target` is where a member who does not keep the
    tier drops to (None: no tier); `missing` is what would have kept it."""

    keeps: bool
    target: Tier | None
    missing: dict[str, int | str]


def window_start(rules: RulesDocument, end: datetime) -> datetime | None:
    """The first instant (UTC) of the activity window [start, end] that qualification
    and retention look at; None for `lifetime`, which has no start."""
    window = rules.tier_policy.window
    if window == "lifetime":
        return None
    if window == "rolling_12_months":
        return _local_months_later(rules.timezone, end, -_WINDOW_MONTHS)
    zone = ZoneInfo(rules.timezone)
    year = _aware(end).astimezone(zone).year
    # fold=0 makes it the year's first instant even if a zone ever skips or repeats
    # that midnight (as lifecycle does for period starts).
    return datetime(year, 1, 1, tzinfo=zone).astimezone(UTC)


def term_end(rules: RulesDocument, start: datetime) -> datetime:
    """When a term that starts at `start` is judged (UTC): the same local wall time
    `term_months` on, clamped to the month's end like an expiry date."""
    return _local_months_later(rules.timezone, start, rules.tier_policy.term_months)


def meets(thresholds: Thresholds, activity: Activity) -> bool:
    """Thresholds are all-of: one unmet threshold is enough to miss."""
    return not missing(thresholds, activity)


def missing(thresholds: Thresholds, activity: Activity) -> dict[str, int | str]:
    """What the member still lacks, per unmet threshold, ready for "spend 180.00 more".

    Spend is a decimal string in the threshold's own places, rounded up: a shortfall
    of 0.005 against "200.00" shows as "0.01", so that doing what it says is always
    enough."""
    result: dict[str, int | str] = {}
    if thresholds.orders is not None and activity.orders < thresholds.orders:
        result["orders"] = thresholds.orders - activity.orders
    if thresholds.spend is not None and activity.spend < thresholds.spend:
        result["spend"] = _spend_shortfall(thresholds.spend, activity.spend)
    if thresholds.points is not None and activity.points < thresholds.points:
        result["points"] = thresholds.points - activity.points
    if thresholds.referrals is not None and activity.referrals < thresholds.referrals:
        result["referrals"] = thresholds.referrals - activity.referrals
    return result


def tier_by_code(rules: RulesDocument, code: str) -> Tier | None:
    """The tier a stored code names; None when a newer rules version dropped it."""
    return next((tier for tier in rules.tiers if tier.code == code), None)


def qualified(rules: RulesDocument, activity: Activity) -> Tier | None:
    """The best tier the activity reaches on its own, regardless of what the member holds."""
    return next((tier for tier in reversed(_by_rank(rules.tiers)) if meets(tier.qualify, activity)), None)


def progress(rules: RulesDocument, current: str | None, activity: Activity) -> Progress | None:
    """The next rung above `current` (one at a time, even when the activity reaches
    further: the app shows the nearest goal), or None at the top. A code these rules
    no longer have starts from the bottom."""
    rank = _rank(rules, current)
    above = [tier for tier in _by_rank(rules.tiers) if tier.rank > rank]
    if not above:
        return None
    return Progress(next_tier=above[0], missing=missing(above[0].qualify, activity))


def upgrade(rules: RulesDocument, current: str | None, activity: Activity) -> Tier | None:
    """The tier to move up to now, or None. Upgrades happen as soon as a threshold is
    met, so a member may jump straight past the tiers in between."""
    reached = qualified(rules, activity)
    if reached is None or reached.rank <= _rank(rules, current):
        return None
    return reached


def retention(rules: RulesDocument, current: str, activity: Activity) -> Retention:
    """The verdict at the end of `current`'s term, on the activity of the window that
    ends at the term's end.

    Activity that qualifies for `current` (or better) always keeps it, even when the
    tier's `retain` is set stricter than its `qualify`: dropping a member who would be
    upgraded straight back is noise. A drop never lands below what the activity
    qualifies for, for the same reason."""
    tier = tier_by_code(rules, current)
    reached = qualified(rules, activity)
    if tier is None:
        # The rules changed under the member: there is nothing left to keep.
        return Retention(keeps=False, target=reached, missing={})
    thresholds = tier.retain if tier.retain is not None else tier.qualify
    lacking = missing(thresholds, activity)
    if not lacking or (reached is not None and reached.rank >= tier.rank):
        return Retention(keeps=True, target=None, missing={})
    if rules.tier_policy.downgrade == "to_qualified":
        return Retention(keeps=False, target=reached, missing=lacking)
    # Here `reached` ranks below `current`, so the tier just below is never below it.
    below = [other for other in _by_rank(rules.tiers) if other.rank < tier.rank]
    return Retention(keeps=False, target=below[-1] if below else None, missing=lacking)


def keep_price(rules: RulesDocument, current: str) -> int | None:
    """Points that renew `current`'s term, or None when the program sells no renewal of it."""
    return rules.tier_policy.keep_with_points.get(current)


def _by_rank(tiers: Iterable[Tier]) -> list[Tier]:
    return sorted(tiers, key=lambda tier: tier.rank)


def _rank(rules: RulesDocument, code: str | None) -> int:
    # Ranks start at 1, so 0 is "no tier": below every tier these rules have.
    tier = None if code is None else tier_by_code(rules, code)
    return 0 if tier is None else tier.rank


def _spend_shortfall(threshold: Decimal, spend: Decimal) -> str:
    exponent = threshold.as_tuple().exponent
    assert isinstance(exponent, int)  # the document refuses NaN and infinities
    step = Decimal(1).scaleb(min(exponent, 0))
    shortfall = _EXACT.subtract(threshold, spend)
    return f"{shortfall.quantize(step, rounding=decimal.ROUND_CEILING):f}"


def _aware(instant: datetime) -> datetime:
    # A naive datetime would be read in the server's local time by astimezone(): wrong
    # by hours and silently so.
    if instant.utcoffset() is None:
        raise ValueError("instants must be timezone-aware")
    return instant
