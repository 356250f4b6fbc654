"""PUT /v1/members/{id}/tier: an operator sets a tier, pinned or until a date after
which the normal rules judge it as at a term's end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support import Api
from tests.tiers.helpers import (
    code_of,
    evaluate,
    gold_member,
    history,
    month,
    months_later,
    order,
    same,
    set_tier,
    tier_of,
    tier_rules,
)


class TestOverride:
    async def test_without_until_the_tier_is_pinned_with_no_term_and_no_downgrade(self, api: Api) -> None:
        version = await api.use_rules(tier_rules())
        member = await api.enrol()
        before = datetime.now(UTC)
        response = await set_tier(api, member, "gold", "service recovery")
        assert response.status_code == 200, response.text
        tier = response.json()["tier"]
        assert (tier["code"], tier["pinned"], tier["term_ends_at"], tier["override_until"]) == (
            "gold",
            True,
            None,
            None,
        )
        assert before <= datetime.fromisoformat(tier["since"]) <= datetime.now(UTC)
        [change] = response.json()["history"]
        assert (change["from_tier"], change["to_tier"], change["reason"]) == (None, "gold", "override")
        assert (change["note"], change["term_ends_at"], change["rules_version"]) == (
            "service recovery",
            None,
            version,
        )
        profile = (await api.get(f"/v1/members/{member}")).json()
        assert (profile["tier"]["code"], profile["tier"]["term_ends_at"]) == ("gold", None)

        found = await evaluate(api, datetime.now(UTC) + timedelta(days=3 * 366))
        assert found["changes"] == 0
        assert (await tier_of(api, member))["tier"] == tier
        # The tier's multiplier applies to the member's next order.
        assert (await order(api, member, "10.00", datetime.now(UTC)))["points"] == 20

    async def test_the_same_body_again_changes_nothing(self, api: Api) -> None:
        await api.use_rules(tier_rules())
        member = await api.enrol()
        for until in (None, month(4)):
            first = await set_tier(api, member, "gold", "goodwill", until=until)
            again = await set_tier(api, member, "gold", "goodwill", until=until)
            assert (first.status_code, again.status_code) == (200, 200)
            assert again.json()["tier"] == first.json()["tier"]
        assert [c["reason"] for c in await history(api, member)] == ["override", "override"]

    async def test_a_higher_tier_earned_while_pinned_still_applies(self, api: Api) -> None:
        await api.use_rules(tier_rules())
        member = await api.enrol()
        assert (await set_tier(api, member, "silver", "launch partner")).status_code == 200
        start = datetime.now(UTC) - timedelta(hours=5)
        results = [await order(api, member, "50.00", start + timedelta(hours=hour)) for hour in range(4)]
        assert [result["tier_reached"] for result in results] == [None, None, None, "gold"]
        tier = (await tier_of(api, member))["tier"]
        assert (tier["code"], tier["pinned"]) == ("gold", False)
        assert same(tier["term_ends_at"], months_later(start + timedelta(hours=3), 12))

    async def test_with_until_the_rules_judge_it_at_until_and_activity_retains(self, api: Api) -> None:
        await api.use_rules(tier_rules())
        member = await api.enrol()
        for hours in (0, 1, 2):
            await order(api, member, "10.00", month(-5) + timedelta(hours=hours))
        until = month(2)
        response = await set_tier(api, member, "gold", "VIP event", until=until)
        assert response.status_code == 200, response.text
        tier = response.json()["tier"]
        assert (tier["code"], tier["pinned"]) == ("gold", False)
        assert same(tier["override_until"], until)
        assert same(tier["term_ends_at"], until)
        change = response.json()["history"][0]
        assert (change["from_tier"], change["to_tier"], change["note"]) == ("silver", "gold", "VIP event")
        assert same(change["term_ends_at"], until)

        assert (await evaluate(api, until - timedelta(days=1)))["changes"] == 0
        assert await code_of(api, member) == "gold"
        # Gold's retain (3 orders) is met in the window ending at `until`.
        found = await evaluate(api, until + timedelta(days=1))
        assert (found["changes"], found["retained"]) == (1, 1)
        tier = (await tier_of(api, member))["tier"]
        assert (tier["code"], tier["override_until"], tier["pinned"]) == ("gold", None, False)
        assert same(tier["term_ends_at"], months_later(until, 12))
        change = (await history(api, member))[0]
        assert change["reason"] == "retained"
        assert same(change["effective_at"], until)
        assert change["activity"]["orders"] == 3

    async def test_with_until_a_miss_goes_to_grace_then_drops(self, api: Api) -> None:
        await api.use_rules(tier_rules())
        member = await api.enrol()
        until = month(2)
        assert (await set_tier(api, member, "gold", "trial", until=until)).status_code == 200
        assert (await evaluate(api, until + timedelta(days=1)))["changes"] == 0
        tier = (await tier_of(api, member))["tier"]
        assert (tier["code"], tier["override_until"]) == ("gold", None)
        assert same(tier["grace_ends_at"], until + timedelta(days=30))
        found = await evaluate(api, until + timedelta(days=31))
        assert (found["changes"], found["downgraded"]) == (1, 1)
        view = await tier_of(api, member)
        assert view["tier"]["code"] == "silver"  # one down
        change = view["history"][0]
        assert (change["from_tier"], change["to_tier"], change["reason"]) == ("gold", "silver", "downgraded")
        assert same(change["effective_at"], until + timedelta(days=30))
        assert same(change["activity"]["window_end"], until)

    async def test_an_earned_tier_set_to_none_is_recorded_with_the_reason(self, api: Api) -> None:
        await api.use_rules(tier_rules())
        member = await gold_member(api, month(-2))
        response = await set_tier(api, member, None, "fraud review")
        assert response.status_code == 200, response.text
        assert response.json()["tier"] is None
        change = response.json()["history"][0]
        assert (change["from_tier"], change["to_tier"], change["reason"], change["note"]) == (
            "gold",
            None,
            "override",
            "fraud review",
        )

    async def test_unknown_tier_past_until_other_keys_and_members_are_refused(self, api: Api) -> None:
        await api.use_rules(tier_rules())
        member = await api.enrol()
        unknown = await set_tier(api, member, "diamond", "typo")
        assert (unknown.status_code, unknown.json()["code"]) == (422, "validation_error")
        past = await set_tier(api, member, "gold", "late", until=datetime.now(UTC) - timedelta(minutes=1))
        assert (past.status_code, past.json()["code"]) == (422, "validation_error")
        reader = await api.key_with("members:read", "points:burn", "points:adjust")
        assert (await set_tier(api, member, "gold", "not mine", key=reader)).status_code == 403
        missing = await set_tier(api, "no-such-member", "gold", "who")
        assert (missing.status_code, missing.json()["code"]) == (404, "member_not_found")
        assert await history(api, member) == []
        assert await code_of(api, member) is None
