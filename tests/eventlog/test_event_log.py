"""GET /v1/events: every event of the program once, in chain order, with no gap;
non-entry events written with their change (and never without it); filters,
cursors, scopes, and other programs."""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.support import Api, chain_program
from tests.tiers.helpers import set_tier, tier_rules


async def page(api: Api, **params: Any) -> dict[str, Any]:
    response = await api.get("/v1/events", **params)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def everything(api: Api, limit: int = 3) -> list[dict[str, Any]]:
    """A consumer's catch-up from the start, page by page."""
    seen: list[dict[str, Any]] = []
    found = await page(api, after=0, limit=limit)
    while True:
        seen += found["items"]
        if found["next_cursor"] is None:
            return seen
        found = await page(api, cursor=found["next_cursor"], limit=limit)


async def test_a_consumer_reads_every_event_once_in_order(api: Api, db: asyncpg.Connection) -> None:
    alice, bob = await api.enrol(), await api.enrol()
    awarded = (await api.award(alice, 100)).json()
    await api.redeem(alice, 30)
    await api.transfer(alice, bob, 20)
    assert (await page(api))["items"] == []  # nothing is in the log before the chainer placed it
    await chain_program(db, api.program)

    events = await everything(api)
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    assert len({e["id"] for e in events}) == len(events)
    assert [e["type"] for e in events] == [
        "rules.activated",  # the program's first rules version
        "member.created",
        "member.created",
        "points.award",
        "points.redemption",
        "points.transfer",
    ]
    assert [e["data"] for e in events[:3]] == [
        {"version": 1},
        {"member": alice, "enrolled_at": events[1]["data"]["enrolled_at"], "referred_by": None},
        {"member": bob, "enrolled_at": events[2]["data"]["enrolled_at"], "referred_by": None},
    ]
    award = events[3]
    assert award["data"] == (await api.get(f"/v1/entries/{awarded['id']}")).json()
    assert (award["data"]["sequence"], award["data"]["hash"]) != (None, None)
    assert award["occurred_at"] == awarded["occurred_at"]

    # resuming after the last sequence seen: only what came since
    await api.award(bob, 1)
    await chain_program(db, api.program)
    since = (await page(api, after=events[-1]["sequence"]))["items"]
    assert [(e["sequence"], e["type"]) for e in since] == [(7, "points.award")]
    assert (await page(api, after=7))["items"] == []


async def test_member_and_tier_events(api: Api, db: asyncpg.Connection) -> None:
    await api.use_rules(tier_rules())
    member = await api.enrol("evt-tier-1")
    patched = await api.client.patch(
        f"/v1/members/{member}", json={"metadata": {"locale": "fr"}}, headers=api.headers()
    )
    assert patched.status_code == 200, patched.text
    assert (await set_tier(api, member, "gold", "founding member")).status_code == 200
    await chain_program(db, api.program)
    found = {e["type"]: e["data"] for e in (await page(api, member=member))["items"]}
    assert found["member.updated"] == {"member": member, "fields": ["metadata"]}
    changed = found["tier.changed"]
    assert (changed["member"], changed["from"], changed["to"], changed["reason"]) == (
        member,
        None,
        "gold",
        "override",
    )
    assert "term_ends_at" in changed
    activations = (await page(api, type="rules.activated"))["items"]
    assert [e["data"]["version"] for e in activations] == [1, 2]


async def test_a_refused_change_leaves_no_event(api: Api, db: asyncpg.Connection) -> None:
    member = await api.enrol()
    again = await api.post("/v1/members", {"external_id": member}, idempotency_key=None)
    assert again.status_code == 409
    refused = await api.redeem(member, 10)
    assert refused.status_code == 422
    await chain_program(db, api.program)
    assert [e["type"] for e in (await page(api))["items"]] == ["rules.activated", "member.created"]
    unsequenced = await db.fetchval(
        "SELECT count(*) FROM event_log l JOIN program p ON p.id = l.program_id"
        " WHERE p.code = $1 AND l.sequence IS NULL",
        api.program,
    )
    assert unsequenced == 0


async def test_filters_by_type_and_member(api: Api, db: asyncpg.Connection) -> None:
    alice, bob, carol = await api.enrol(), await api.enrol(), await api.enrol()
    await api.award(alice, 50)
    await api.transfer(alice, bob, 5)
    await api.award(carol, 7)
    await chain_program(db, api.program)
    points = (await page(api, type="points.*"))["items"]
    assert [e["type"] for e in points] == ["points.award", "points.transfer", "points.award"]
    mixed = (await page(api, type="member.created,points.transfer"))["items"]
    assert [e["type"] for e in mixed] == ["member.created"] * 3 + ["points.transfer"]
    bobs = (await page(api, member=bob))["items"]
    assert [e["type"] for e in bobs] == ["member.created", "points.transfer"]
    sequences = [e["sequence"] for e in (await page(api, member=alice, type="points.*"))["items"]]
    assert sequences == sorted(sequences)
    assert len(sequences) == 2
    for bad in ("points.nope", "bogus.*", "POINTS.*"):
        refused = await api.get("/v1/events", type=bad)
        assert (refused.status_code, refused.json()["code"]) == (422, "validation_error"), bad
    missing = await api.get("/v1/events", member="nobody-here")
    assert (missing.status_code, missing.json()["code"]) == (404, "member_not_found")


async def test_other_programs_cursors_and_scopes(api: Api, other: Api, db: asyncpg.Connection) -> None:
    await other.award(await other.enrol(), 5)
    await api.award(await api.enrol(), 5)
    await chain_program(db, api.program)
    await chain_program(db, other.program)
    mine = await everything(api)
    theirs = await everything(other)
    assert not {e["id"] for e in mine} & {e["id"] for e in theirs}
    assert [e["sequence"] for e in theirs] == [1, 2, 3]

    first = await page(api, limit=1)
    assert first["next_cursor"] is not None
    forged = await api.get("/v1/events", cursor=first["next_cursor"] + "x")
    assert (forged.status_code, forged.json()["code"]) == (400, "invalid_cursor")
    other_list = await api.get("/v1/events", cursor=first["next_cursor"], type="points.*")
    assert (other_list.status_code, other_list.json()["code"]) == (400, "invalid_cursor")

    reader = await api.key_with("events:read")
    assert (await api.get("/v1/events", key=reader)).status_code == 200
    refused = await api.get("/v1/events", key=await api.key_with("members:read"))
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
