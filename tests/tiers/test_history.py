"""GET /v1/members/{id}/tier: history newest first with cursor pagination; programs
without tiers show none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support import Api
from tests.tiers.helpers import evaluate, month, order, set_tier, tier_of, tier_rules


class TestTierHistory:
    async def test_pages_newest_first_with_a_cursor(self, api: Api) -> None:
        await api.use_rules(tier_rules())
        member = await api.enrol()
        start = month(-3)
        await order(api, member, "10.00", start)
        await order(api, member, "10.00", start + timedelta(hours=1))  # qualified: silver
        for tier, reason in (("gold", "first"), (None, "second"), ("silver", "third"), ("gold", "fourth")):
            assert (await set_tier(api, member, tier, reason)).status_code == 200
        first = await tier_of(api, member, limit=2)
        assert [c["note"] for c in first["history"]] == ["fourth", "third"]
        assert first["next_cursor"] is not None
        second = await tier_of(api, member, limit=2, cursor=first["next_cursor"])
        assert [c["note"] for c in second["history"]] == ["second", "first"]
        third = await tier_of(api, member, limit=2, cursor=second["next_cursor"])
        assert [(c["reason"], c["to_tier"]) for c in third["history"]] == [("qualified", "silver")]
        assert third["next_cursor"] is None
        assert third["tier"] == first["tier"]  # every page shows the current tier
        everything = await tier_of(api, member)
        assert len(everything["history"]) == 5
        assert everything["next_cursor"] is None

    async def test_a_cursor_this_api_did_not_issue_is_400_and_unknown_members_404(self, api: Api) -> None:
        member = await api.enrol()
        response = await api.get(f"/v1/members/{member}/tier", cursor="not-a-cursor")
        assert (response.status_code, response.json()["code"]) == (400, "invalid_cursor")
        missing = await api.get("/v1/members/no-such-member/tier")
        assert (missing.status_code, missing.json()["code"]) == (404, "member_not_found")

    async def test_another_programs_member_is_not_found(self, api: Api, other: Api) -> None:
        member = await api.enrol()
        response = await other.get(f"/v1/members/{member}/tier")
        assert response.status_code == 404


class TestWithoutTiers:
    async def test_no_tier_no_progress_and_nothing_for_the_job(self, api: Api) -> None:
        member = await api.enrol()
        for hours in range(5):
            result = await order(api, member, "100.00", datetime.now(UTC) - timedelta(hours=hours))
            assert result["tier_reached"] is None
        view = await tier_of(api, member)
        assert (view["tier"], view["progress"], view["history"]) == (None, None, [])
        profile = (await api.get(f"/v1/members/{member}")).json()
        assert (profile["tier"], profile["tier_progress"]) == (None, None)
        found = await evaluate(api, datetime.now(UTC) + timedelta(days=400))
        assert found["changes"] == 0
