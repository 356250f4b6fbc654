"""The what-if replay of limits (app/rules/limits.py), fed one movement at a time."""

from datetime import date

import pytest

from app.rules.document import Limits
from app.rules.limits import LimitsReplayer, Movement

MONDAY, TUESDAY = date(2026, 11, 2), date(2026, 11, 3)


def replay(limits: Limits, movements: list[Movement]) -> LimitsReplayer:
    replayer = LimitsReplayer(limits)
    for movement in movements:
        replayer.feed(movement)
    return replayer


def test_daily_limits_count_per_subject_and_start_again_each_day() -> None:
    limits = Limits(redeem_points_per_member_per_day=100, award_points_per_key_per_day=50)
    out = replay(
        limits,
        [
            Movement("redemption", MONDAY, 60, "member:1"),
            Movement("hold", MONDAY, 50, "member:1"),  # 110 > 100: refused, counts for nothing
            Movement("redemption", MONDAY, 40, "member:1"),  # exactly 100
            Movement("redemption", MONDAY, 100, "member:2"),  # another member's own 100
            Movement("award", MONDAY, 50, "key:a"),
            Movement("award", MONDAY, 1, "key:a"),  # over the key's 50
            Movement("redemption", TUESDAY, 100, "member:1"),  # a new day
            Movement("award", TUESDAY, 50, "key:a"),
        ],
    ).out
    assert (out.redemptions, out.redemptions_refused, out.redeem_points_refused) == (5, 1, 50)
    assert (out.awards, out.awards_refused, out.award_points_refused) == (3, 1, 1)


def test_a_transfer_counts_its_number_and_points_together_or_not_at_all() -> None:
    limits = Limits(transfers_per_member_per_day=2, transfer_points_per_member_per_day=100)
    out = replay(
        limits,
        [
            Movement("transfer", MONDAY, 90, "member:1"),
            Movement("transfer", MONDAY, 20, "member:1"),  # points over: the count is not taken either
            Movement("transfer", MONDAY, 10, "member:1"),  # second transfer, 100 points: passes
            Movement("transfer", MONDAY, 0, "member:1"),  # a third: over the count
        ],
    ).out
    assert (out.transfers, out.transfers_refused, out.transfer_points_refused) == (4, 2, 20)


def test_award_maximum_and_approval_threshold() -> None:
    out = replay(
        Limits(award_max_points=1000, award_approval_above=500),
        [
            Movement("award", MONDAY, 1001, "key:a"),
            Movement("award", MONDAY, 600, "key:a"),
            Movement("award", MONDAY, 500, "key:a"),
        ],
    ).out
    refused = (out.awards_refused, out.award_points_refused)
    assert (out.awards, *refused, out.awards_for_approval) == (3, 1, 1001, 1)


def test_movements_out_of_recorded_order_are_a_bug() -> None:
    replayer = replay(Limits(), [Movement("award", TUESDAY, 1, "key:a")])
    with pytest.raises(ValueError, match="out of recorded order"):
        replayer.feed(Movement("award", MONDAY, 1, "key:a"))
