from __future__ import annotations

from tests.support import Api


class TestCreateRedemption:
    async def test_debits_available_points_to_redemption(self, api: Api) -> None:
        member = await api.enrol()
        await api.award(member, 100)
        response = await api.redeem(member, 30, reward="coffee", order_id="o-1")
        assert response.status_code == 201
        entry = response.json()
        assert entry["kind"] == "redemption"
        assert entry["reason"] == "coffee"
        assert {(p["member"], p["account"], p["points"]) for p in entry["postings"]} == {
            (member, "available", -30),
            (None, "redemption", 30),
        }
        assert await api.available(member) == 70

    async def test_spending_everything_is_allowed(self, api: Api) -> None:
        member = await api.enrol()
        await api.award(member, 100)
        assert (await api.redeem(member, 100)).status_code == 201
        assert await api.available(member) == 0

    async def test_insufficient_points_changes_nothing(self, api: Api) -> None:
        member = await api.enrol()
        await api.award(member, 40)
        response = await api.redeem(member, 41)
        assert response.status_code == 422
        problem = response.json()
        assert problem["code"] == "insufficient_points"
        assert "40 available" in problem["detail"]
        assert await api.available(member) == 40
        statement = (await api.get(f"/v1/members/{member}/entries")).json()
        assert [item["kind"] for item in statement["items"]] == ["award"]

    async def test_failed_request_can_be_retried_with_the_same_key(self, api: Api) -> None:
        member = await api.enrol()
        body = {"points": 50}
        first = await api.post(f"/v1/members/{member}/redemptions", body, idempotency_key="retry-me")
        assert first.status_code == 422
        await api.award(member, 50)
        second = await api.post(f"/v1/members/{member}/redemptions", body, idempotency_key="retry-me")
        assert second.status_code == 201
        assert await api.available(member) == 0

    async def test_pending_points_cannot_be_spent(self, api: Api) -> None:
        member = await api.enrol()
        await api.award(member, 100, pending_until="2999-01-01T00:00:00Z")
        response = await api.redeem(member, 1)
        assert response.status_code == 422
        assert response.json()["code"] == "insufficient_points"

    async def test_unknown_member_is_404(self, api: Api) -> None:
        response = await api.redeem("ghost", 1)
        assert response.status_code == 404
        assert response.json()["code"] == "member_not_found"

    async def test_needs_points_burn_scope(self, api: Api) -> None:
        member = await api.enrol()
        await api.award(member, 10)
        key = await api.key_with("points:earn")
        assert (
            await api.post(f"/v1/members/{member}/redemptions", {"points": 1}, key=key)
        ).status_code == 403
        burn = await api.key_with("points:burn")
        assert (
            await api.post(f"/v1/members/{member}/redemptions", {"points": 1}, key=burn)
        ).status_code == 201
