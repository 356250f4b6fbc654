"""Requests racing for one hold, each on its own pooled connection."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from tests.holds.helpers import (
    JsonObject,
    capture,
    code,
    funded_member,
    get_hold,
    hold_rows,
    new_hold,
    place,
    release,
    release_holds_job,
)
from tests.support import Api, entries_with_key


def winner_and_loser(first: httpx.Response, second: httpx.Response) -> tuple[httpx.Response, httpx.Response]:
    """Of two closes of one hold, the one that won and the one that found it closed."""
    assert sorted([first.status_code, second.status_code]) == [201, 409], (first.text, second.text)
    won, lost = (first, second) if first.status_code == 201 else (second, first)
    assert lost.json()["code"] == "hold_not_active"
    return won, lost


async def holds_of(api: Api, members: list[str], per_member: int, points: int) -> list[JsonObject]:
    return [await new_hold(api, member, points) for member in members for _ in range(per_member)]


class TestCaptureAndReleaseAtOnce:
    async def test_exactly_one_of_each_pair_wins_and_balances_add_up(self, api: Api) -> None:
        members = [await funded_member(api, 100) for _ in range(2)]
        holds = await holds_of(api, members, 5, 10)
        requests: list[Coroutine[Any, Any, httpx.Response]] = []
        for n, hold in enumerate(holds):
            pair = [capture(api, hold["hold_id"], 6), release(api, hold["hold_id"])]
            requests.extend(pair if n % 2 == 0 else reversed(pair))
        responses = await asyncio.gather(*requests)
        captured = dict.fromkeys(members, 0)
        for n, hold in enumerate(holds):
            first, second = responses[2 * n], responses[2 * n + 1]
            won, _ = winner_and_loser(first, second)
            assert await get_hold(api, hold["hold_id"]) == won.json()
            if won.json()["status"] == "captured":
                assert won.json()["captured_points"] == 6
                captured[hold["member"]] += 6
            else:
                assert won.json()["status"] == "released"
        for member in members:
            balances = await api.balances(member)
            assert balances["held"] == 0
            assert balances["available"] + balances["held"] + captured[member] == 100

    async def test_two_captures_with_different_keys_capture_once(self, api: Api) -> None:
        member = await funded_member(api, 100)
        holds = [await new_hold(api, member, 10) for _ in range(10)]
        responses = await asyncio.gather(
            *(capture(api, hold["hold_id"], points) for hold in holds for points in (4, 7))
        )
        spent = 0
        for n, hold in enumerate(holds):
            won, _ = winner_and_loser(responses[2 * n], responses[2 * n + 1])
            assert await get_hold(api, hold["hold_id"]) == won.json()
            spent += won.json()["captured_points"]
        assert 40 <= spent <= 70
        assert await api.balances(member) == {"available": 100 - spent, "pending": 0, "held": 0, "debt": 0}

    async def test_two_captures_with_one_key_capture_once_and_agree(self, api: Api) -> None:
        member = await funded_member(api, 100)
        holds = [await new_hold(api, member, 10) for _ in range(5)]
        responses = await asyncio.gather(
            *(
                capture(api, hold["hold_id"], 3, idempotency_key=f"twin-{n}")
                for n, hold in enumerate(holds)
                for _ in range(2)
            )
        )
        for n in range(len(holds)):
            first, second = responses[2 * n], responses[2 * n + 1]
            assert (first.status_code, second.status_code) == (201, 201)
            assert first.content == second.content
            assert [
                first.headers.get("Idempotent-Replayed"),
                second.headers.get("Idempotent-Replayed"),
            ].count("true") == 1
        assert await api.balances(member) == {"available": 85, "pending": 0, "held": 0, "debt": 0}


class TestHoldsAtOnce:
    async def test_holds_never_take_more_than_is_available(self, api: Api) -> None:
        member = await funded_member(api, 100)
        responses = await asyncio.gather(*(place(api, member, 30) for _ in range(10)))
        codes = [r.status_code for r in responses]
        assert (codes.count(201), codes.count(422)) == (3, 7)
        assert all(code(r) == (422, "insufficient_points") for r in responses if r.status_code == 422)
        assert await api.balances(member) == {"available": 10, "pending": 0, "held": 90, "debt": 0}

    async def test_identical_requests_with_one_key_hold_once(self, api: Api, db: asyncpg.Connection) -> None:
        member = await funded_member(api, 100)
        responses = await asyncio.gather(
            *(place(api, member, 30, idempotency_key="one-hold") for _ in range(8))
        )
        assert [r.status_code for r in responses] == [201] * 8, [r.text for r in responses]
        assert len({r.content for r in responses}) == 1
        assert sum(1 for r in responses if r.headers.get("Idempotent-Replayed") == "true") == 7
        assert await api.balances(member) == {"available": 70, "pending": 0, "held": 30, "debt": 0}
        assert await hold_rows(db, api.program) == 1
        assert await entries_with_key(db, api.program, "one-hold") == 1


class TestOneKeyForDifferentRequestsAtOnce:
    async def test_two_holds_with_one_key_and_different_points(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        member = await funded_member(api, 1000)
        for n in range(5):
            first, second = await asyncio.gather(
                place(api, member, 30, idempotency_key=f"clash-{n}"),
                place(api, member, 31, idempotency_key=f"clash-{n}"),
            )
            assert sorted([first.status_code, second.status_code]) == [201, 422], (first.text, second.text)
            refused = first if first.status_code == 422 else second
            assert refused.json()["code"] == "idempotency_key_reused"
        held = (await api.balances(member))["held"]
        assert 150 <= held <= 155
        assert await hold_rows(db, api.program) == 5

    async def test_captures_of_two_holds_with_one_key(self, api: Api) -> None:
        member = await funded_member(api, 100)
        for n in range(5):
            one, two = await new_hold(api, member, 10), await new_hold(api, member, 10)
            first, second = await asyncio.gather(
                capture(api, one["hold_id"], idempotency_key=f"cap-clash-{n}"),
                capture(api, two["hold_id"], idempotency_key=f"cap-clash-{n}"),
            )
            assert sorted([first.status_code, second.status_code]) == [201, 422], (first.text, second.text)
            refused, lost = (first, one) if first.status_code == 422 else (second, two)
            assert refused.json()["code"] == "idempotency_key_reused"
            assert (await get_hold(api, lost["hold_id"]))["status"] == "active"
            assert (await release(api, lost["hold_id"])).status_code == 201
        assert await api.balances(member) == {"available": 50, "pending": 0, "held": 0, "debt": 0}


class TestJobAndCaptureAtOnce:
    async def test_each_hold_is_either_captured_or_expired(self, api: Api) -> None:
        member = await funded_member(api, 100)
        holds = [await new_hold(api, member, 10) for _ in range(10)]
        as_of = datetime.now(UTC) + timedelta(hours=1)
        summary, captures = await asyncio.gather(
            release_holds_job(api, as_of), asyncio.gather(*(capture(api, hold["hold_id"]) for hold in holds))
        )
        expired = 0
        for hold, response in zip(holds, captures, strict=True):
            state = await get_hold(api, hold["hold_id"])
            if response.status_code == 201:
                assert state["status"] == "captured"
            else:
                assert code(response) == (409, "hold_not_active")
                assert state["status"] == "expired"
                expired += 1
        assert summary["counts"] == {"holds": expired, "points": 10 * expired}
        assert await api.balances(member) == {
            "available": 10 * expired,
            "pending": 0,
            "held": 0,
            "debt": 0,
        }
