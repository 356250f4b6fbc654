"""Referrals as tier activity ("invite 3 friends to move up", "keep your level by
inviting friends"): a referral counts in the window holding the referred member's
first order (not fully refunded)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import asyncpg

from app.ledger.verify import verify
from tests.support import Api, MovableClock
from tests.tiers.helpers import (
    SILVER,
    code_of,
    evaluate,
    history,
    month,
    months_later,
    move_to,
    order,
    refund,
    same,
    tier_of,
    tier_rules,
)

GOLD_BY_REFERRALS: dict[str, Any] = {
    "code": "gold",
    "name": "Gold",
    "rank": 2,
    "qualify": {"orders": 1, "referrals": 3},
    "retain": {"referrals": 2},
}
SILVER_ON_ONE: dict[str, Any] = {**SILVER, "qualify": {"orders": 1}, "retain": {"orders": 1}}


def referral_rules() -> dict[str, Any]:
    return tier_rules([SILVER_ON_ONE, GOLD_BY_REFERRALS], grace_days=0)


async def friends_of(api: Api, referrer: str, count: int) -> list[str]:
    return [await api.enrol(referred_by=referrer) for _ in range(count)]


async def unsound(db: asyncpg.Connection) -> dict[str, list[str]]:
    return {outcome.name: outcome.examples for outcome in await verify(db) if outcome.mismatches}


class TestQualifyByReferrals:
    async def test_the_third_friends_first_order_in_the_window_upgrades_the_referrer(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        await api.use_rules(referral_rules())
        referrer = await api.enrol()
        await order(api, referrer, "20.00", month(-6))
        assert await code_of(api, referrer) == "silver"
        early, *friends = await friends_of(api, referrer, 4)
        # a first order before the window: that friend's later orders are no referral in it
        await order(api, early, "10.00", month(-16))
        await order(api, early, "10.00", month(-2))
        await order(api, friends[0], "10.00", month(-3))
        await order(api, friends[1], "10.00", month(-3) + timedelta(days=1))
        await order(api, friends[0], "15.00", month(-2))  # a second order: still one referral
        view = await tier_of(api, referrer)
        assert view["tier"]["code"] == "silver"
        assert view["progress"] == {"next_tier": "gold", "missing": {"referrals": 1}}
        assert view["activity"]["referrals"] == 2
        profile = (await api.get(f"/v1/members/{referrer}")).json()
        assert profile["tier_progress"] == {"next_tier": "gold", "missing": {"referrals": 1}}

        third_at = month(-1)
        third = await order(api, friends[2], "12.00", third_at)
        assert third["tier_reached"] == "silver"  # the friend's own tier
        view = await tier_of(api, referrer)
        assert view["tier"]["code"] == "gold"
        assert same(view["tier"]["since"], third_at)
        assert same(view["tier"]["term_ends_at"], months_later(third_at, 12))
        assert view["progress"] is None
        upgrade = view["history"][0]
        assert (upgrade["from_tier"], upgrade["to_tier"], upgrade["reason"]) == (
            "silver",
            "gold",
            "qualified",
        )
        assert upgrade["activity"]["referrals"] == 3
        assert upgrade["entry_id"] == third["entry_id"]  # the friend's order that made the referral
        assert await unsound(db) == {}

    async def test_a_fully_refunded_first_order_is_no_referral_until_another_order(self, api: Api) -> None:
        await api.use_rules(referral_rules())
        referrer = await api.enrol()
        await order(api, referrer, "20.00", month(-6))
        a, b, c = await friends_of(api, referrer, 3)
        await order(api, a, "10.00", month(-5))
        refunded = await order(api, c, "10.00", month(-5))
        await refund(api, refunded["order_id"], "10.00")
        assert (await tier_of(api, referrer))["activity"]["referrals"] == 1
        await order(api, b, "10.00", month(-4))  # two referrals: c's refunded order is none
        assert (await tier_of(api, referrer))["activity"]["referrals"] == 2
        assert await code_of(api, referrer) == "silver"
        await order(api, c, "10.00", month(-1))  # now c's first order that stands
        assert await code_of(api, referrer) == "gold"

    async def test_referrals_made_before_the_members_own_first_order_count_with_it(self, api: Api) -> None:
        await api.use_rules(referral_rules())
        referrer = await api.enrol()
        for friend in await friends_of(api, referrer, 3):
            await order(api, friend, "10.00", month(-2))
        assert await code_of(api, referrer) is None  # no order of their own yet
        assert (await tier_of(api, referrer))["progress"] == {"next_tier": "silver", "missing": {"orders": 1}}
        first = await order(api, referrer, "10.00", month(-1))
        assert first["tier_reached"] == "gold"

    async def test_friends_first_orders_at_once_upgrade_the_referrer_once(self, api: Api) -> None:
        await api.use_rules(referral_rules())
        referrer = await api.enrol()
        await order(api, referrer, "20.00", month(-6))
        friends = await friends_of(api, referrer, 5)
        await asyncio.gather(*(order(api, friend, "10.00", month(-1)) for friend in friends))
        changes = [(c["from_tier"], c["to_tier"]) for c in await history(api, referrer)]
        assert changes == [("silver", "gold"), (None, "silver")]
        assert (await tier_of(api, referrer))["activity"]["referrals"] == 5

    async def test_programs_without_referral_tiers_count_none(self, api: Api) -> None:
        await api.use_rules(tier_rules())
        referrer = await api.enrol()
        friend = await api.enrol(referred_by=referrer)
        await order(api, friend, "10.00", month(-1))
        view = await tier_of(api, referrer)
        assert view["activity"]["referrals"] == 0
        assert view["progress"] == {"next_tier": "silver", "missing": {"orders": 2}}


class TestRetainByReferrals:
    async def test_evaluate_tiers_keeps_those_who_invited_friends_in_the_term(
        self, api: Api, clock: MovableClock, db: asyncpg.Connection
    ) -> None:
        await api.use_rules(referral_rules())
        start = month(-11)
        members = {}
        for name in ("inviting", "quiet"):
            member = await api.enrol()
            await order(api, member, "20.00", start - timedelta(days=10))
            friends = await friends_of(api, member, 3)
            for n, friend in enumerate(friends):
                await order(api, friend, "10.00", start - timedelta(days=2 - n))  # the third at `start`
            assert await code_of(api, member) == "gold"
            members[name] = member
        # in the term: one more friend for one of them (with the third, 2 in the window)
        [late_friend] = await friends_of(api, members["inviting"], 1)
        await order(api, late_friend, "10.00", start + timedelta(days=90))

        move_to(clock, months_later(start, 12) + timedelta(hours=1))
        counts = await evaluate(api)
        assert counts["downgraded"] == 1  # the friends' silver is retained on their orders
        kept = await tier_of(api, members["inviting"])
        assert kept["tier"]["code"] == "gold"
        assert kept["history"][0]["reason"] == "retained"
        assert kept["history"][0]["activity"]["referrals"] == 2
        dropped = await tier_of(api, members["quiet"])
        assert dropped["tier"]["code"] == "silver"
        change = dropped["history"][0]
        assert (change["reason"], change["activity"]["referrals"]) == ("downgraded", 1)
        assert await unsound(db) == {}


async def _simulate(api: Api, version: int) -> list[dict[str, Any]]:
    body = {"from": month(-3).isoformat(), "to": month(0).isoformat()}
    response = await api.post(f"/v1/rules/{version}/simulate", body, idempotency_key=None)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["tiers"]
    return found


class TestWhatIf:
    async def test_a_draft_with_a_referral_tier_shows_who_would_hold_it(self, api: Api) -> None:
        await api.use_rules(tier_rules([SILVER_ON_ONE], keep_with_points={}))
        referrer = await api.enrol()
        await order(api, referrer, "20.00", month(-2))
        for friend in await friends_of(api, referrer, 3):
            await order(api, friend, "10.00", month(-1))
        draft = await api.post("/v1/rules", referral_rules(), idempotency_key=None)
        assert await _simulate(api, draft.json()["version"]) == [
            {"tier": "silver", "actual_members": 4, "simulated_members": 3, "delta_members": -1},
            {"tier": "gold", "actual_members": 0, "simulated_members": 1, "delta_members": 1},
        ]
