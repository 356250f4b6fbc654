"""Upgrades at once with the qualifying order or event, the tier's multiplier from
the next order, refunds that reduce activity without a downgrade, and progress."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.support import Api, unique
from tests.tiers.helpers import (
    GOLD,
    SILVER,
    code_of,
    evaluate,
    event,
    history,
    month,
    months_later,
    order,
    refund,
    same,
    tier_of,
    tier_rules,
)


def rules_of(result: dict[str, Any]) -> list[str]:
    return [line["rule"] for line in result["breakdown"]]


class TestUpgradeWithTheOrder:
    async def test_the_qualifying_order_upgrades_at_once_with_state_and_history(self, api: Api) -> None:
        version = await api.use_rules(tier_rules())
        member = await api.enrol()
        first_at = month(-11)
        second_at = first_at + timedelta(days=1)
        first = await order(api, member, "30.00", first_at)
        assert first["tier_reached"] is None
        assert await code_of(api, member) is None

        second = await order(api, member, "45.50", second_at)
        assert second["tier_reached"] == "silver"
        view = await tier_of(api, member)
        tier = view["tier"]
        assert (tier["code"], tier["name"], tier["pinned"]) == ("silver", "Silver", False)
        assert same(tier["since"], second_at)
        assert same(tier["term_ends_at"], months_later(second_at, 12))
        assert (tier["grace_ends_at"], tier["override_until"]) == (None, None)
        [change] = view["history"]
        assert (change["from_tier"], change["to_tier"], change["reason"]) == (None, "silver", "qualified")
        assert same(change["effective_at"], second_at)
        assert same(change["term_ends_at"], months_later(second_at, 12))
        assert change["entry_id"] == second["entry_id"]
        assert (change["rules_version"], change["note"]) == (version, None)
        activity = change["activity"]
        assert (activity["orders"], activity["spend"], activity["points"]) == (2, "75.50", 75)
        assert same(activity["window_start"], months_later(second_at, -12))
        assert same(activity["window_end"], second_at)

        profile = (await api.get(f"/v1/members/{member}")).json()
        assert profile["tier"]["code"] == "silver"
        assert profile["tier"]["name"] == "Silver"
        assert same(profile["tier"]["since"], second_at)
        assert same(profile["tier"]["term_ends_at"], months_later(second_at, 12))
        assert profile["tier_progress"] == {"next_tier": "gold", "missing": {"orders": 2, "spend": "124.50"}}

    async def test_the_tier_multiplier_applies_from_the_next_order_only(self, api: Api) -> None:
        await api.use_rules(tier_rules())
        member = await api.enrol()
        start = month(-11)
        results = [await order(api, member, "50.00", start + timedelta(hours=hour)) for hour in range(5)]
        assert [result["tier_reached"] for result in results] == [None, "silver", None, "gold", None]
        # The 4th order lifts the member to gold but earns as a silver member did.
        assert [result["points"] for result in results] == [50, 50, 50, 50, 100]
        assert "gold" not in rules_of(results[3])
        assert "gold" in rules_of(results[4])
        changes = await history(api, member)
        assert [(c["from_tier"], c["to_tier"]) for c in changes] == [("silver", "gold"), (None, "silver")]
        assert changes[0]["entry_id"] == results[3]["entry_id"]
        assert same(changes[0]["effective_at"], start + timedelta(hours=3))

    async def test_one_order_can_jump_past_a_tier(self, api: Api) -> None:
        tiers = [
            {**SILVER, "qualify": {"spend": "100.00"}},
            {**GOLD, "qualify": {"spend": "200.00"}},
        ]
        await api.use_rules(tier_rules(tiers))
        member = await api.enrol()
        result = await order(api, member, "250.00", month(-2))
        assert result["tier_reached"] == "gold"
        [change] = await history(api, member)
        assert (change["from_tier"], change["to_tier"], change["reason"]) == (None, "gold", "qualified")
        assert (await tier_of(api, member))["progress"] is None  # the top

    async def test_orders_outside_the_window_do_not_qualify(self, api: Api) -> None:
        await api.use_rules(tier_rules())
        member = await api.enrol()
        await order(api, member, "10.00", month(-13) - timedelta(seconds=1))
        result = await order(api, member, "10.00", month(-1))
        assert result["tier_reached"] is None
        view = await tier_of(api, member)
        assert view["tier"] is None
        assert view["progress"] == {"next_tier": "silver", "missing": {"orders": 1}}

    async def test_a_late_reported_order_that_completes_the_threshold_upgrades_at_once(
        self, api: Api
    ) -> None:
        # A shop reports an older order after a newer one (an offline till syncing):
        # once it is recorded the member has 2 orders in the window, as GET shows.
        await api.use_rules(tier_rules())
        member = await api.enrol()
        await order(api, member, "10.00", month(-1))
        late = await order(api, member, "10.00", month(-2))
        view = await tier_of(api, member)
        assert view["activity"]["orders"] == 2
        assert (late["tier_reached"], await code_of(api, member)) == ("silver", "silver")

    async def test_a_replayed_order_and_a_preview_change_no_tier(self, api: Api) -> None:
        await api.use_rules(tier_rules())
        member = await api.enrol()
        await order(api, member, "10.00", month(-3))
        body = {
            "order_id": unique("o"),
            "member": member,
            "total": {"amount": "10.00", "currency": "EUR"},
            "paid_at": month(-2).isoformat(),
        }
        preview = await api.post("/v1/orders/preview", body, idempotency_key=None)
        assert preview.status_code == 200, preview.text
        assert await code_of(api, member) is None
        assert await history(api, member) == []
        placed = await api.post("/v1/orders", body)
        again = await api.post("/v1/orders", body)
        assert (placed.status_code, again.status_code) == (201, 201)
        assert placed.json()["tier_reached"] == again.json()["tier_reached"] == "silver"
        assert len(await history(api, member)) == 1


class TestUpgradeWithAnEvent:
    async def test_event_points_reach_a_points_threshold_and_awards_do_not(self, api: Api) -> None:
        tiers = [{**SILVER, "qualify": {"points": 100}}, {**GOLD, "qualify": {"points": 1000}}]
        await api.use_rules(tier_rules(tiers))
        member = await api.enrol()
        assert (await api.award(member, 5000)).status_code == 201
        at = month(-1)
        await event(api, member, "sign_up", at)
        assert await code_of(api, member) is None
        review = await event(api, member, "review", at + timedelta(hours=1))
        view = await tier_of(api, member)
        assert view["tier"]["code"] == "silver"
        assert same(view["tier"]["since"], at + timedelta(hours=1))
        [change] = view["history"]
        assert (change["reason"], change["entry_id"]) == ("qualified", review["id"])
        assert change["activity"]["points"] == 110
        assert view["progress"] == {"next_tier": "gold", "missing": {"points": 890}}


class TestRefundsAndTiers:
    async def test_refunds_reduce_activity_but_do_not_downgrade_before_the_term_ends(self, api: Api) -> None:
        await api.use_rules(tier_rules())
        member = await api.enrol()
        start = month(-11)
        first = await order(api, member, "60.00", start)
        second = await order(api, member, "40.00", start + timedelta(days=1))
        assert second["tier_reached"] == "silver"
        before = await tier_of(api, member)
        assert before["progress"]["missing"] == {"orders": 2, "spend": "100.00"}

        await refund(api, first["order_id"], "20.00")
        partly = await tier_of(api, member)
        assert (partly["activity"]["orders"], partly["activity"]["spend"]) == (2, "80.00")
        assert partly["activity"]["points"] == 80
        assert partly["progress"]["missing"] == {"orders": 2, "spend": "120.00"}

        await refund(api, second["order_id"], "40.00")
        after = await tier_of(api, member)
        assert (after["activity"]["orders"], after["activity"]["spend"], after["activity"]["points"]) == (
            1,
            "40.00",
            40,
        )
        assert after["progress"]["missing"] == {"orders": 3, "spend": "160.00"}
        assert after["tier"] == before["tier"]  # still silver, same term
        assert len(after["history"]) == 1

        term_ends = months_later(start + timedelta(days=1), 12)
        assert (await evaluate(api, term_ends - timedelta(minutes=1)))["changes"] == 0
        assert (await tier_of(api, member))["tier"] == before["tier"]
        # At the term's end the refunded order no longer keeps the tier: the window
        # [2nd order, term end] holds only that order, and it was refunded in full.
        await evaluate(api, term_ends + timedelta(days=1))
        judged = (await tier_of(api, member))["tier"]
        assert judged["code"] == "silver"
        assert same(judged["grace_ends_at"], term_ends + timedelta(days=30))


class TestProgress:
    async def test_missing_shows_only_unmet_thresholds_in_the_thresholds_places(self, api: Api) -> None:
        platinum = {
            "code": "platinum",
            "name": "Platinum",
            "rank": 3,
            "qualify": {"spend": "1000", "points": 900},
        }
        await api.use_rules(tier_rules([SILVER, GOLD, platinum]))
        member = await api.enrol()
        start = month(-6)
        assert (await tier_of(api, member))["progress"] == {"next_tier": "silver", "missing": {"orders": 2}}
        await order(api, member, "12.34", start)
        assert (await tier_of(api, member))["progress"] == {"next_tier": "silver", "missing": {"orders": 1}}
        await order(api, member, "25.00", start + timedelta(hours=1))
        assert (await tier_of(api, member))["progress"] == {
            "next_tier": "gold",
            "missing": {"orders": 2, "spend": "162.66"},
        }
        await order(api, member, "100.00", start + timedelta(hours=2))
        await order(api, member, "10.00", start + timedelta(hours=3))
        # Four orders: the orders threshold is met and no longer listed.
        assert (await tier_of(api, member))["progress"] == {
            "next_tier": "gold",
            "missing": {"spend": "52.66"},
        }
        assert (await order(api, member, "65.00", start + timedelta(hours=4)))["tier_reached"] == "gold"
        # 1000 - 212.34 = 787.66, shown rounded up in the threshold's own places.
        view = await tier_of(api, member)
        assert view["progress"] == {"next_tier": "platinum", "missing": {"spend": "788", "points": 688}}
        profile = (await api.get(f"/v1/members/{member}")).json()
        assert profile["tier_progress"] == view["progress"]
        assert (view["activity"]["orders"], view["activity"]["spend"]) == (5, "212.34")

        assert (await order(api, member, "800.00", start + timedelta(hours=5)))["tier_reached"] == "platinum"
        assert (await tier_of(api, member))["progress"] is None
