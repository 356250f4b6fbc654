from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support import Api, MovableClock

PROBLEM = "application/problem+json"


class TestCreateAward:
    async def test_credits_available_points_from_issuance(self, api: Api) -> None:
        member = await api.enrol()
        response = await api.award(member, 120, metadata={"campaign": "welcome"})
        assert response.status_code == 201
        entry = response.json()
        assert entry["kind"] == "award"
        assert entry["points"] == 120
        assert entry["metadata"] == {"campaign": "welcome"}
        assert {(p["member"], p["account"], p["points"]) for p in entry["postings"]} == {
            (member, "available", 120),
            (None, "issuance", -120),
        }
        assert entry["balances"] == [{"member": member, "available": 120, "pending": 0, "held": 0}]
        assert await api.available(member) == 120

    async def test_pending_until_in_the_future_keeps_points_pending(self, api: Api) -> None:
        member = await api.enrol()
        until = (datetime.now(UTC) + timedelta(days=14)).isoformat()
        response = await api.award(member, 50, pending_until=until)
        assert response.status_code == 201
        assert response.json()["balances"][0] == {"member": member, "available": 0, "pending": 50, "held": 0}

    async def test_pending_until_in_the_past_means_available(self, api: Api) -> None:
        member = await api.enrol()
        response = await api.award(member, 50, pending_until="2020-01-01T00:00:00Z")
        assert response.status_code == 201
        assert response.json()["balances"][0]["available"] == 50
        assert response.json()["pending_until"] is None

    async def test_expires_at_is_recorded(self, api: Api) -> None:
        member = await api.enrol()
        expires = datetime.now(UTC) + timedelta(days=365)
        response = await api.award(member, 10, expires_at=expires.isoformat())
        assert response.status_code == 201
        assert datetime.fromisoformat(response.json()["expires_at"]) == expires

    async def test_expires_at_in_the_past_is_rejected(self, api: Api) -> None:
        member = await api.enrol()
        response = await api.award(member, 10, expires_at="2020-01-01T00:00:00Z")
        assert response.status_code == 422
        assert response.json()["code"] == "validation_error"
        assert await api.available(member) == 0

    async def test_retry_after_the_clock_passed_expires_at_still_replays(
        self, api: Api, clock: MovableClock
    ) -> None:
        member = await api.enrol()
        body = {
            "points": 10,
            "reason": "r",
            "expires_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        }
        first = await api.post(f"/v1/members/{member}/awards", body, idempotency_key="late-retry")
        clock.offset = timedelta(hours=2)
        again = await api.post(f"/v1/members/{member}/awards", body, idempotency_key="late-retry")
        assert first.status_code == again.status_code == 201
        assert again.content == first.content
        assert again.headers["Idempotent-Replayed"] == "true"

    async def test_pending_until_after_expiry_is_rejected(self, api: Api) -> None:
        member = await api.enrol()
        now = datetime.now(UTC)
        response = await api.award(
            member,
            10,
            pending_until=(now + timedelta(days=30)).isoformat(),
            expires_at=(now + timedelta(days=10)).isoformat(),
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "body.pending_until"

    async def test_unknown_member_is_404(self, api: Api) -> None:
        response = await api.award("nobody", 10)
        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["code"] == "member_not_found"

    @pytest.mark.parametrize(
        "points",
        [0, -5, 1.5, 10.0, "10", True, None, 2**63, 2**64, 10**30],
        ids=["zero", "negative", "fraction", "float", "string", "bool", "null", "2^63", "2^64", "huge"],
    )
    async def test_points_must_be_a_positive_64_bit_integer(self, api: Api, points: object) -> None:
        member = await api.enrol()
        response = await api.post(f"/v1/members/{member}/awards", {"points": points, "reason": "x"})
        assert response.status_code == 422
        assert response.json()["code"] == "validation_error"
        assert response.json()["errors"][0]["field"] == "body.points"
        assert await api.available(member) == 0

    async def test_largest_points_value_is_accepted_and_overflow_is_422(self, api: Api) -> None:
        member = await api.enrol()
        assert (await api.award(member, 2**63 - 1)).status_code == 201
        response = await api.award(member, 1)
        assert response.status_code == 422
        assert response.json()["code"] == "points_out_of_range"
        assert await api.available(member) == 2**63 - 1

    async def test_reason_is_required_and_must_be_printable(self, api: Api) -> None:
        member = await api.enrol()
        missing = await api.post(f"/v1/members/{member}/awards", {"points": 1})
        nul = await api.post(f"/v1/members/{member}/awards", {"points": 1, "reason": "a\u0000b"})
        assert missing.status_code == nul.status_code == 422

    async def test_metadata_with_nul_or_too_large_is_rejected(self, api: Api) -> None:
        member = await api.enrol()
        nul = await api.award(member, 1, metadata={"note": "a\u0000"})
        large = await api.award(member, 1, metadata={"note": "x" * 9000})
        assert nul.status_code == large.status_code == 422
        assert await api.available(member) == 0

    async def test_unknown_fields_are_rejected(self, api: Api) -> None:
        member = await api.enrol()
        response = await api.award(member, 1, bonus=5)
        assert response.status_code == 422

    async def test_needs_points_adjust_scope(self, api: Api) -> None:
        member = await api.enrol()
        key = await api.key_with("points:earn", "members:read")
        response = await api.post(f"/v1/members/{member}/awards", {"points": 1, "reason": "r"}, key=key)
        assert response.status_code == 403
        assert response.json()["code"] == "forbidden"
        allowed = await api.key_with("points:adjust")
        assert (
            await api.post(f"/v1/members/{member}/awards", {"points": 1, "reason": "r"}, key=allowed)
        ).status_code == 201
