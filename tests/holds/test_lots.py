"""Held points leave their lots and come back to them with their expiry dates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.holds.helpers import capture, funded_member, new_hold, release, release_holds_job
from tests.support import Api, MovableClock

ROLLING_12_MONTHS: dict[str, Any] = {
    "earn": {"base": {"points": 1, "per": "1", "rounding": "floor"}},
    "expiry": {"policy": "rolling", "months": 12},
}


async def expiring(api: Api, member: str) -> list[tuple[int, datetime]]:
    response = await api.get(f"/v1/members/{member}")
    assert response.status_code == 200, response.text
    return [
        (item["points"], datetime.fromisoformat(item["expires_at"])) for item in response.json()["expiring"]
    ]


async def member_with_two_lots(api: Api, clock: MovableClock) -> tuple[str, datetime, datetime]:
    """A member with 100 points earned now and 50 earned ten days later; both lots' expiries."""
    await api.use_rules(ROLLING_12_MONTHS)
    member = await funded_member(api, 100)
    clock.offset = timedelta(days=10)
    assert (await api.award(member, 50)).status_code == 201
    lots = await expiring(api, member)
    assert [points for points, _ in lots] == [100, 50]
    (_, first), (_, second) = lots
    assert first < second
    assert datetime.now(UTC) + timedelta(days=360) < first < datetime.now(UTC) + timedelta(days=370)
    return member, first, second


class TestLotsFollowHolds:
    async def test_released_points_keep_their_expiry_dates(self, api: Api, clock: MovableClock) -> None:
        member, first, second = await member_with_two_lots(api, clock)
        hold = await new_hold(api, member, 120)
        # Held points do not expire while held: the oldest-expiring were taken.
        assert await expiring(api, member) == [(30, second)]
        assert (await release(api, hold["hold_id"])).status_code == 201
        assert await expiring(api, member) == [(100, first), (50, second)]

    async def test_a_partial_capture_spends_the_oldest_expiring_points(
        self, api: Api, clock: MovableClock
    ) -> None:
        member, first, second = await member_with_two_lots(api, clock)
        hold = await new_hold(api, member, 120)
        assert (await capture(api, hold["hold_id"], 20)).status_code == 201
        assert await expiring(api, member) == [(80, first), (50, second)]

    async def test_an_expired_hold_gives_points_back_to_their_lots(
        self, api: Api, clock: MovableClock
    ) -> None:
        member, first, second = await member_with_two_lots(api, clock)
        hold = await new_hold(api, member, 120)
        await release_holds_job(api, datetime.fromisoformat(hold["expires_at"]))
        assert await expiring(api, member) == [(100, first), (50, second)]
        assert await api.balances(member) == {"available": 150, "pending": 0, "held": 0, "debt": 0}
