"""Expiry of lots, the inactivity deadline, and the limits on redemptions."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.rules import RulesDocument
from app.rules.document import Redeem
from app.rules.lifecycle import (
    RedeemRefusal,
    inactivity_cutoffs,
    inactivity_deadline,
    lot_expiry,
    plus_months,
    redeem_refusal,
)
from tests.rules.strategies import TIMEZONES, decimals, document, instants

EXAMPLES = settings(max_examples=200, deadline=None)
DST_TIMEZONES = ("Europe/Berlin", "America/New_York")


def at(text: str) -> datetime:
    """An instant from RFC 3339 text, in UTC."""
    return datetime.fromisoformat(text).astimezone(UTC)


def expiring(
    policy: str, months: int | None = None, *, round_to: str | None = None, timezone: str = "UTC"
) -> RulesDocument:
    expiry: dict[str, Any] = {"policy": policy}
    if months is not None:
        expiry["months"] = months
    if round_to is not None:
        expiry["round_to"] = round_to
    return document(timezone=timezone, expiry=expiry)


def redeem(**limits: Any) -> Redeem:
    return Redeem.model_validate(limits)


# --- expiry -----------------------------------------------------------------------------------------


class TestNoExpiry:
    def test_policy_none(self) -> None:
        assert lot_expiry(document(), at("2026-02-10T03:00Z")) is None

    def test_inactivity_is_not_per_lot(self) -> None:
        assert lot_expiry(expiring("inactivity", 12), at("2026-02-10T03:00Z")) is None

    @pytest.mark.parametrize(
        "rules",
        [document(), expiring("rolling", 12), expiring("end_of_period", 12, round_to="year")],
        ids=["none", "rolling", "end_of_period"],
    )
    def test_only_inactivity_has_a_deadline(self, rules: RulesDocument) -> None:
        assert inactivity_deadline(rules, at("2026-02-10T03:00Z")) is None


class TestRolling:
    def test_months_later_at_the_same_local_time(self) -> None:
        rules = expiring("rolling", 12, timezone="Asia/Shanghai")
        assert lot_expiry(rules, at("2026-02-10T03:00Z")) == at("2027-02-10T03:00Z")

    def test_the_month_is_counted_on_the_local_date(self) -> None:
        # 20:00 UTC on Jan 30 is 04:00 on Jan 31 in Shanghai: a month later is Feb 28 there,
        # a day earlier than counting in UTC would give.
        rules = expiring("rolling", 1, timezone="Asia/Shanghai")
        assert lot_expiry(rules, at("2026-01-30T20:00Z")) == at("2026-02-28T04:00+08:00")

    @pytest.mark.parametrize(
        ("earned_at", "months", "expires_at"),
        [
            ("2026-01-31T10:00Z", 1, "2026-02-28T10:00Z"),
            ("2028-01-31T10:00Z", 1, "2028-02-29T10:00Z"),
            ("2028-02-29T10:00Z", 12, "2029-02-28T10:00Z"),
            ("2028-02-29T10:00Z", 48, "2032-02-29T10:00Z"),
            ("2026-03-31T10:00Z", 1, "2026-04-30T10:00Z"),
            ("2026-08-31T10:00Z", 6, "2027-02-28T10:00Z"),
            ("2026-12-31T23:59:59.999999Z", 2, "2027-02-28T23:59:59.999999Z"),
        ],
    )
    def test_month_ends_clamp(self, earned_at: str, months: int, expires_at: str) -> None:
        assert lot_expiry(expiring("rolling", months), at(earned_at)) == at(expires_at)

    def test_wall_time_survives_a_change_to_summer_time(self) -> None:
        # 12:00 in Berlin in February (UTC+1) expires at 12:00 in August (UTC+2).
        rules = expiring("rolling", 6, timezone="Europe/Berlin")
        assert lot_expiry(rules, at("2026-02-10T11:00Z")) == at("2026-08-10T10:00Z")

    def test_a_naive_instant_is_refused(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            lot_expiry(expiring("rolling", 1), datetime(2026, 2, 10, 3, 0))


class TestEndOfPeriod:
    # RULES.md's example: Shanghai, earned 2026-02-10 11:00 local, 12 months -> 2027-02-10.
    EARNED_AT = at("2026-02-10T03:00Z")

    @pytest.mark.parametrize(
        ("round_to", "expires_at"),
        [
            ("year", "2027-12-31T16:00Z"),
            ("quarter", "2027-03-31T16:00Z"),
            ("month", "2027-02-28T16:00Z"),
        ],
    )
    def test_rounds_up_to_the_next_period_start(self, round_to: str, expires_at: str) -> None:
        rules = expiring("end_of_period", 12, round_to=round_to, timezone="Asia/Shanghai")
        assert lot_expiry(rules, self.EARNED_AT) == at(expires_at)

    @pytest.mark.parametrize(
        ("earned_on", "months", "round_to", "expires_on"),
        [
            ("2026-10-01", 3, "quarter", "2027-04-01"),  # Jan 1 is in the first quarter
            ("2026-12-31", 3, "quarter", "2027-04-01"),  # Mar 31 still is
            ("2027-01-01", 3, "quarter", "2027-07-01"),  # Apr 1 starts the second
            ("2027-06-30", 3, "quarter", "2027-10-01"),
            ("2027-07-01", 3, "quarter", "2028-01-01"),
            ("2027-09-30", 3, "quarter", "2028-01-01"),
            ("2026-12-31", 1, "month", "2027-02-01"),
            ("2027-11-30", 3, "month", "2028-03-01"),  # lands on Feb 29
            ("2028-02-29", 12, "month", "2029-03-01"),  # Feb 28 in a common year
            ("2028-02-29", 12, "year", "2030-01-01"),
            ("2027-01-01", 11, "year", "2028-01-01"),
            ("2027-01-31", 1, "quarter", "2027-04-01"),  # clamped to Feb 28 first
        ],
    )
    def test_periods(self, earned_on: str, months: int, round_to: str, expires_on: str) -> None:
        rules = expiring("end_of_period", months, round_to=round_to)
        assert lot_expiry(rules, at(f"{earned_on}T12:00Z")) == at(f"{expires_on}T00:00Z")

    def test_the_local_date_counts(self) -> None:
        # 17:00 UTC on Mar 31 is 01:00 on Apr 1 in Shanghai: two months on is Jun 1, not May 31.
        rules = expiring("end_of_period", 2, round_to="month", timezone="Asia/Shanghai")
        assert lot_expiry(rules, at("2026-03-31T17:00Z")) == at("2026-07-01T00:00+08:00")

    @pytest.mark.parametrize(
        ("earned_at", "expires_at"),
        [
            ("2026-02-10T11:00Z", "2026-04-01T00:00+02:00"),  # midnight in summer time
            ("2026-10-10T11:00Z", "2027-01-01T00:00+01:00"),  # midnight in winter time
        ],
    )
    def test_local_midnight_across_summer_time(self, earned_at: str, expires_at: str) -> None:
        rules = expiring("end_of_period", 1, round_to="quarter", timezone="Europe/Berlin")
        assert lot_expiry(rules, at(earned_at)) == at(expires_at)


class TestInactivity:
    # Each row was checked against PostgreSQL 17:
    # ((t AT TIME ZONE tz) + make_interval(months => n)) AT TIME ZONE tz
    @pytest.mark.parametrize(
        ("last_activity", "timezone", "months", "deadline"),
        [
            ("2026-01-31T10:00Z", "UTC", 1, "2026-02-28T10:00Z"),
            ("2028-01-31T10:00Z", "UTC", 1, "2028-02-29T10:00Z"),
            ("2028-02-29T10:00Z", "UTC", 12, "2029-02-28T10:00Z"),
            ("2027-02-28T00:30Z", "Europe/Berlin", 1, "2027-03-28T00:30Z"),
            # 02:30 on Mar 28 2027 does not exist in Berlin: read with the offset before the gap
            ("2027-02-28T01:30Z", "Europe/Berlin", 1, "2027-03-28T01:30Z"),
            # 02:30 on Oct 25 2026 happens twice in Berlin: the second time (standard time)
            ("2026-09-25T00:30Z", "Europe/Berlin", 1, "2026-10-25T01:30Z"),
            ("2026-10-01T05:30Z", "America/New_York", 1, "2026-11-01T06:30Z"),
            # both of these are 02:xx in the repeated hour; the wall time decides, not the instant
            ("2026-10-25T00:50Z", "Europe/Berlin", 1, "2026-11-25T01:50Z"),
            ("2026-10-25T01:10Z", "Europe/Berlin", 1, "2026-11-25T01:10Z"),
        ],
    )
    def test_agrees_with_postgresql(
        self, last_activity: str, timezone: str, months: int, deadline: str
    ) -> None:
        rules = expiring("inactivity", months, timezone=timezone)
        assert inactivity_deadline(rules, at(last_activity)) == at(deadline)

    def test_a_naive_instant_is_refused(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            inactivity_deadline(expiring("inactivity", 1), datetime(2026, 2, 10, 3, 0))


# --- redemption limits ------------------------------------------------------------------------------

PROGRAM = redeem(min_points=100, increment=10, point_value="0.01", max_share_of_order="0.5")


class TestRedeemRefusal:
    def test_no_limits(self) -> None:
        assert redeem_refusal(Redeem(), 1, Decimal("0.00")) is None
        assert redeem_refusal(Redeem(), 12345, None) is None

    def test_below_the_minimum(self) -> None:
        assert redeem_refusal(PROGRAM, 50, None) == RedeemRefusal(
            "points_below_minimum", "this program redeems at least 100 points; asked for 50", "body.points"
        )

    def test_not_in_increments(self) -> None:
        assert redeem_refusal(PROGRAM, 105, None) == RedeemRefusal(
            "points_not_in_increments",
            "this program redeems points in multiples of 10; asked for 105",
            "body.points",
        )

    def test_more_than_the_share_of_the_order(self) -> None:
        # half of 1.99 is 0.995: 99 points, and 90 in steps of 10
        refusal = redeem_refusal(PROGRAM, 100, Decimal("1.99"))
        assert refusal == RedeemRefusal(
            "points_exceed_order_share",
            "points may pay at most 50% of this order of 1.99, that is at most 90 points; asked for 100",
            "body.points",
        )

    def test_the_largest_share_without_increments(self) -> None:
        limits = redeem(point_value="0.03", max_share_of_order="0.5")
        refusal = redeem_refusal(limits, 17, Decimal("1.00"))
        assert refusal is not None
        assert refusal.code == "points_exceed_order_share"
        assert "at most 16 points; asked for 17" in refusal.message
        assert redeem_refusal(limits, 16, Decimal("1.00")) is None

    @pytest.mark.parametrize(
        ("points", "order_total", "code"),
        [
            (55, "0.10", "points_below_minimum"),  # breaks all three
            (95, None, "points_below_minimum"),
            (105, "0.10", "points_not_in_increments"),  # breaks the share too
        ],
    )
    def test_the_first_broken_limit_is_named(self, points: int, order_total: str | None, code: str) -> None:
        total = None if order_total is None else Decimal(order_total)
        refusal = redeem_refusal(PROGRAM, points, total)
        assert refusal is not None
        assert refusal.code == code

    def test_exactly_at_every_limit(self) -> None:
        # 100 points is the minimum, a multiple of 10, and 1.00: exactly half of 2.00
        assert redeem_refusal(PROGRAM, 100, Decimal("2.00")) is None
        assert redeem_refusal(PROGRAM, 110, Decimal("2.00")) is not None

    def test_exact_decimal_arithmetic(self) -> None:
        # 3 x 0.1 is 0.30000000000000004 in binary floating point, more than half of 0.6.
        limits = redeem(point_value="0.1", max_share_of_order="0.5")
        assert redeem_refusal(limits, 3, Decimal("0.6")) is None
        assert redeem_refusal(limits, 4, Decimal("0.6")) is not None

    def test_the_share_needs_an_order_total(self) -> None:
        assert redeem_refusal(PROGRAM, 10**9, None) is None

    def test_a_zero_order_takes_no_points(self) -> None:
        refusal = redeem_refusal(PROGRAM, 100, Decimal("0.00"))
        assert refusal is not None
        assert "at most 0 points" in refusal.message


class TestRedeemDocument:
    def test_a_share_needs_a_point_value(self) -> None:
        body = {"earn": {"base": {"points": 1, "per": "1.00"}}, "redeem": {"max_share_of_order": "0.5"}}
        with pytest.raises(ValidationError) as refused:
            RulesDocument.model_validate(body)
        [error] = refused.value.errors()
        assert error["loc"] == ("redeem",)
        assert "max_share_of_order needs point_value" in error["msg"]

    def test_a_point_value_alone_is_fine(self) -> None:
        assert redeem(point_value="0.01").max_share_of_order is None


# --- properties -------------------------------------------------------------------------------------


def offset_changes(timezone: str, first_year: int, last_year: int) -> list[datetime]:
    """Instants where the zone's UTC offset changes, to the hour (enough for these zones)."""
    zone = ZoneInfo(timezone)
    hour = datetime(first_year, 1, 1, tzinfo=UTC)
    changes = []
    while hour.year <= last_year:
        following = hour + timedelta(hours=1)
        if hour.astimezone(zone).utcoffset() != following.astimezone(zone).utcoffset():
            changes.append(following)
        hour = following
    return changes


