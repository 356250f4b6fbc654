from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from app.ledger.repository import STATEMENT
from tests.support import Api, MovableClock


class TestListMemberEntries:
    async def test_newest_first_with_signed_points_and_balance_after(self, api: Api) -> None:
        member, friend = await api.enrol(), await api.enrol()
        await api.award(member, 100)
        await api.redeem(member, 30)
        await api.transfer(member, friend, 20)
        await api.award(member, 5, pending_until="2999-01-01T00:00:00Z")
        items = (await api.get(f"/v1/members/{member}/entries")).json()["items"]
        assert [
            (i["kind"], i["points"], i["pending_points"], i["balance_after"], i["pending_after"])
            for i in items
        ] == [
            ("award", 0, 5, 50, 5),
            ("transfer", -20, 0, 50, 0),
            ("redemption", -30, 0, 70, 0),
            ("award", 100, 0, 100, 0),
        ]
        friend_items = (await api.get(f"/v1/members/{friend}/entries")).json()["items"]
        assert [(i["kind"], i["points"], i["balance_after"]) for i in friend_items] == [("transfer", 20, 20)]

    async def test_cursor_pages_cover_every_entry_once(self, api: Api) -> None:
        member = await api.enrol()
        for points in range(1, 12):
            assert (await api.award(member, points)).status_code == 201
        seen: list[int] = []
        cursor = None
        pages = 0
        while True:
            params = {"limit": "4"} | ({"cursor": cursor} if cursor else {})
            page = (
                await api.client.get(f"/v1/members/{member}/entries", params=params, headers=api.headers())
            ).json()
            seen += [item["points"] for item in page["items"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == list(range(11, 0, -1))
        assert pages == 3

    async def test_pages_of_entries_with_several_postings_each_show_every_entry_once(self, api: Api) -> None:
        # a hold moves points from available to held: two postings on the member
        member = await api.enrol()
        expected: list[tuple[int, int]] = []
        for n in range(1, 8):
            assert (await api.award(member, 10 * n)).status_code == 201
            expected.append((10 * n, 0))
            held = await api.post(f"/v1/members/{member}/holds", {"points": n})
            assert held.status_code == 201, held.text
            expected.append((-n, n))
        for limit in (1, 2, 3, 5):
            seen: list[tuple[int, int]] = []
            cursor = None
            while True:
                params = {"limit": str(limit)} | ({"cursor": cursor} if cursor else {})
                page = (await api.get(f"/v1/members/{member}/entries", **params)).json()
                assert len(page["items"]) <= limit
                seen += [(item["points"], item["held_points"]) for item in page["items"]]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert seen == expected[::-1], limit

    async def test_exact_page_has_no_next_cursor(self, api: Api) -> None:
        member = await api.enrol()
        for _ in range(3):
            await api.award(member, 1)
        page = (await api.get(f"/v1/members/{member}/entries", limit=3)).json()
        assert len(page["items"]) == 3
        assert page["next_cursor"] is None

    async def test_a_cursor_the_service_did_not_issue_is_400(self, api: Api) -> None:
        member = await api.enrol()
        for cursor in ("garbage!", "WyJ4Il0"):
            response = await api.get(f"/v1/members/{member}/entries", cursor=cursor)
            assert (response.status_code, response.json()["code"]) == (400, "invalid_cursor")

    async def test_bad_limit_is_422(self, api: Api) -> None:
        member = await api.enrol()
        for params in (
            {"limit": 0},
            {"limit": 501},
            {"limit": "x"},
        ):
            response = await api.get(f"/v1/members/{member}/entries", **params)
            assert response.status_code == 422, params
            assert response.json()["code"] == "validation_error"

    async def test_unknown_member_is_404(self, api: Api) -> None:
        response = await api.get("/v1/members/ghost/entries")
        assert response.status_code == 404
        assert response.json()["code"] == "member_not_found"

    async def test_needs_members_read(self, api: Api) -> None:
        member = await api.enrol()
        key = await api.key_with("points:earn")
        assert (await api.get(f"/v1/members/{member}/entries", key=key)).status_code == 403


class TestGetMemberBalance:
    async def test_balance_as_of_an_instant(self, api: Api, clock: MovableClock) -> None:
        member = await api.enrol()
        first = (await api.award(member, 100)).json()
        clock.offset = timedelta(minutes=1)
        second = (await api.redeem(member, 40)).json()
        clock.offset = timedelta(minutes=2)
        await api.award(member, 5, pending_until="2999-01-01T00:00:00Z")
        between = datetime.fromisoformat(first["recorded_at"]) + timedelta(seconds=30)
        past = (await api.get(f"/v1/members/{member}/balance", as_of=between.isoformat())).json()
        assert (past["available"], past["pending"]) == (100, 0)
        at_second = (await api.get(f"/v1/members/{member}/balance", as_of=second["recorded_at"])).json()
        assert at_second["available"] == 60
        before = datetime.fromisoformat(first["recorded_at"]) - timedelta(days=1)
        empty = (await api.get(f"/v1/members/{member}/balance", as_of=before.isoformat())).json()
        assert (empty["available"], empty["pending"], empty["held"]) == (0, 0, 0)
        now = (await api.get(f"/v1/members/{member}/balance")).json()
        assert (now["available"], now["pending"]) == (60, 5)

    async def test_as_of_needs_a_timezone(self, api: Api) -> None:
        member = await api.enrol()
        response = await api.get(f"/v1/members/{member}/balance", as_of="2026-01-01T00:00:00")
        assert response.status_code == 422

    async def test_unknown_member_is_404(self, api: Api) -> None:
        for params in ({}, {"as_of": "2020-01-01T00:00:00Z"}):
            response = await api.get("/v1/members/ghost/balance", **params)
            assert response.status_code == 404
            assert response.json()["code"] == "member_not_found"


def _scans(plan: dict[str, Any]) -> list[tuple[str, str | None]]:
    """Every (node type, index name) in an EXPLAIN (FORMAT JSON) plan."""
    found = [(plan["Node Type"], plan.get("Index Name"))]
    for child in plan.get("Plans", []):
        found += _scans(child)
    return found


class TestTheStatementReadsTheIndexAlone:
    """A member's statement reads the member's postings from ix_posting_member_id_id
    alone: on a ledger larger than memory, each posting's heap page read beside it
    is a page from disk (bench/growth.py)."""

    async def test_an_index_only_scan_of_the_members_postings(self, db: asyncpg.Connection) -> None:
        async with db.transaction():
            # A test database is small enough for a sequential scan to win: leave
            # the planner the index alone, and look at how it reads it.
            await db.execute("SET LOCAL enable_seqscan = off")
            await db.execute("SET LOCAL enable_bitmapscan = off")
            explained = await db.fetchval(f"EXPLAIN (FORMAT JSON) {STATEMENT}", 1, 1, 2**63 - 1, 21, 6)
        assert ("Index Only Scan", "ix_posting_member_id_id") in _scans(json.loads(explained)[0]["Plan"])
