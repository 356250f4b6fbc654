"""POST /v1/members/{id}/tier/keep: spend the tier's keep_with_points to move the
term's end forward by term_months, during the term or its grace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support import Api, MovableClock, entries_with_key, unique
from tests.tiers.helpers import (
    GOLD,
    SILVER,
    code_of,
    evaluate,
    gold_member,
    history,
    keep,
    month,
    months_later,
    move_to,
    same,
    set_tier,
    tier_of,
    tier_rules,
)


async def statement(api: Api, member: str) -> list[dict[str, Any]]:
    response = await api.get(f"/v1/members/{member}/entries")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def funded_gold(api: Api, points: int = 600) -> tuple[str, datetime]:
    """A gold member (term from month(-11)) with `points` available; the term's end."""
    qualified = month(-11)
    member = await gold_member(api, qualified)  # the 4 orders earn 200
    if points > 200:
        assert (await api.award(member, points - 200)).status_code == 201
    assert await api.available(member) == points
    return member, months_later(qualified, 12)


def assert_not_eligible(response: httpx.Response) -> None:
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "not_eligible"


class TestKeepWithPoints:
    async def test_spends_the_price_and_moves_the_term_end_forward_from_the_current_end(
        self, api: Api
    ) -> None:
        await api.use_rules(tier_rules())
        member, ends = await funded_gold(api)
        before = datetime.now(UTC)
        response = await keep(api, member, metadata={"channel": "app"})
        assert response.status_code == 201, response.text
        tier = response.json()["tier"]
        assert (tier["code"], tier["grace_ends_at"]) == ("gold", None)
        assert same(tier["since"], month(-11))
        assert same(tier["term_ends_at"], months_later(ends, 12))
        assert await api.available(member) == 100
        entry = (await statement(api, member))[0]
        assert (entry["kind"], entry["points"]) == ("tier_keep", -500)

        view = await tier_of(api, member)
        assert view["tier"] == tier
        change = view["history"][0]
        assert (change["from_tier"], change["to_tier"], change["reason"]) == (
            "gold",
            "gold",
            "kept_with_points",
        )
        assert change["entry_id"] == entry["id"]
        assert same(change["term_ends_at"], months_later(ends, 12))
        assert before <= datetime.fromisoformat(change["effective_at"]) <= datetime.now(UTC)
        # The old end no longer judges anything.
        assert (await evaluate(api, ends + timedelta(days=40)))["changes"] == 0
        assert await code_of(api, member) == "gold"

    async def test_the_answer_is_the_members_tier_view_after_the_keep(self, api: Api) -> None:
        # 201 TierOut: its history is documented as "every change, newest first" and
        # its progress as "null: top"; with a tier above gold, both must say so.
        platinum = {"code": "platinum", "name": "Platinum", "rank": 3, "qualify": {"orders": 10}}
        await api.use_rules(tier_rules([SILVER, GOLD, platinum]))
        member, _ = await funded_gold(api)
        response = await keep(api, member)
        assert response.status_code == 201, response.text
        view = await tier_of(api, member)
        assert response.json()["tier"] == view["tier"]
        assert [c["reason"] for c in response.json()["history"]] == [c["reason"] for c in view["history"]]
        assert (
            response.json()["progress"]
            == view["progress"]
            == {
                "next_tier": "platinum",
                "missing": {"orders": 6},
            }
        )

    async def test_its_entry_cannot_be_reversed(self, api: Api) -> None:
        # The points bought the term's extension: a reversal would give both.
        await api.use_rules(tier_rules())
        member, _ = await funded_gold(api)
        assert (await keep(api, member)).status_code == 201
        entry = (await statement(api, member))[0]
        refused = await api.reverse(entry["id"])
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "entry_not_reversible"
        assert await api.available(member) == 100

    async def test_a_tier_change_marks_the_member_changed_for_orders_in_flight(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        # An order whose facts (the tier) were read before a tier change must find
        # itself stale: every tier change bumps the balance row's version.
        await api.use_rules(tier_rules())
        member, _ = await funded_gold(api)
        query = (
            "SELECT b.version FROM member_balance b JOIN member m ON m.id = b.member_id"
            " WHERE m.external_id = $1"
        )
        before = await db.fetchval(query, member)
        assert (await set_tier(api, member, "silver", "test")).status_code == 200
        assert await db.fetchval(query, member) == before + 1

    async def test_twice_in_a_term_moves_it_twice(self, api: Api) -> None:
        await api.use_rules(tier_rules())
        member, ends = await funded_gold(api, 1000)
        assert (await keep(api, member)).status_code == 201
        second = await keep(api, member)
        assert second.status_code == 201, second.text
        assert same(second.json()["tier"]["term_ends_at"], months_later(ends, 24))
        assert await api.available(member) == 0

    async def test_a_replay_spends_once_and_answers_the_same(self, api: Api, db: asyncpg.Connection) -> None:
        await api.use_rules(tier_rules())
        member, _ = await funded_gold(api, 1200)
        key = unique("keep")
        first = await keep(api, member, idempotency_key=key)
        again = await keep(api, member, idempotency_key=key)
        assert (first.status_code, again.status_code) == (201, 201)
        assert again.json() == first.json()
        assert await api.available(member) == 700
        assert await entries_with_key(db, api.program, key) == 1
        assert [c["reason"] for c in await history(api, member)].count("kept_with_points") == 1
        other = await keep(api, member, idempotency_key=key, metadata={"another": "body"})
        assert other.status_code == 422
        assert other.json()["code"] == "idempotency_key_reused"

    async def test_in_grace_it_saves_the_tier(self, api: Api, clock: MovableClock) -> None:
        await api.use_rules(tier_rules())
        member, ends = await funded_gold(api)
        await evaluate(api, ends + timedelta(days=1))
        assert (await tier_of(api, member))["tier"]["grace_ends_at"] is not None
        move_to(clock, ends + timedelta(days=2))
        response = await keep(api, member)
        assert response.status_code == 201, response.text
        tier = response.json()["tier"]
        assert tier["grace_ends_at"] is None
        assert same(tier["term_ends_at"], months_later(ends, 12))
        found = await evaluate(api, ends + timedelta(days=31))
        assert found["changes"] == 0
        assert await code_of(api, member) == "gold"
        assert (await tier_of(api, member))["tier"]["grace_ends_at"] is None

    async def test_after_the_term_but_within_grace_even_before_the_job_ran(
        self, api: Api, clock: MovableClock
    ) -> None:
        await api.use_rules(tier_rules())
        member, ends = await funded_gold(api)
        move_to(clock, ends + timedelta(days=29))
        response = await keep(api, member)
        assert response.status_code == 201, response.text
        assert same(response.json()["tier"]["term_ends_at"], months_later(ends, 12))
        assert (await evaluate(api, ends + timedelta(days=31)))["changes"] == 0

    async def test_not_enough_points_is_422_and_changes_nothing(self, api: Api) -> None:
        await api.use_rules(tier_rules())
        member, _ = await funded_gold(api, 200)
        before = await tier_of(api, member)
        response = await keep(api, member)
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "insufficient_points"
        after = await tier_of(api, member)
        assert (after["tier"], after["history"]) == (before["tier"], before["history"])
        assert await api.available(member) == 200

    async def test_without_a_tier_or_a_price_for_it_is_not_eligible(self, api: Api) -> None:
        await api.use_rules(tier_rules())
        nobody = await api.enrol()
        assert (await api.award(nobody, 1000)).status_code == 201
        assert_not_eligible(await keep(api, nobody))
        silver = await api.enrol()
        assert (await api.award(silver, 1000)).status_code == 201
        assert (await set_tier(api, silver, "silver", "test", until=month(2))).status_code == 200
        assert_not_eligible(await keep(api, silver))  # operator-set, and silver has no price
        assert await api.available(silver) == 1000

    @pytest.mark.parametrize("until", [False, True])
    async def test_an_operator_set_tier_is_not_eligible(self, api: Api, until: bool) -> None:
        await api.use_rules(tier_rules())
        member, _ = await funded_gold(api)
        set_until = month(3) if until else None
        assert (await set_tier(api, member, "gold", "service recovery", until=set_until)).status_code == 200
        assert_not_eligible(await keep(api, member))
        assert await api.available(member) == 600

    async def test_after_the_term_and_its_grace_it_is_not_eligible(
        self, api: Api, clock: MovableClock
    ) -> None:
        await api.use_rules(tier_rules())
        member, ends = await funded_gold(api)
        move_to(clock, ends + timedelta(days=31))  # the job has not run: still gold on record
        assert await code_of(api, member) == "gold"
        assert_not_eligible(await keep(api, member))
        assert await api.available(member) == 600

    async def test_needs_the_points_burn_scope_and_an_idempotency_key(self, api: Api) -> None:
        await api.use_rules(tier_rules())
        member, _ = await funded_gold(api)
        reader = await api.key_with("members:read")
        assert (await keep(api, member, key=reader)).status_code == 403
        assert (await keep(api, member, idempotency_key=None)).status_code == 400
        burner = await api.key_with("points:burn")
        assert (await keep(api, member, key=burner)).status_code == 201
        unknown = await keep(api, "no-such-member")
        assert (unknown.status_code, unknown.json()["code"]) == (404, "member_not_found")