# Uniform instants almost never land in the hour a DST change repeats or skips.
_CHANGES = [change for zone in DST_TIMEZONES for change in offset_changes(zone, 2025, 2028)]
_near_changes = st.builds(
    lambda change, shift: change + shift,
    st.sampled_from(_CHANGES),
    st.timedeltas(min_value=timedelta(hours=-3), max_value=timedelta(hours=3)),
)
_instants = st.one_of(instants, _near_changes)
_all_timezones = st.sampled_from((*TIMEZONES, *DST_TIMEZONES))
_months = st.one_of(st.integers(1, 36), st.integers(1, 1200))


@st.composite
def expiring_documents(
    draw: st.DrawFn, *, policies: tuple[str, ...] = ("rolling", "end_of_period")
) -> RulesDocument:
    policy = draw(st.sampled_from(policies))
    round_to = draw(st.sampled_from(["month", "quarter", "year"])) if policy == "end_of_period" else None
    return expiring(policy, draw(_months), round_to=round_to, timezone=draw(_all_timezones))


class TestExpiryProperties:
    @EXAMPLES
    @given(rules=expiring_documents(), earned_at=_instants)
    def test_strictly_after_earning(self, rules: RulesDocument, earned_at: datetime) -> None:
        expires_at = lot_expiry(rules, earned_at)
        assert expires_at is not None
        assert expires_at > earned_at
        assert expires_at.utcoffset() == timedelta(0)

    @EXAMPLES
    @given(
        rules=expiring_documents(),
        earlier=_instants,
        gap=st.one_of(
            st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=3)),
            st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=800)),
        ),
    )
    @example(
        rules=expiring("end_of_period", 1, round_to="month", timezone="Europe/Berlin"),
        earlier=at("2026-10-25T00:50Z"),
        gap=timedelta(minutes=20),
    )
    def test_a_later_lot_never_expires_earlier(
        self, rules: RulesDocument, earlier: datetime, gap: timedelta
    ) -> None:
        first, second = lot_expiry(rules, earlier), lot_expiry(rules, earlier + gap)
        assert first is not None
        assert second is not None
        zone = ZoneInfo(rules.timezone)
        first_day, second_day = first.astimezone(zone).date(), second.astimezone(zone).date()
        assert second_day >= first_day
        if rules.expiry.policy == "end_of_period":
            assert second >= first
        else:
            # Wall-time arithmetic, as PostgreSQL does it, may reorder lots within one
            # local day (month-end clamping, DST): see the module docstring.
            assert second >= first or second_day == first_day

    @pytest.mark.parametrize(
        ("timezone", "earlier", "later", "ahead"),
        [
            # Jan 28 23:00 and Jan 29 01:00 both go to Feb 28, keeping their time of day.
            ("UTC", "2026-01-28T23:00Z", "2026-01-29T01:00Z", timedelta(hours=22)),
            # 02:50 CEST, then 02:10 CET twenty minutes later: a month on, 02:50 and 02:10 CET.
            ("Europe/Berlin", "2026-10-25T00:50Z", "2026-10-25T01:10Z", timedelta(minutes=40)),
            # 02:30 on Mar 28 2027 does not exist: read as 03:30 CEST, after 03:10 CEST.
            ("Europe/Berlin", "2027-02-28T01:30Z", "2027-02-28T02:10Z", timedelta(minutes=20)),
        ],
    )
    def test_rolling_may_reorder_lots_within_a_local_day(
        self, timezone: str, earlier: str, later: str, ahead: timedelta
    ) -> None:
        rules = expiring("rolling", 1, timezone=timezone)
        first, second = lot_expiry(rules, at(earlier)), lot_expiry(rules, at(later))
        assert first is not None
        assert second is not None
        assert first - second == ahead

    @EXAMPLES
    @given(rules=expiring_documents(policies=("end_of_period",)), earned_at=_instants)
    def test_end_of_period_is_a_period_start(self, rules: RulesDocument, earned_at: datetime) -> None:
        expires_at = lot_expiry(rules, earned_at)
        assert expires_at is not None
        zone = ZoneInfo(rules.timezone)
        local = expires_at.astimezone(zone)
        assert (local.hour, local.minute, local.second, local.microsecond, local.day) == (0, 0, 0, 0, 1)
        assert rules.expiry.round_to is not None
        span = {"month": 1, "quarter": 3, "year": 12}[rules.expiry.round_to]
        assert (local.month - 1) % span == 0
        # rounded up: the period that ends here holds the local date `months` on
        months = rules.expiry.months
        assert months is not None
        day = earned_at.astimezone(zone).date() + relativedelta(months=months)
        assert local.date() - relativedelta(months=span) <= day < local.date()

    @EXAMPLES
    @given(rules=expiring_documents(policies=("rolling",)), last_activity=_instants)
    def test_inactivity_counts_months_like_rolling(
        self, rules: RulesDocument, last_activity: datetime
    ) -> None:
        body = rules.model_dump(mode="json")
        body["expiry"]["policy"] = "inactivity"
        inactivity = RulesDocument.model_validate(body)
        assert inactivity_deadline(inactivity, last_activity) == lot_expiry(rules, last_activity)
        assert lot_expiry(inactivity, last_activity) is None


