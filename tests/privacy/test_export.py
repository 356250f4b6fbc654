"""GET /v1/members/{id}/export: everything held about a member, as one document."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest

from app.ledger.verify import verify
from app.privacy import service
from tests.support import Api, chain_program, program_id, unique


async def sound(db: asyncpg.Connection) -> dict[str, list[str]]:
    return {outcome.name: outcome.examples for outcome in await verify(db) if outcome.mismatches}


async def member_entry_ids(db: asyncpg.Connection, program: str, member: str) -> set[str]:
    rows = await db.fetch(
        "SELECT DISTINCT p.entry_id::text AS id FROM posting p"
        " JOIN member m ON m.program_id = p.program_id AND m.id = p.member_id"
        " WHERE m.program_id = $1 AND m.external_id = $2",
        await program_id(db, program),
        member,
    )
    return {row["id"] for row in rows}


async def exported(api: Api, member: str) -> Any:
    response = await api.get(f"/v1/members/{member}/export")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return json.loads(response.content)


class TestExportMember:
    async def test_holds_every_entry_with_its_postings_across_pages(
        self, api: Api, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Pages of 3 rows, chunks of ~100 bytes: every section is read in many pages, and the cursors must
        # neither skip nor repeat a row.
        monkeypatch.setattr(service, "EXPORT_PAGE", 3)
        monkeypatch.setattr(service, "CHUNK_BYTES", 100)  # and sent in many chunks
        member = await api.enrol(birthday="1990-04-17", metadata={"city": "Berlin"})
        friend = await api.enrol(referred_by=member)
        for points in range(1, 12):
            assert (await api.award(member, points)).status_code == 201
        redemption = await api.redeem(member, 5)
        assert (await api.reverse(redemption.json()["id"])).status_code == 201
        assert (await api.transfer(member, friend, 7)).status_code == 201
        assert (await api.transfer(friend, member, 2)).status_code == 201
        hold = await api.post(f"/v1/members/{member}/holds", {"points": 4})
        assert hold.status_code == 201, hold.text
        await api.award(friend, 100)  # not the member's: not in its export
        await chain_program(db, api.program)

        document = await exported(api, member)

        expected = await member_entry_ids(db, api.program, member)
        assert len(expected) == 16
        ids = [entry["id"] for entry in document["entries"]]
        assert len(ids) == len(set(ids))
        assert set(ids) == expected
        # newest first, each with its postings and its place in the chain
        statement = (await api.get(f"/v1/members/{member}/entries", limit=500)).json()["items"]
        assert ids == [item["id"] for item in statement]
        for entry in document["entries"]:
            assert sum(posting["points"] for posting in entry["postings"]) == 0
            assert any(posting["member"] == member for posting in entry["postings"])
            assert entry["sequence"] is not None
            assert entry["hash"] is not None
        assert document["format"] == "points-ledger.member-export.v1"
        assert document["complete"] is True
        profile = document["member"]
        assert profile["external_id"] == member
        assert profile["birthday"] == "1990-04-17"
        assert profile["metadata"] == {"city": "Berlin"}
        assert profile["balances"] == await api.balances(member)
        assert document["erasure"] is None
        assert [h["hold_id"] for h in document["holds"]] == [hold.json()["hold_id"]]
        lots = document["lots"]
        assert sum(lot["remaining"] for lot in lots) == profile["balances"]["available"]
        # the events about the member, in sequence order, its enrolment first
        events = document["events"]
        sequences = [event["sequence"] for event in events]
        assert sequences == sorted(sequences)
        assert len(set(sequences)) == len(sequences)
        assert events[0]["type"] == "member.created"
        entry_events = {e["data"]["id"] for e in events if e["type"].startswith("points.")}
        assert entry_events == expected
        assert await sound(db) == {}

    async def test_orders_refunds_and_tier_history(self, api: Api, db: asyncpg.Connection) -> None:
        await api.use_rules(
            {
                "timezone": "UTC",
                "currency": "EUR",
                "earn": {"base": {"points": 1, "per": "1.00", "rounding": "floor"}},
                "tiers": [{"code": "silver", "name": "Silver", "rank": 1, "qualify": {"orders": 1}}],
                "tier_policy": {"window": "lifetime", "term_months": 12},
            }
        )
        member = await api.enrol()
        order_id = unique("o")
        assert (await api.order(member, "40.00", order_id=order_id)).status_code == 201
        refund = await api.refund(order_id, amount={"amount": "10.00", "currency": "EUR"})
        assert refund.status_code == 201, refund.text

        document = await exported(api, member)

        (order,) = document["orders"]
        assert order["order_id"] == order_id
        assert [r["points_reversed"] for r in order["refunds"]] == [10]
        assert document["tier"]["tier"]["code"] == "silver"
        assert [change["to_tier"] for change in document["tier_history"]] == ["silver"]
        assert await member_entry_ids(db, api.program, member) == {e["id"] for e in document["entries"]}

    async def test_a_member_with_nothing(self, api: Api) -> None:
        member = await api.enrol()
        document = await exported(api, member)
        for section in (
            "lots",
            "entries",
            "holds",
            "orders",
            "conversions",
            "tier_history",
            "status_history",
        ):
            assert document[section] == [], section
        assert document["complete"] is True

    async def test_unknown_member_is_404(self, api: Api) -> None:
        response = await api.get("/v1/members/nobody/export")
        assert response.status_code == 404
        assert response.json()["code"] == "member_not_found"

    async def test_needs_admin(self, api: Api) -> None:
        member = await api.enrol()
        key = await api.key_with("members:read", "events:read")
        response = await api.get(f"/v1/members/{member}/export", key=key)
        assert response.status_code == 403
        assert response.json()["code"] == "forbidden"

    async def test_another_programs_key_gets_404(self, api: Api, other: Api) -> None:
        member = await api.enrol()
        response = await other.get(f"/v1/members/{member}/export")
        assert response.status_code == 404
