"""When points expire, and whether a redemption fits the program's limits.

Pure, like the rest of the rules: the caller passes the instants and amounts in.

Expiry dates are calendar dates in the program's timezone: "12 months after earning"
means the same local wall time a year on, not 365 days of UTC. Month arithmetic
(`plus_months`) clamps to the month's end (Jan 31 + 1 month is Feb 28 or 29), as
PostgreSQL's `timestamp + interval` and dateutil's `relativedelta` do.

Wall-time arithmetic keeps the order of lots by local day, not by instant: a lot
earned later can expire earlier on the same local day. Month-end clamping sends
Jan 28 23:00 and Jan 29 01:00 both to Feb 28, at 23:00 and at 01:00; the repeated
hour of an autumn night runs the wall clock back; a time in a spring gap is read
past the times just after the gap. That is the price of agreeing with PostgreSQL to
the microsecond (a job comparing `expires_at` in SQL must see the same instant), so
whoever spends lots soonest-expiring first sorts by the expiry, not by earning order.
"""

from __future__ import annotations

import calendar
import decimal
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Literal, TypeVar
from zoneinfo import ZoneInfo

from app.rules.document import Expiry, Redeem, RulesDocument

# Exact or nothing: points (19 digits) times a point value (17) fit in 60 digits, and
# an order total that would not is refused loudly (Inexact) instead of being rounded.
_CONTEXT = decimal.Context(
    prec=60, traps=[decimal.Inexact, decimal.Rounded, decimal.InvalidOperation, decimal.Overflow]
)
_PERIOD_MONTHS = {"month": 1, "quarter": 3, "year": 12}


@dataclass(frozen=True, slots=True)
class RedeemRefusal:
    """Why a redemption (or a hold) is refused. `code` is the stable problem code;
    `field` names the request field at fault."""

    code: str
    message: str
    field: str


def lot_expiry(rules: RulesDocument, earned_at: datetime) -> datetime | None:
    """When points earned at `earned_at` expire (UTC), or None when they don't expire
    on their own (policy `none`, or `inactivity`, which is judged per member)."""
    expiry = rules.expiry
    if expiry.policy == "rolling":
        return _local_months_later(rules.timezone, earned_at, _months(expiry))
    if expiry.policy == "end_of_period":
        assert expiry.round_to is not None  # the document refuses end_of_period without it
        zone = ZoneInfo(rules.timezone)
        day = plus_months(_aware(earned_at).astimezone(zone).date(), _months(expiry))
        start = _next_period_start(day, expiry.round_to)
        # fold=0 makes the start the day's first instant: the earlier of a repeated
        # midnight, and the moment the clocks jump when midnight is skipped.
        return datetime(start.year, start.month, start.day, tzinfo=zone).astimezone(UTC)
    return None


def inactivity_deadline(rules: RulesDocument, last_activity: datetime) -> datetime | None:
    """When a member's points all expire if nothing happens after `last_activity`
    (UTC); None unless the policy is `inactivity`. Agrees with PostgreSQL's
    `((t AT TIME ZONE tz) + make_interval(months => n)) AT TIME ZONE tz`."""
    expiry = rules.expiry
    if expiry.policy != "inactivity":
        return None
    return _local_months_later(rules.timezone, last_activity, _months(expiry))


@dataclass(frozen=True, slots=True)
class InactivityCutoffs:
    """Where the `inactivity` policy draws its line at one instant, as bounds on a
    member's last activity: at or before `surely`, the member is inactive (their
    deadline has passed); after `possibly`, they are not. Between the two the exact
    deadline decides (month ends clamp it by up to three days, and a zone that moves
    its clock, by a whole day once, shifts it further); a job selects members by
    these bounds and tests each exactly."""

    surely: datetime
    possibly: datetime


# Wider than the largest gap seen between the bounds and the exact deadline: Apia's
# skipped day (2011) puts an active member 23.5 hours before the month step back,
# month ends an inactive one up to 3 days after it.
_SURELY_MARGIN = timedelta(days=2)
_POSSIBLY_MARGIN = timedelta(days=4)


