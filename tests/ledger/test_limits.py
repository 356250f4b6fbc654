"""The rules' `limits`: a single award's maximum, and the daily limits per API key
(awards) and per member (redemptions and holds, transfers). Over a limit: 422
`limit_exceeded` naming the limit and what is left, nothing written; concurrent
requests never pass a limit together."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from app.ledger.verify import verify
from tests.support import Api, MovableClock, program_id

BASE: dict[str, Any] = {"earn": {"base": {"points": 1, "per": "1", "rounding": "floor"}}}


def with_limits(**limits: int) -> dict[str, Any]:
    return {**BASE, "limits": limits}


async def funded(api: Api, points: int = 10_000) -> str:
    member = await api.enrol()
    assert (await api.award(member, points)).status_code == 201
    return member


def assert_exceeded(response: httpx.Response, limit: str, remaining: int, allowed: int) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    problem: dict[str, Any] = response.json()
    assert problem["code"] == "limit_exceeded"
    assert response.headers["content-type"] == "application/problem+json"
    assert (problem["limit"], problem["remaining"], problem["allowed"]) == (limit, remaining, allowed)
    return problem


async def entries_of(db: asyncpg.Connection, api: Api, kind: str) -> int:
    pid = await program_id(db, api.program)
    return int(
        await db.fetchval("SELECT count(*) FROM journal_entry WHERE program_id = $1 AND kind = $2", pid, kind)
    )


async def assert_sound(db: asyncpg.Connection) -> None:
    assert {o.name: o.examples for o in await verify(db) if o.mismatches} == {}


class TestRulesDocument:
    async def test_limits_are_stored_and_read_back(self, api: Api) -> None:
        version = await api.use_rules(with_limits(award_max_points=5000, award_approval_above=0))
        rules = (await api.get(f"/v1/rules/{version}")).json()
        assert rules["document"]["limits"]["award_max_points"] == 5000
        assert rules["document"]["limits"]["award_approval_above"] == 0
        assert rules["document"]["limits"]["transfers_per_member_per_day"] is None

    @pytest.mark.parametrize(
        ("limits", "field"),
        [
            ({"award_max_points": 0}, "award_max_points"),
            ({"redeem_points_per_member_per_day": -1}, "redeem_points_per_member_per_day"),
            ({"transfers_per_member_per_day": "3"}, "transfers_per_member_per_day"),
            ({"award_approval_above": -5}, "award_approval_above"),
            ({"per_day": 5}, "per_day"),
        ],
    )
    async def test_bad_limits_are_invalid_rules(self, api: Api, limits: dict[str, Any], field: str) -> None:
        response = await api.post("/v1/rules", {**BASE, "limits": limits}, idempotency_key=None)
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "invalid_rules"
        assert field in response.text


class TestAwardMaximum:
    async def test_an_award_above_the_maximum_is_refused_and_writes_nothing(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        await api.use_rules(with_limits(award_max_points=1000))
        member = await api.enrol()
        problem = assert_exceeded(await api.award(member, 1001), "award_max_points", 1000, 1000)
        assert "day" not in problem
        assert await api.available(member) == 0
        assert await entries_of(db, api, "award") == 0
        assert (await api.award(member, 1000)).status_code == 201
        assert await api.available(member) == 1000

    async def test_without_limits_awards_are_not_counted(self, api: Api, db: asyncpg.Connection) -> None:
        member = await api.enrol()
        assert (await api.award(member, 10**9)).status_code == 201
        pid = await program_id(db, api.program)
        assert await db.fetchval("SELECT count(*) FROM limit_usage WHERE program_id = $1", pid) == 0


class TestAwardsPerKeyPerDay:
    async def test_each_key_has_its_own_allowance(self, api: Api) -> None:
        await api.use_rules(with_limits(award_points_per_key_per_day=500))
        member = await api.enrol()
        agent = await api.key_with("points:adjust")
        other_agent = await api.key_with("points:adjust")
        body = {"points": 300, "reason": "goodwill"}
        path = f"/v1/members/{member}/awards"
        assert (await api.post(path, body, key=agent)).status_code == 201
        problem = assert_exceeded(
            await api.post(path, body, key=agent), "award_points_per_key_per_day", 200, 500
        )
        assert problem["day"]
        assert (await api.post(path, {**body, "points": 200}, key=agent)).status_code == 201
        assert (await api.post(path, body, key=other_agent)).status_code == 201
        assert await api.available(member) == 800

    async def test_a_retry_replays_and_is_not_counted_twice(self, api: Api) -> None:
        await api.use_rules(with_limits(award_points_per_key_per_day=500))
        member = await api.enrol()
        body = {"points": 400, "reason": "goodwill"}
        first = await api.post(f"/v1/members/{member}/awards", body, idempotency_key="once")
        again = await api.post(f"/v1/members/{member}/awards", body, idempotency_key="once")
        assert (first.status_code, again.status_code) == (201, 201)
        assert again.headers["Idempotent-Replayed"] == "true"
        assert (await api.award(member, 100)).status_code == 201  # 400 + 100: exactly the limit
        assert_exceeded(await api.award(member, 1), "award_points_per_key_per_day", 0, 500)

    async def test_the_day_is_the_programs_local_day(self, api: Api, clock: MovableClock) -> None:
        await api.use_rules(
            {**with_limits(award_points_per_key_per_day=100), "timezone": "Pacific/Kiritimati"}
        )
        member = await api.enrol()
        assert (await api.award(member, 100)).status_code == 201
        assert_exceeded(await api.award(member, 1), "award_points_per_key_per_day", 0, 100)
        clock.offset = timedelta(days=1)
        assert (await api.award(member, 100)).status_code == 201

    async def test_a_limit_raised_in_new_rules_applies_at_once(self, api: Api) -> None:
        await api.use_rules(with_limits(award_points_per_key_per_day=100))
        member = await api.enrol()
        assert (await api.award(member, 100)).status_code == 201
        assert_exceeded(await api.award(member, 50), "award_points_per_key_per_day", 0, 100)
        await api.use_rules(with_limits(award_points_per_key_per_day=150))
        assert (await api.award(member, 50)).status_code == 201


class TestRedemptionsPerMemberPerDay:
    async def test_redemptions_and_holds_share_the_allowance(self, api: Api, db: asyncpg.Connection) -> None:
        member = await funded(api)
        await api.use_rules(with_limits(redeem_points_per_member_per_day=500))
        assert (await api.redeem(member, 300)).status_code == 201
        hold = await api.post(f"/v1/members/{member}/holds", {"points": 150})
        assert hold.status_code == 201, hold.text
        problem = assert_exceeded(
            await api.post(f"/v1/members/{member}/holds", {"points": 100}),
            "redeem_points_per_member_per_day",
            50,
            500,
        )
        assert "member" in problem["detail"]
        assert_exceeded(await api.redeem(member, 51), "redeem_points_per_member_per_day", 50, 500)
        # the capture the checkout promised is not refused, nor counted again
        captured = await api.post(f"/v1/holds/{hold.json()['hold_id']}/capture", {"points": 150})
        assert captured.status_code == 201, captured.text
        assert (await api.redeem(member, 50)).status_code == 201
        assert await api.balances(member) == {"available": 10_000 - 500, "pending": 0, "held": 0, "debt": 0}
        await assert_sound(db)

    async def test_each_member_has_their_own_allowance(self, api: Api) -> None:
        alice, bob = await funded(api), await funded(api)
        await api.use_rules(with_limits(redeem_points_per_member_per_day=100))
        assert (await api.redeem(alice, 100)).status_code == 201
        assert (await api.redeem(bob, 100)).status_code == 201
        assert_exceeded(await api.redeem(alice, 1), "redeem_points_per_member_per_day", 0, 100)

    async def test_a_redemption_refused_for_points_counts_nothing(self, api: Api) -> None:
        member = await funded(api, 50)
        await api.use_rules(with_limits(redeem_points_per_member_per_day=100))
        refused = await api.redeem(member, 80)
        assert refused.json()["code"] == "insufficient_points"
        assert (await api.award(member, 50)).status_code == 201
        assert (await api.redeem(member, 100)).status_code == 201

    async def test_an_unknown_member_is_404_not_a_limit(self, api: Api) -> None:
        await api.use_rules(with_limits(redeem_points_per_member_per_day=100))
        response = await api.redeem("nobody", 10)
        assert (response.status_code, response.json()["code"]) == (404, "member_not_found")
        response = await api.redeem("nobody", 1000)
        assert (response.status_code, response.json()["code"]) == (404, "member_not_found")


class TestTransfersPerMemberPerDay:
    async def test_points_and_count_of_transfers_out(self, api: Api, db: asyncpg.Connection) -> None:
        alice, bob = await funded(api), await funded(api)
        await api.use_rules(
            with_limits(transfer_points_per_member_per_day=100, transfers_per_member_per_day=2)
        )
        assert (await api.transfer(alice, bob, 60)).status_code == 201
        assert_exceeded(await api.transfer(alice, bob, 41), "transfer_points_per_member_per_day", 40, 100)
        assert (await api.transfer(alice, bob, 40)).status_code == 201
        assert_exceeded(await api.transfer(alice, bob, 1), "transfers_per_member_per_day", 0, 2)
        # the receiving side is not limited
        assert (await api.transfer(bob, alice, 100)).status_code == 201
        assert (await api.available(alice), await api.available(bob)) == (10_000, 10_000)
        await assert_sound(db)


class TestConcurrency:
    """Many requests at once over the app's pool of real connections, against the
    last points of a limit: exactly what the limit allows passes."""

    async def test_redemptions_at_the_edge_of_the_limit(self, api: Api, db: asyncpg.Connection) -> None:
        member = await funded(api)
        await api.use_rules(with_limits(redeem_points_per_member_per_day=1000))
        assert (await api.redeem(member, 950)).status_code == 201
        responses = await asyncio.gather(*(api.redeem(member, 10) for _ in range(20)))
        codes = [r.status_code for r in responses]
        assert codes.count(201) == 5
        assert codes.count(422) == 15
        assert {r.json()["code"] for r in responses if r.status_code == 422} == {"limit_exceeded"}
        assert await api.available(member) == 10_000 - 1000
        assert await entries_of(db, api, "redemption") == 6
        await assert_sound(db)

    async def test_holds_and_redemptions_together(self, api: Api) -> None:
        member = await funded(api)
        await api.use_rules(with_limits(redeem_points_per_member_per_day=100))
        calls = [api.redeem(member, 7) for _ in range(10)] + [
            api.post(f"/v1/members/{member}/holds", {"points": 7}) for _ in range(10)
        ]
        responses = await asyncio.gather(*calls)
        assert [r.status_code for r in responses].count(201) == 14  # 14 * 7 = 98 <= 100 < 105
        balances = await api.balances(member)
        assert balances["available"] + balances["held"] == 10_000 - sum(
            7 for r in responses if r.status_code == 201 and r.json().get("kind") == "redemption"
        )

    async def test_awards_of_one_key(self, api: Api, db: asyncpg.Connection) -> None:
        await api.use_rules(with_limits(award_points_per_key_per_day=1000))
        members = [await api.enrol() for _ in range(4)]
        agent = await api.key_with("points:adjust")
        body = {"points": 30, "reason": "storm"}
        responses = await asyncio.gather(
            *(api.post(f"/v1/members/{members[i % 4]}/awards", body, key=agent) for i in range(40))
        )
        assert [r.status_code for r in responses].count(201) == 33  # 33 * 30 = 990
        assert sum([await api.available(m) for m in members]) == 990
        await assert_sound(db)

    async def test_transfers_of_one_member(self, api: Api) -> None:
        alice, bob = await funded(api), await funded(api)
        await api.use_rules(with_limits(transfers_per_member_per_day=3))
        responses = await asyncio.gather(*(api.transfer(alice, bob, 1) for _ in range(12)))
        assert [r.status_code for r in responses].count(201) == 3
        assert await api.available(bob) == 10_003

    async def test_one_key_retried_at_once_is_counted_once(self, api: Api) -> None:
        member = await funded(api)
        await api.use_rules(with_limits(redeem_points_per_member_per_day=100))
        body = {"points": 60}
        responses = await asyncio.gather(
            *(api.post(f"/v1/members/{member}/redemptions", body, idempotency_key="same") for _ in range(8))
        )
        assert {r.status_code for r in responses} == {201}
        assert len({r.content for r in responses}) == 1
        assert (await api.redeem(member, 40)).status_code == 201  # 60 + 40: the rest is still there


class TestWhatIfOfLimits:
    async def test_a_draft_with_limits_shows_what_the_period_would_have_refused(self, api: Api) -> None:
        """Live rules have no limits; a draft's limits, replayed over what was recorded
        (one local day), refuse what this works out by hand."""
        start = datetime.now(UTC) - timedelta(seconds=1)
        m1, m2 = await api.enrol(), await api.enrol()
        for points in (100, 300, 200):  # max 250: 300 refused; per key 250: 100 passes, then 200 is over
            assert (await api.award(m1, points)).status_code == 201
        assert (await api.redeem(m1, 50)).status_code == 201  # per member 100: passes (50)
        assert (await api.redeem(m1, 80)).status_code == 201  # 130: refused, counts nothing
        held = await api.post(f"/v1/members/{m1}/holds", {"points": 30})  # 80: passes
        assert held.status_code == 201, held.text
        for points in (10, 20, 5):  # 2 a day and 25 points: 10 passes, 20 is over 25, 5 passes
            assert (await api.transfer(m1, m2, points)).status_code == 201
        end = datetime.now(UTC) + timedelta(seconds=1)
        limits = {
            "award_max_points": 250,
            "award_points_per_key_per_day": 250,
            "award_approval_above": 50,
            "redeem_points_per_member_per_day": 100,
            "transfers_per_member_per_day": 2,
            "transfer_points_per_member_per_day": 25,
        }
        created = await api.post("/v1/rules", with_limits(**limits), idempotency_key=None)
        assert created.status_code == 201, created.text
        draft = created.json()["version"]
        plain = (await api.post("/v1/rules", BASE, idempotency_key=None)).json()["version"]
        window = {"from": start.isoformat(), "to": end.isoformat()}

        replayed = await api.post(f"/v1/rules/{draft}/simulate", window, idempotency_key=None)
        assert replayed.status_code == 200, replayed.text
        assert replayed.json()["limits"] == {
            "awards": 3,
            "awards_refused": 2,
            "award_points_refused": 500,
            "awards_for_approval": 1,
            "redemptions": 3,
            "redemptions_refused": 1,
            "redeem_points_refused": 80,
            "transfers": 3,
            "transfers_refused": 1,
            "transfer_points_refused": 20,
        }
        without = await api.post(f"/v1/rules/{plain}/simulate", window, idempotency_key=None)
        assert without.status_code == 200, without.text
        assert set(without.json()["limits"].values()) == {0}
        # the replay wrote nothing: the live figures are as they were
        assert await api.available(m1) == 600 - 50 - 80 - 30 - 35
