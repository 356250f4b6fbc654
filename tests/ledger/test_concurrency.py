"""Concurrent requests over separate database connections (the app's pool)."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.support import Api, entries_with_key


class TestConcurrentRequests:
    async def test_thirty_redemptions_of_ten_against_one_hundred(self, api: Api) -> None:
        member = await api.enrol()
        await api.award(member, 100)
        responses = await asyncio.gather(*(api.redeem(member, 10) for _ in range(30)))
        codes = [r.status_code for r in responses]
        assert codes.count(201) == 10
        assert codes.count(422) == 20
        assert all(r.json()["code"] == "insufficient_points" for r in responses if r.status_code == 422)
        assert await api.available(member) == 0
        statement = (await api.get(f"/v1/members/{member}/entries", limit=100)).json()["items"]
        assert [i["balance_after"] for i in statement if i["kind"] == "redemption"] == list(range(0, 100, 10))

    async def test_twelve_identical_requests_with_one_key_write_one_entry(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        member = await api.enrol()
        body = {"points": 25, "reason": "checkout retry storm"}
        responses = await asyncio.gather(
            *(api.post(f"/v1/members/{member}/awards", body, idempotency_key="storm") for _ in range(12))
        )
        assert {r.status_code for r in responses} == {201}
        assert len({r.content for r in responses}) == 1
        assert sum(1 for r in responses if r.headers.get("Idempotent-Replayed") == "true") == 11
        assert await api.available(member) == 25
        assert await entries_with_key(db, api.program, "storm") == 1

    async def test_opposite_transfers_all_complete(self, api: Api) -> None:
        alice, bob = await api.enrol(), await api.enrol()
        await api.award(alice, 100)
        await api.award(bob, 100)
        there = [api.transfer(alice, bob, 3) for _ in range(15)]
        back = [api.transfer(bob, alice, 2) for _ in range(15)]
        responses = await asyncio.gather(*(x for pair in zip(there, back, strict=True) for x in pair))
        assert [r.status_code for r in responses] == [201] * 30
        assert (await api.available(alice), await api.available(bob)) == (100 - 15, 100 + 15)

    async def test_awards_to_many_members_run_side_by_side(self, api: Api) -> None:
        members = [await api.enrol() for _ in range(20)]
        responses = await asyncio.gather(*(api.award(m, 10) for m in members for _ in range(2)))
        assert all(r.status_code == 201 for r in responses)
        assert [await api.available(m) for m in members] == [20] * 20