def inactivity_cutoffs(rules: RulesDocument, as_of: datetime) -> InactivityCutoffs | None:
    """The bounds on the last activity of the members whose points all expire at
    `as_of` (UTC); None unless the policy is `inactivity`."""
    expiry = rules.expiry
    if expiry.policy != "inactivity":
        return None
    back = _local_months_later(rules.timezone, as_of, -_months(expiry))
    return InactivityCutoffs(back - _SURELY_MARGIN, back + _POSSIBLY_MARGIN)


def redeem_refusal(redeem: Redeem, points: int, order_total: Decimal | None) -> RedeemRefusal | None:
    """Why redeeming (or holding) `points` breaks the program's `redeem` limits, or None
    when it doesn't. `order_total` (non-negative) is the order the points pay towards;
    without it the share limit cannot apply. Checked in a fixed order so that a member
    who breaks several limits always hears about the same one first."""
    if redeem.min_points is not None and points < redeem.min_points:
        return RedeemRefusal(
            "points_below_minimum",
            f"this program redeems at least {redeem.min_points} points; asked for {points}",
            "body.points",
        )
    if redeem.increment is not None and points % redeem.increment != 0:
        return RedeemRefusal(
            "points_not_in_increments",
            f"this program redeems points in multiples of {redeem.increment}; asked for {points}",
            "body.points",
        )
    share, value = redeem.max_share_of_order, redeem.point_value
    if share is None or value is None or order_total is None:
        return None
    payable = _CONTEXT.multiply(order_total, share)
    if _CONTEXT.multiply(Decimal(points), value) <= payable:
        return None
    largest = int(_CONTEXT.divide_int(payable, value))
    if redeem.increment is not None:
        largest -= largest % redeem.increment
    percent = format(_CONTEXT.multiply(share, Decimal(100)).normalize(), "f")
    return RedeemRefusal(
        "points_exceed_order_share",
        f"points may pay at most {percent}% of this order of {order_total}, "
        f"that is at most {largest} points; asked for {points}",
        "body.points",
    )


Day = TypeVar("Day", date, datetime)


def plus_months(value: Day, months: int) -> Day:
    """The same day and wall time `months` calendar months on (or back), the day
    clamped to the end of a shorter month. Plain arithmetic: on the checkout's path
    (a lot's expiry, a tier window's start), relativedelta cost about 10 us a call."""
    index = value.year * 12 + value.month - 1 + months
    year, month = divmod(index, 12)
    return value.replace(
        year=year, month=month + 1, day=min(value.day, calendar.monthrange(year, month + 1)[1])
    )


def _aware(instant: datetime) -> datetime:
    # A naive datetime would be read in the server's local time by astimezone(): wrong
    # by hours and silently so.
    if instant.utcoffset() is None:
        raise ValueError("instants must be timezone-aware")
    return instant


def _months(expiry: Expiry) -> int:
    assert expiry.months is not None  # the document refuses a policy other than none without it
    return expiry.months


def _local_months_later(timezone: str, instant: datetime, months: int) -> datetime:
    zone = ZoneInfo(timezone)
    wall = plus_months(_aware(instant).astimezone(zone).replace(tzinfo=None), months)
    # A wall time the zone skips or repeats has two readings. PostgreSQL takes the
    # offset in force before a spring gap and the standard time of an autumn repeat:
    # both are the later instant of the two.
    return max(
        wall.replace(tzinfo=zone, fold=0).astimezone(UTC),
        wall.replace(tzinfo=zone, fold=1).astimezone(UTC),
    )


def _next_period_start(day: date, round_to: Literal["month", "quarter", "year"]) -> date:
    """The first day of the month, quarter or year after the one holding `day`."""
    span = _PERIOD_MONTHS[round_to]
    first_month = day.month - (day.month - 1) % span
    return plus_months(date(day.year, first_month, 1), span)
