"""POST /v1/members/{id}/holds and GET /v1/holds/{id}."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import asyncpg

from tests.holds.helpers import code, funded_member, get_hold, hold_rows, instant, new_hold, place, statement
from tests.support import Api, MovableClock, entries_with_key


class TestPlaceHold:
    async def test_moves_points_from_available_to_held(self, api: Api) -> None:
        member = await funded_member(api, 100)
        before = datetime.now(UTC)
        response = await place(api, member, 30, order_id="ord-1")
        assert response.status_code == 201, response.text
        hold = response.json()
        assert set(hold) == {
            "hold_id",
            "member",
            "status",
            "points",
            "captured_points",
            "order_id",
            "created_at",
            "expires_at",
            "closed_at",
            "entry_id",
        }
        assert (hold["member"], hold["status"], hold["points"], hold["captured_points"]) == (
            member,
            "active",
            30,
            0,
        )
        assert (hold["order_id"], hold["closed_at"]) == ("ord-1", None)
        assert hold["entry_id"] == hold["hold_id"]
        uuid.UUID(hold["hold_id"])
        assert before <= instant(hold["created_at"]) <= datetime.now(UTC)
        assert await api.balances(member) == {"available": 70, "pending": 0, "held": 30, "debt": 0}

    async def test_default_expiry_is_fifteen_minutes(self, api: Api) -> None:
        member = await funded_member(api, 10)
        hold = await new_hold(api, member, 10)
        assert instant(hold["expires_at"]) - instant(hold["created_at"]) == timedelta(seconds=900)

    async def test_the_hold_reads_back_as_created(self, api: Api) -> None:
        member = await funded_member(api, 10)
        hold = await new_hold(api, member, 4, order_id="ord-2")
        assert await get_hold(api, hold["hold_id"]) == hold

    async def test_a_given_expiry_is_kept_and_answered_in_utc(self, api: Api) -> None:
        member = await funded_member(api, 10)
        berlin = timezone(timedelta(hours=2))
        expires_at = (datetime.now(UTC) + timedelta(hours=1)).astimezone(berlin).replace(microsecond=0)
        hold = await new_hold(api, member, 4, expires_at=expires_at.isoformat())
        assert instant(hold["expires_at"]) == expires_at
        # The contract: timestamps are RFC 3339 UTC, in the create response as in GET.
        assert instant(hold["expires_at"]).utcoffset() == timedelta(0), hold["expires_at"]
        assert (await get_hold(api, hold["hold_id"]))["expires_at"] == hold["expires_at"]

    async def test_the_statement_shows_the_points_moving_to_held(self, api: Api) -> None:
        member = await funded_member(api, 100)
        hold = await new_hold(api, member, 30)
        entry = (await statement(api, member))[0]
        assert entry["id"] == hold["entry_id"]
        assert (entry["kind"], entry["points"], entry["held_points"]) == ("hold", -30, 30)
        assert (entry["balance_after"], entry["held_after"]) == (70, 30)

    async def test_insufficient_points_changes_nothing(self, api: Api, db: asyncpg.Connection) -> None:
        member = await funded_member(api, 40)
        response = await place(api, member, 41)
        assert code(response) == (422, "insufficient_points")
        assert await api.balances(member) == {"available": 40, "pending": 0, "held": 0, "debt": 0}
        assert [item["kind"] for item in await statement(api, member)] == ["award"]
        assert await hold_rows(db, api.program) == 0

    async def test_held_points_cannot_be_held_again(self, api: Api) -> None:
        member = await funded_member(api, 50)
        await new_hold(api, member, 30)
        assert code(await place(api, member, 21)) == (422, "insufficient_points")
        assert (await place(api, member, 20)).status_code == 201
        assert await api.balances(member) == {"available": 0, "pending": 0, "held": 50, "debt": 0}

    async def test_expiry_in_the_past_is_refused(self, api: Api, db: asyncpg.Connection) -> None:
        member = await funded_member(api, 10)
        past = datetime.now(UTC) - timedelta(seconds=1)
        response = await place(api, member, 5, expires_at=past.isoformat())
        assert code(response) == (422, "validation_error")
        assert response.json()["errors"][0]["field"] == "body.expires_at"
        assert await api.available(member) == 10
        assert await hold_rows(db, api.program) == 0

    async def test_expiry_more_than_seven_days_ahead_is_refused(self, api: Api) -> None:
        member = await funded_member(api, 10)
        now = datetime.now(UTC)
        too_late = await place(api, member, 5, expires_at=(now + timedelta(days=7, minutes=1)).isoformat())
        assert code(too_late) == (422, "validation_error")
        assert too_late.json()["errors"][0]["field"] == "body.expires_at"
        assert await api.balances(member) == {"available": 10, "pending": 0, "held": 0, "debt": 0}
        just_in = await place(api, member, 5, expires_at=(now + timedelta(days=7, minutes=-1)).isoformat())
        assert just_in.status_code == 201, just_in.text

    async def test_expiry_is_judged_by_the_service_clock(self, api: Api, clock: MovableClock) -> None:
        member = await funded_member(api, 10)
        clock.offset = timedelta(days=2)
        tomorrow = datetime.now(UTC) + timedelta(days=1)
        assert code(await place(api, member, 5, expires_at=tomorrow.isoformat())) == (422, "validation_error")

    async def test_expiry_without_timezone_is_refused(self, api: Api) -> None:
        member = await funded_member(api, 10)
        naive = (datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None)
        assert code(await place(api, member, 5, expires_at=naive.isoformat())) == (422, "validation_error")

    async def test_points_must_be_positive(self, api: Api) -> None:
        member = await funded_member(api, 10)
        assert code(await place(api, member, 0)) == (422, "validation_error")
        assert await api.available(member) == 10

    async def test_unknown_member_is_404(self, api: Api, db: asyncpg.Connection) -> None:
        response = await place(api, "ghost", 1)
        assert code(response) == (404, "member_not_found")
        assert await hold_rows(db, api.program) == 0

    async def test_needs_an_idempotency_key(self, api: Api) -> None:
        member = await funded_member(api, 10)
        assert code(await place(api, member, 5, idempotency_key=None)) == (400, "idempotency_key_required")
        assert await api.available(member) == 10

    async def test_needs_points_burn_scope(self, api: Api) -> None:
        member = await funded_member(api, 10)
        earn = await api.key_with("points:earn")
        denied = await api.post(f"/v1/members/{member}/holds", {"points": 5}, key=earn)
        assert denied.status_code == 403
        burn = await api.key_with("points:burn")
        assert (await api.post(f"/v1/members/{member}/holds", {"points": 5}, key=burn)).status_code == 201

    async def test_replay_returns_the_first_response_and_holds_once(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        member = await funded_member(api, 100)
        first = await place(api, member, 30, idempotency_key="hold-1")
        second = await place(api, member, 30, idempotency_key="hold-1")
        assert first.status_code == second.status_code == 201
        assert second.content == first.content
        assert "Idempotent-Replayed" not in first.headers
        assert second.headers["Idempotent-Replayed"] == "true"
        assert await api.balances(member) == {"available": 70, "pending": 0, "held": 30, "debt": 0}
        assert await hold_rows(db, api.program) == 1
        assert await entries_with_key(db, api.program, "hold-1") == 1

    async def test_a_retry_replays_even_once_the_expiry_has_passed(
        self, api: Api, clock: MovableClock
    ) -> None:
        member = await funded_member(api, 100)
        expires_at = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
        first = await place(api, member, 30, expires_at=expires_at, idempotency_key="hold-late")
        assert first.status_code == 201
        clock.offset = timedelta(minutes=10)
        retry = await place(api, member, 30, expires_at=expires_at, idempotency_key="hold-late")
        assert (retry.status_code, retry.content) == (201, first.content)
        assert await api.balances(member) == {"available": 70, "pending": 0, "held": 30, "debt": 0}

    async def test_same_key_with_another_body_is_422(self, api: Api, db: asyncpg.Connection) -> None:
        member = await funded_member(api, 100)
        assert (await place(api, member, 30, idempotency_key="hold-2")).status_code == 201
        reused = await place(api, member, 31, idempotency_key="hold-2")
        assert code(reused) == (422, "idempotency_key_reused")
        assert await api.balances(member) == {"available": 70, "pending": 0, "held": 30, "debt": 0}
        assert await hold_rows(db, api.program) == 1


class TestGetHold:
    async def test_unknown_hold_is_404(self, api: Api) -> None:
        response = await api.get(f"/v1/holds/{uuid.uuid4()}")
        assert code(response) == (404, "hold_not_found")

    async def test_another_programs_hold_is_404(self, api: Api, other: Api) -> None:
        member = await funded_member(api, 10)
        hold = await new_hold(api, member, 5)
        assert code(await other.get(f"/v1/holds/{hold['hold_id']}")) == (404, "hold_not_found")

    async def test_needs_members_read_scope(self, api: Api) -> None:
        member = await funded_member(api, 10)
        hold = await new_hold(api, member, 5)
        burn = await api.key_with("points:burn")
        assert (await api.get(f"/v1/holds/{hold['hold_id']}", key=burn)).status_code == 403
        reader = await api.key_with("members:read")
        assert (await api.get(f"/v1/holds/{hold['hold_id']}", key=reader)).status_code == 200
