"""POST /v1/holds/{id}/capture."""

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


async def redeemed_points(db: asyncpg.Connection, program: str) -> int:
    """The program's redemption account: every point spent."""
    total = await db.fetchval(
        "SELECT coalesce(sum(p.amount), 0) FROM posting p JOIN account a ON a.id = p.account_id"
        " JOIN program g ON g.id = a.program_id"
        " WHERE g.code = $1 AND a.kind = 'redemption' AND a.member_id IS NULL",
        program,
    )
    return int(total)


class TestCaptureHold:
    async def test_full_capture_spends_the_held_points(self, api: Api, db: asyncpg.Connection) -> None:
        member = await funded_member(api, 100)
        hold = await new_hold(api, member, 30, order_id="ord-7")
        before = datetime.now(UTC)
        response = await capture(api, hold["hold_id"])
        assert response.status_code == 201, response.text
        captured = response.json()
        assert (captured["status"], captured["points"], captured["captured_points"]) == ("captured", 30, 30)
        assert (captured["hold_id"], captured["member"], captured["order_id"]) == (
            hold["hold_id"],
            member,
            "ord-7",
        )
        assert captured["entry_id"] != hold["entry_id"]
        assert before <= instant(captured["closed_at"]) <= datetime.now(UTC)
        assert (captured["created_at"], captured["expires_at"]) == (hold["created_at"], hold["expires_at"])
        assert await api.balances(member) == {"available": 70, "pending": 0, "held": 0, "debt": 0}
        assert await entry_postings(db, captured["entry_id"]) == {("held", -30), ("redemption", 30)}
        assert await redeemed_points(db, api.program) == 30
        assert await get_hold(api, hold["hold_id"]) == captured

    async def test_partial_capture_gives_the_rest_back(self, api: Api, db: asyncpg.Connection) -> None:
        member = await funded_member(api, 150)
        hold = await new_hold(api, member, 100)
        response = await capture(api, hold["hold_id"], 60)
        assert response.status_code == 201, response.text
        assert (response.json()["status"], response.json()["captured_points"]) == ("captured", 60)
        assert await api.balances(member) == {"available": 90, "pending": 0, "held": 0, "debt": 0}
        assert await entry_postings(db, response.json()["entry_id"]) == {
            ("held", -100),
            ("redemption", 60),
            ("available", 40),
        }
        assert await redeemed_points(db, api.program) == 60
        # What came back is the member's to spend, to the last point.
        assert code(await api.redeem(member, 91)) == (422, "insufficient_points")
        assert (await api.redeem(member, 90)).status_code == 201
        assert await redeemed_points(db, api.program) == 150

    async def test_capturing_exactly_the_held_points_is_a_full_capture(self, api: Api) -> None:
        member = await funded_member(api, 50)
        hold = await new_hold(api, member, 50)
        response = await capture(api, hold["hold_id"], 50)
        assert (response.status_code, response.json()["captured_points"]) == (201, 50)
        assert await api.balances(member) == {"available": 0, "pending": 0, "held": 0, "debt": 0}

    async def test_the_statement_shows_the_capture(self, api: Api) -> None:
        member = await funded_member(api, 150)
        hold = await new_hold(api, member, 100)
        captured = (await capture(api, hold["hold_id"], 60)).json()
        entry = (await statement(api, member))[0]
        assert entry["id"] == captured["entry_id"]
        assert (entry["kind"], entry["points"], entry["held_points"]) == ("capture", 40, -100)
        assert (entry["balance_after"], entry["held_after"]) == (90, 0)
        assert entry["order_id"] == hold["order_id"]

    async def test_more_than_held_is_422_and_the_hold_stays_active(self, api: Api) -> None:
        member = await funded_member(api, 100)
        hold = await new_hold(api, member, 30)
        assert code(await capture(api, hold["hold_id"], 31)) == (422, "capture_exceeds_hold")
        assert (await get_hold(api, hold["hold_id"]))["status"] == "active"
        assert await api.balances(member) == {"available": 70, "pending": 0, "held": 30, "debt": 0}
        assert (await capture(api, hold["hold_id"], 30)).status_code == 201

    async def test_zero_points_is_a_validation_error(self, api: Api) -> None:
        member = await funded_member(api, 10)
        hold = await new_hold(api, member, 10)
        assert code(await capture(api, hold["hold_id"], 0)) == (422, "validation_error")
        assert (await get_hold(api, hold["hold_id"]))["status"] == "active"

    async def test_a_second_capture_is_409(self, api: Api) -> None:
        member = await funded_member(api, 100)
        hold = await new_hold(api, member, 30)
        assert (await capture(api, hold["hold_id"], 10)).status_code == 201
        assert code(await capture(api, hold["hold_id"], 10)) == (409, "hold_not_active")
        assert code(await capture(api, hold["hold_id"])) == (409, "hold_not_active")
        assert await api.balances(member) == {"available": 90, "pending": 0, "held": 0, "debt": 0}
        assert (await get_hold(api, hold["hold_id"]))["captured_points"] == 10

    async def test_after_release_is_409(self, api: Api) -> None:
        member = await funded_member(api, 100)
        hold = await new_hold(api, member, 30)
        assert (await release(api, hold["hold_id"])).status_code == 201
        assert code(await capture(api, hold["hold_id"])) == (409, "hold_not_active")
        assert await api.balances(member) == {"available": 100, "pending": 0, "held": 0, "debt": 0}
        assert (await get_hold(api, hold["hold_id"]))["status"] == "released"

    async def test_past_its_expiry_is_409_before_the_job_runs(self, api: Api, clock: MovableClock) -> None:
        member = await funded_member(api, 100)
        expires_at = datetime.now(UTC) + timedelta(minutes=5)
        hold = await new_hold(api, member, 30, expires_at=expires_at.isoformat())
        clock.offset = timedelta(minutes=5, seconds=1)
        assert code(await capture(api, hold["hold_id"])) == (409, "hold_not_active")
        # Not released yet: the points stay held until the job gives them back.
        assert (await get_hold(api, hold["hold_id"]))["status"] == "active"
        assert await api.balances(member) == {"available": 70, "pending": 0, "held": 30, "debt": 0}

    async def test_just_before_its_expiry_still_captures(self, api: Api, clock: MovableClock) -> None:
        member = await funded_member(api, 100)
        expires_at = datetime.now(UTC) + timedelta(minutes=5)
        hold = await new_hold(api, member, 30, expires_at=expires_at.isoformat())
        clock.offset = timedelta(minutes=4, seconds=50)
        assert (await capture(api, hold["hold_id"])).status_code == 201

    async def test_unknown_hold_is_404(self, api: Api) -> None:
        assert code(await capture(api, str(uuid.uuid4()))) == (404, "hold_not_found")

    async def test_another_programs_hold_is_404(self, api: Api, other: Api) -> None:
        member = await funded_member(api, 10)
        hold = await new_hold(api, member, 10)
        assert code(await capture(other, hold["hold_id"])) == (404, "hold_not_found")
        assert (await get_hold(api, hold["hold_id"]))["status"] == "active"

    async def test_needs_points_burn_scope(self, api: Api) -> None:
        member = await funded_member(api, 10)
        hold = await new_hold(api, member, 10)
        reader = await api.key_with("members:read")
        path = f"/v1/holds/{hold['hold_id']}/capture"
        assert (await api.post(path, {}, key=reader)).status_code == 403
        burn = await api.key_with("points:burn")
        assert (await api.post(path, {}, key=burn)).status_code == 201

    async def test_needs_an_idempotency_key(self, api: Api) -> None:
        member = await funded_member(api, 10)
        hold = await new_hold(api, member, 10)
        response = await capture(api, hold["hold_id"], idempotency_key=None)
        assert code(response) == (400, "idempotency_key_required")
        assert (await get_hold(api, hold["hold_id"]))["status"] == "active"