# Zones whose clocks jumped a whole day (Apia, end of 2011) or moved in ramadan and
# back (Casablanca), beside the DST ones: the cutoffs' margins must cover them.
_JUMPY = ("Pacific/Apia", "Africa/Casablanca", "Australia/Lord_Howe")
_jumpy_changes = st.builds(
    lambda change, shift: change + shift,
    st.sampled_from([change for zone in _JUMPY for change in offset_changes(zone, 2008, 2013)]),
    st.timedeltas(min_value=timedelta(days=-3), max_value=timedelta(days=3)),
)


class TestInactivityCutoffs:
    """The expire job reads only members whose last activity lies below
    `possibly`, and counts on every one below `surely` being inactive."""

    def test_none_unless_the_policy_is_inactivity(self) -> None:
        assert inactivity_cutoffs(expiring("rolling", 12), at("2026-02-10T03:00Z")) is None

    @settings(max_examples=1000, deadline=None)
    @given(
        timezone=st.sampled_from((*TIMEZONES, *DST_TIMEZONES, *_JUMPY)),
        months=_months,
        as_of=st.one_of(_instants, _jumpy_changes),
        near=st.timedeltas(min_value=timedelta(days=-9), max_value=timedelta(days=9)),
    )
    @example(  # Apia skipped 2011-12-30: active 23.5 hours before the month step back
        timezone="Pacific/Apia", months=2, as_of=at("2011-12-30T21:01Z"), near=timedelta(minutes=30)
    )
    @example(  # month ends: inactive almost 3 days after it
        timezone="Africa/Casablanca", months=6, as_of=at("2009-02-28T23:09Z"), near=timedelta(days=2)
    )
    def test_surely_inactive_below_and_never_inactive_above(
        self, timezone: str, months: int, as_of: datetime, near: timedelta
    ) -> None:
        rules = expiring("inactivity", months, timezone=timezone)
        cutoffs = inactivity_cutoffs(rules, as_of)
        assert cutoffs is not None
        last_activity = as_of - relativedelta(months=months) + near
        deadline = inactivity_deadline(rules, last_activity)
        assert deadline is not None
        if last_activity <= cutoffs.surely:
            assert deadline <= as_of
        if deadline <= as_of:
            assert last_activity <= cutoffs.possibly


