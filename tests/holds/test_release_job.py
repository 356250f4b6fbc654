"""The release-holds job over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from tests.holds.helpers import (
    capture,
    code,
    funded_member,
    get_hold,
    instant,
    new_hold,
    release,
    release_holds_job,
    statement,
)
from tests.support import Api, MovableClock


class TestReleaseHoldsJob:
    async def test_expired_holds_give_their_points_back_once(self, api: Api) -> None:
        member = await funded_member(api, 100)
        now = datetime.now(UTC)
        soon = await new_hold(api, member, 30, expires_at=(now + timedelta(minutes=5)).isoformat())
        later = await new_hold(api, member, 20, expires_at=(now + timedelta(hours=2)).isoformat())
        as_of = now + timedelta(minutes=10)

        summary = await release_holds_job(api, as_of)
        assert summary["job"] == "release-holds"
        assert instant(summary["as_of"]) == as_of
        assert summary["counts"] == {"holds": 1, "points": 30}
        expired = await get_hold(api, soon["hold_id"])
        assert (expired["status"], expired["captured_points"]) == ("expired", 0)
        assert expired["closed_at"] is not None
        assert expired["entry_id"] != soon["entry_id"]
        assert (await get_hold(api, later["hold_id"]))["status"] == "active"
        assert await api.balances(member) == {"available": 80, "pending": 0, "held": 20, "debt": 0}

        again = await release_holds_job(api, as_of)
        assert again["counts"] == {"holds": 0, "points": 0}
        assert await get_hold(api, soon["hold_id"]) == expired
        assert await api.balances(member) == {"available": 80, "pending": 0, "held": 20, "debt": 0}

    async def test_the_statement_dates_the_release_at_the_expiry(self, api: Api) -> None:
        member = await funded_member(api, 100)
        expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
        hold = await new_hold(api, member, 30, order_id="ord-exp", expires_at=expires_at.isoformat())
        await release_holds_job(api, expires_at)
        entry = (await statement(api, member))[0]
        assert entry["id"] == (await get_hold(api, hold["hold_id"]))["entry_id"]
        assert (entry["kind"], entry["points"], entry["held_points"]) == ("release", 30, -30)
        assert (entry["order_id"], entry["held_after"], entry["balance_after"]) == ("ord-exp", 0, 100)
        assert instant(entry["occurred_at"]) == expires_at

    async def test_a_hold_expiring_exactly_at_as_of_is_due(self, api: Api) -> None:
        member = await funded_member(api, 100)
        expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
        hold = await new_hold(api, member, 30, expires_at=expires_at.isoformat())
        early = await release_holds_job(api, expires_at - timedelta(microseconds=1))
        assert early["counts"] == {"holds": 0, "points": 0}
        assert (await get_hold(api, hold["hold_id"]))["status"] == "active"
        assert (await release_holds_job(api, expires_at))["counts"] == {"holds": 1, "points": 30}

    async def test_default_as_of_is_now_and_default_expiry_applies(
        self, api: Api, clock: MovableClock
    ) -> None:
        member = await funded_member(api, 100)
        hold = await new_hold(api, member, 30)
        clock.offset = timedelta(seconds=890)
        assert (await release_holds_job(api))["counts"] == {"holds": 0, "points": 0}
        clock.offset = timedelta(seconds=901)
        assert (await release_holds_job(api))["counts"] == {"holds": 1, "points": 30}
        assert (await get_hold(api, hold["hold_id"]))["status"] == "expired"
        assert await api.available(member) == 100

    async def test_closing_an_expired_hold_is_409(self, api: Api) -> None:
        member = await funded_member(api, 100)
        now = datetime.now(UTC)
        hold = await new_hold(api, member, 30, expires_at=(now + timedelta(minutes=5)).isoformat())
        await release_holds_job(api, now + timedelta(minutes=10))
        assert code(await capture(api, hold["hold_id"])) == (409, "hold_not_active")
        assert code(await release(api, hold["hold_id"])) == (409, "hold_not_active")
        assert await api.balances(member) == {"available": 100, "pending": 0, "held": 0, "debt": 0}

    async def test_captured_and_released_holds_are_left_alone(self, api: Api) -> None:
        member = await funded_member(api, 100)
        now = datetime.now(UTC)
        expires_at = (now + timedelta(minutes=5)).isoformat()
        captured = await new_hold(api, member, 30, expires_at=expires_at)
        released = await new_hold(api, member, 20, expires_at=expires_at)
        assert (await capture(api, captured["hold_id"], 10)).status_code == 201
        assert (await release(api, released["hold_id"])).status_code == 201
        summary = await release_holds_job(api, now + timedelta(minutes=10))
        assert summary["counts"] == {"holds": 0, "points": 0}
        assert (await get_hold(api, captured["hold_id"]))["status"] == "captured"
        assert (await get_hold(api, released["hold_id"]))["status"] == "released"
        assert await api.balances(member) == {"available": 90, "pending": 0, "held": 0, "debt": 0}

    async def test_touches_only_the_callers_program(self, api: Api, other: Api) -> None:
        now = datetime.now(UTC)
        expires_at = (now + timedelta(minutes=5)).isoformat()
        mine, theirs = await funded_member(api, 10), await funded_member(other, 10)
        await new_hold(api, mine, 10, expires_at=expires_at)
        their_hold = await new_hold(other, theirs, 10, expires_at=expires_at)
        assert (await release_holds_job(api, now + timedelta(minutes=10)))["counts"]["holds"] == 1
        assert (await get_hold(other, their_hold["hold_id"]))["status"] == "active"
        assert (await other.balances(theirs))["held"] == 10

    async def test_answers_as_of_in_utc(self, api: Api) -> None:
        as_of = datetime.now(UTC).astimezone(timezone(timedelta(hours=-5))).replace(microsecond=0)
        summary = await release_holds_job(api, as_of)
        assert instant(summary["as_of"]) == as_of
        # The contract: timestamps are RFC 3339 UTC.
        assert instant(summary["as_of"]).utcoffset() == timedelta(0), summary["as_of"]

    async def test_needs_admin(self, api: Api) -> None:
        burn = await api.key_with("points:burn")
        response = await api.post("/v1/jobs/release-holds", {}, key=burn, idempotency_key=None)
        assert response.status_code == 403