class TestCaptureReplay:
    async def test_a_retry_replays_the_first_response_after_the_hold_closed(
        self, api: Api, clock: MovableClock
    ) -> None:
        member = await funded_member(api, 100)
        hold = await new_hold(api, member, 30)
        first = await capture(api, hold["hold_id"], 20, idempotency_key="cap-1")
        assert first.status_code == 201
        second = await capture(api, hold["hold_id"], 20, idempotency_key="cap-1")
        assert (second.status_code, second.content) == (201, first.content)
        assert second.headers["Idempotent-Replayed"] == "true"
        assert "Idempotent-Replayed" not in first.headers
        # Still the same answer once the hold would have expired.
        clock.offset = timedelta(hours=1)
        third = await capture(api, hold["hold_id"], 20, idempotency_key="cap-1")
        assert (third.status_code, third.content) == (201, first.content)
        assert await api.balances(member) == {"available": 80, "pending": 0, "held": 0, "debt": 0}

    async def test_same_key_with_other_points_is_422(self, api: Api) -> None:
        member = await funded_member(api, 100)
        hold = await new_hold(api, member, 30)
        assert (await capture(api, hold["hold_id"], 20, idempotency_key="cap-2")).status_code == 201
        reused = await capture(api, hold["hold_id"], 10, idempotency_key="cap-2")
        assert code(reused) == (422, "idempotency_key_reused")
        assert await api.balances(member) == {"available": 80, "pending": 0, "held": 0, "debt": 0}

    async def test_same_key_on_another_hold_is_422(self, api: Api) -> None:
        member = await funded_member(api, 100)
        first, second = await new_hold(api, member, 30), await new_hold(api, member, 30)
        assert (await capture(api, first["hold_id"], idempotency_key="cap-3")).status_code == 201
        reused = await capture(api, second["hold_id"], idempotency_key="cap-3")
        assert code(reused) == (422, "idempotency_key_reused")
        assert (await get_hold(api, second["hold_id"]))["status"] == "active"
        assert await api.balances(member) == {"available": 40, "pending": 0, "held": 30, "debt": 0}

    async def test_a_refused_capture_stores_nothing_under_its_key(self, api: Api) -> None:
        member = await funded_member(api, 100)
        hold = await new_hold(api, member, 30)
        refused = await capture(api, hold["hold_id"], 40, idempotency_key="cap-4")
        assert code(refused) == (422, "capture_exceeds_hold")
        retried = await capture(api, hold["hold_id"], 30, idempotency_key="cap-4")
        assert (retried.status_code, retried.json()["captured_points"]) == (201, 30)
        assert "Idempotent-Replayed" not in retried.headers