_point_values = decimals(10**6, places=(2, 4), min_units=1)
_shares = decimals(10**4, places=(1, 2, 4), min_units=1).filter(lambda share: share <= 1)
_totals = st.one_of(st.none(), decimals(10**8, places=(2, 2, 4)))


@st.composite
def redemptions(draw: st.DrawFn) -> tuple[Redeem, int, Decimal | None]:
    """A program's limits, an order total, and a point count often right at a limit."""
    limits: dict[str, Any] = {}
    if draw(st.booleans()):
        limits["min_points"] = draw(st.integers(1, 10**4))
    if draw(st.booleans()):
        limits["increment"] = draw(st.sampled_from([1, 5, 10, 100, 7]))
    if draw(st.booleans()):
        limits["point_value"] = str(draw(_point_values))
        if draw(st.booleans()):
            limits["max_share_of_order"] = str(draw(_shares))
    program = Redeem.model_validate(limits)
    total = draw(_totals)
    near = [limits.get("min_points", 1), limits.get("increment", 1)]
    if program.point_value is not None and program.max_share_of_order is not None and total is not None:
        near.append(
            math.floor(Fraction(total) * Fraction(program.max_share_of_order) / Fraction(program.point_value))
        )
    centre = draw(st.sampled_from(near))
    points = draw(st.one_of(st.integers(1, 10**7), st.integers(max(1, centre - 2), centre + 2)))
    return program, points, total


