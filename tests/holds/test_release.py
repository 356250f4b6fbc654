"""POST /v1/holds/{id}/release, and what no longer works on held points."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from tests.holds.helpers import (
    capture,
    code,
    entry_postings,
    funded_member,
    get_hold,
    instant,
    new_hold,
    release,
    statement,
)
from tests.support import Api, MovableClock


class TestReleaseHold:
    async def test_gives_all_points_back(self, api: Api, db: asyncpg.Connection) -> None:
        member = await funded_member(api, 100)
        hold = await new_hold(api, member, 30, order_id="ord-9")
        before = datetime.now(UTC)
        response = await release(api, hold["hold_id"], "payment failed")
        assert response.status_code == 201, response.text
        released = response.json()
        assert (released["status"], released["points"], released["captured_points"]) == ("released", 30, 0)
        assert (released["hold_id"], released["order_id"]) == (hold["hold_id"], "ord-9")
        assert released["entry_id"] != hold["entry_id"]
        assert before <= instant(released["closed_at"]) <= datetime.now(UTC)
        assert await api.balances(member) == {"available": 100, "pending": 0, "held": 0, "debt": 0}
        assert await entry_postings(db, released["entry_id"]) == {("held", -30), ("available", 30)}
        assert await get_hold(api, hold["hold_id"]) == released

    async def test_without_a_body(self, api: Api) -> None:
        member = await funded_member(api, 100)
        hold = await new_hold(api, member, 30)
        response = await release(api, hold["hold_id"])
        assert (response.status_code, response.json()["status"]) == (201, "released")
        assert await api.available(member) == 100

    async def test_the_statement_shows_the_release_with_its_reason(self, api: Api) -> None:
        member = await funded_member(api, 100)
        hold = await new_hold(api, member, 30)
        released = (await release(api, hold["hold_id"], "basket abandoned")).json()
        entry = (await statement(api, member))[0]
        assert entry["id"] == released["entry_id"]
        assert (entry["kind"], entry["points"], entry["held_points"]) == ("release", 30, -30)
        assert (entry["balance_after"], entry["held_after"], entry["reason"]) == (100, 0, "basket abandoned")

    async def test_past_its_expiry_before_the_job_still_gives_the_points_back(
        self, api: Api, clock: MovableClock
    ) -> None:
        member = await funded_member(api, 100)
        hold = await new_hold(api, member, 30)
        clock.offset = timedelta(hours=1)  # the default 15 minutes have passed; the job has not run
        assert code(await capture(api, hold["hold_id"])) == (409, "hold_not_active")
        response = await release(api, hold["hold_id"])
        assert (response.status_code, response.json()["status"]) == (201, "released")
        assert await api.balances(member) == {"available": 100, "pending": 0, "held": 0, "debt": 0}

    async def test_a_second_release_is_409(self, api: Api) -> None:
        member = await funded_member(api, 100)
        hold = await new_hold(api, member, 30)
        assert (await release(api, hold["hold_id"])).status_code == 201
        assert code(await release(api, hold["hold_id"])) == (409, "hold_not_active")
        assert await api.balances(member) == {"available": 100, "pending": 0, "held": 0, "debt": 0}

    async def test_after_capture_is_409(self, api: Api) -> None:
        member = await funded_member(api, 100)
        hold = await new_hold(api, member, 30)
        assert (await capture(api, hold["hold_id"], 25)).status_code == 201
        assert code(await release(api, hold["hold_id"])) == (409, "hold_not_active")
        assert await api.balances(member) == {"available": 75, "pending": 0, "held": 0, "debt": 0}
        assert (await get_hold(api, hold["hold_id"]))["status"] == "captured"

    async def test_a_retry_replays_the_release(self, api: Api) -> None:
        member = await funded_member(api, 100)
        hold = await new_hold(api, member, 30)
        first = await release(api, hold["hold_id"], "r", idempotency_key="rel-1")
        second = await release(api, hold["hold_id"], "r", idempotency_key="rel-1")
        assert (second.status_code, second.content) == (201, first.content)
        assert second.headers["Idempotent-Replayed"] == "true"
        assert code(await release(api, hold["hold_id"], "other", idempotency_key="rel-1")) == (
            422,
            "idempotency_key_reused",
        )
        assert await api.balances(member) == {"available": 100, "pending": 0, "held": 0, "debt": 0}

    async def test_unknown_hold_is_404(self, api: Api) -> None:
        assert code(await release(api, str(uuid.uuid4()))) == (404, "hold_not_found")

    async def test_another_programs_hold_is_404(self, api: Api, other: Api) -> None:
        member = await funded_member(api, 10)
        hold = await new_hold(api, member, 10)
        assert code(await release(other, hold["hold_id"])) == (404, "hold_not_found")
        assert await api.balances(member) == {"available": 0, "pending": 0, "held": 10, "debt": 0}


class TestHeldPoints:
    async def test_cannot_be_redeemed_until_released(self, api: Api) -> None:
        member = await funded_member(api, 100)
        hold = await new_hold(api, member, 80)
        assert code(await api.redeem(member, 21)) == (422, "insufficient_points")
        assert await api.balances(member) == {"available": 20, "pending": 0, "held": 80, "debt": 0}
        assert (await release(api, hold["hold_id"])).status_code == 201
        assert (await api.redeem(member, 21)).status_code == 201
        assert await api.balances(member) == {"available": 79, "pending": 0, "held": 0, "debt": 0}

    async def test_cannot_be_transferred_until_released(self, api: Api) -> None:
        member, friend = await funded_member(api, 100), await api.enrol()
        hold = await new_hold(api, member, 80)
        assert code(await api.transfer(member, friend, 21)) == (422, "insufficient_points")
        assert await api.available(friend) == 0
        assert (await api.transfer(member, friend, 20)).status_code == 201
        assert (await release(api, hold["hold_id"])).status_code == 201
        assert (await api.transfer(member, friend, 80)).status_code == 201
        assert (await api.available(member), await api.available(friend)) == (0, 100)

    async def test_hold_capture_and_release_entries_cannot_be_reversed(self, api: Api) -> None:
        member = await funded_member(api, 100)
        captured_hold, released_hold = await new_hold(api, member, 30), await new_hold(api, member, 30)
        capture_entry = (await capture(api, captured_hold["hold_id"], 10)).json()["entry_id"]
        release_entry = (await release(api, released_hold["hold_id"])).json()["entry_id"]
        for entry_id in (captured_hold["entry_id"], capture_entry, release_entry):
            assert code(await api.reverse(entry_id)) == (422, "entry_not_reversible")
        assert await api.balances(member) == {"available": 90, "pending": 0, "held": 0, "debt": 0}

    async def test_an_active_holds_entry_cannot_be_reversed(self, api: Api) -> None:
        member = await funded_member(api, 100)
        hold = await new_hold(api, member, 30)
        assert code(await api.reverse(hold["entry_id"])) == (422, "entry_not_reversible")
        assert await api.balances(member) == {"available": 70, "pending": 0, "held": 30, "debt": 0}
        assert (await capture(api, hold["hold_id"])).status_code == 201