class TestRedeemProperties:
    @EXAMPLES
    @given(case=redemptions())
    def test_refused_exactly_when_a_limit_is_broken(self, case: tuple[Redeem, int, Decimal | None]) -> None:
        limits, points, total = case
        broken = []
        if limits.min_points is not None and points < limits.min_points:
            broken.append("points_below_minimum")
        if limits.increment is not None and points % limits.increment:
            broken.append("points_not_in_increments")
        share, value = limits.max_share_of_order, limits.point_value
        if share is not None and value is not None and total is not None:
            if points * Fraction(value) > Fraction(total) * Fraction(share):
                broken.append("points_exceed_order_share")
        refusal = redeem_refusal(limits, points, total)
        if not broken:
            assert refusal is None
        else:
            assert refusal is not None
            assert refusal.code == broken[0]
            assert refusal.field == "body.points"
            assert f"asked for {points}" in refusal.message

    @EXAMPLES
    @given(case=redemptions())
    def test_the_named_largest_share_is_allowed(self, case: tuple[Redeem, int, Decimal | None]) -> None:
        limits, points, total = case
        refusal = redeem_refusal(limits, points, total)
        if refusal is None or refusal.code != "points_exceed_order_share":
            return
        largest = int(refusal.message.split("at most ")[-1].split(" points")[0])
        assert limits.point_value is not None
        assert limits.max_share_of_order is not None
        assert total is not None
        step = limits.increment or 1
        assert largest % step == 0
        payable = Fraction(total) * Fraction(limits.max_share_of_order)
        assert largest * Fraction(limits.point_value) <= payable
        assert (largest + step) * Fraction(limits.point_value) > payable
        assert (
            redeem_refusal(Redeem.model_validate({**limits.model_dump(), "min_points": None}), largest, total)
            is None
        )


class TestPlusMonths:
    """plus_months() is relativedelta(months=...) without its cost: same clamping."""

    @given(
        st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 12, 31)),
        st.integers(min_value=-600, max_value=600),
    )
    def test_agrees_with_relativedelta(self, value: datetime, months: int) -> None:
        assert plus_months(value, months) == value + relativedelta(months=months)
        assert plus_months(value.date(), months) == value.date() + relativedelta(months=months)

    def test_clamps_to_the_end_of_a_shorter_month(self) -> None:
        assert plus_months(date(2027, 1, 31), 1) == date(2027, 2, 28)
        assert plus_months(date(2028, 1, 31), 1) == date(2028, 2, 29)
        assert plus_months(date(2027, 3, 31), -1) == date(2027, 2, 28)
