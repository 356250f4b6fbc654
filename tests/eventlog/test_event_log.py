"""GET /v1/events: every event of the program once, in chain order, dense from 1;
nothing before the chainer placed it; `points.*` data as GET /v1/entries/{id}
shows the entry; member, tier and rules events written with their change (and
never without it); filters, cursors, scopes, and other programs."""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from app.ledger.chain import chain_batch
from app.outbox import emit
from tests.support import Api, chain_program, dsn, program_id, unique, waiting_for_chainer
from tests.tiers.helpers import history, order, set_tier, tier_rules

Event = dict[str, Any]
FIELDS = {"id", "type", "sequence", "occurred_at", "created_at", "data"}


async def page(api: Api, *, key: str | None = None, **params: Any) -> dict[str, Any]:
    response = await api.get("/v1/events", key=key, **params)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    assert set(found) == {"items", "next_cursor"}
    for event in found["items"]:
        assert set(event) == FIELDS, event
        assert isinstance(event["data"], dict), event
    return found


async def items(api: Api, **params: Any) -> list[Event]:
    """One page (of up to 500) of the log."""
    found: list[Event] = (await page(api, limit=500, **params))["items"]
    return found


async def by_cursor(api: Api, limit: int, **params: Any) -> list[Event]:
    """A consumer's catch-up from after=0, following next_cursor page by page."""
    found = await page(api, after=0, limit=limit, **params)
    seen: list[Event] = list(found["items"])
    while found["next_cursor"] is not None:
        assert len(found["items"]) == limit  # only a full page has a next one
        found = await page(api, cursor=found["next_cursor"], limit=limit, **params)
        assert found["items"], "a next_cursor led to an empty page"
        seen += found["items"]
        assert len(seen) < 10_000
    assert len(found["items"]) <= limit
    return seen


async def by_after(api: Api, limit: int, **params: Any) -> list[Event]:
    """A consumer that keeps only the last sequence it saw and asks with ?after=."""
    seen: list[Event] = []
    last = 0
    while batch := (await page(api, after=last, limit=limit, **params))["items"]:
        assert len(batch) <= limit
        seen += batch
        last = batch[-1]["sequence"]
        assert len(seen) < 10_000
    return seen


def sequences(events: list[Event]) -> list[int]:
    return [event["sequence"] for event in events]


def types(events: list[Event]) -> list[str]:
    return [event["type"] for event in events]


def instant(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


async def entry(api: Api, entry_id: str) -> dict[str, Any]:
    response = await api.get(f"/v1/entries/{entry_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def posted(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    found: dict[str, Any] = response.json()
    return found


async def patch_member(api: Api, member: str, body: dict[str, Any]) -> int:
    response = await api.client.patch(f"/v1/members/{member}", json=body, headers=api.headers())
    return response.status_code


async def member_view(api: Api, member: str) -> dict[str, Any]:
    response = await api.get(f"/v1/members/{member}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def unsequenced(db: asyncpg.Connection, program: str) -> int:
    """Events of the program written (committed) but not yet in its sequence."""
    count = await db.fetchval(
        "SELECT count(*) FROM event_log WHERE program_id = $1 AND sequence IS NULL",
        await program_id(db, program),
    )
    return int(count)


async def settled(db: asyncpg.Connection, program: str) -> bool:
    """Nothing of the program committed waits for the chainer: no entry, no event."""
    return await waiting_for_chainer(db, await program_id(db, program)) == 0


def assert_refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["code"] == code, response.text


# -- reading the whole log --------------------------------------------------------------


async def test_a_consumer_from_after_0_reads_every_event_once_in_order_dense_from_1(
    api: Api, db: asyncpg.Connection
) -> None:
    alice, bob = await api.enrol(), await api.enrol()
    awarded = posted(await api.award(alice, 100))
    redeemed = posted(await api.redeem(alice, 30))
    transferred = posted(await api.transfer(alice, bob, 20))
    assert await patch_member(api, bob, {"birthday": "1990-04-17"}) == 200
    assert await chain_program(db, api.program) == 3

    events = await items(api)
    assert sequences(events) == [1, 2, 3, 4, 5, 6, 7]
    assert len({event["id"] for event in events}) == 7
    assert types(events) == [
        "rules.activated",  # the program's version 1, active from its creation
        "member.created",
        "member.created",
        "points.award",
        "points.redemption",
        "points.transfer",
        "member.updated",
    ]
    assert [event["data"].get("member") for event in events[1:3]] == [alice, bob]

    # the same list, however the consumer pages through it
    for limit in (1, 2, 3, 6, 7, 8, 500):
        assert await by_cursor(api, limit) == events, limit
        assert await by_after(api, limit) == events, limit
    first = await page(api, limit=3)
    assert sequences(first["items"]) == [1, 2, 3]
    assert first["next_cursor"] is not None
    second = await page(api, limit=3, cursor=first["next_cursor"])
    assert sequences(second["items"]) == [4, 5, 6]
    third = await page(api, limit=3, cursor=second["next_cursor"])
    assert (sequences(third["items"]), third["next_cursor"]) == ([7], None)
    exact = await page(api, limit=7)
    assert exact["next_cursor"] is None  # the page reached the end of the log
    assert sequences((await page(api, after=2, limit=2))["items"]) == [3, 4]  # after is exclusive

    # points.* data: the entry exactly as GET /v1/entries/{id} shows it, chained
    previous = bytes(32)
    for event, made in zip(events[3:6], (awarded, redeemed, transferred), strict=True):
        shown = await entry(api, made["id"])
        assert event["data"] == shown
        assert shown["id"] == made["id"]
        assert shown["sequence"] is not None
        assert shown["hash"] is not None
        assert (event["data"]["sequence"], event["data"]["hash"]) == (shown["sequence"], shown["hash"])
        assert hashlib.sha256(previous + shown["canonical"].encode()).hexdigest() == shown["hash"]
        previous = bytes.fromhex(shown["hash"])
        assert (instant(event["occurred_at"]), instant(event["created_at"])) == (
            instant(shown["occurred_at"]),
            instant(shown["recorded_at"]),
        )
    assert [event["data"]["sequence"] for event in events[3:6]] == [1, 2, 3]
    award = events[3]["data"]
    assert (award["kind"], award["points"]) == ("award", 100)
    assert award["balances"] == [{"member": alice, "available": 100, "pending": 0, "held": 0}]
    assert {b["member"]: b["available"] for b in events[5]["data"]["balances"]} == {alice: 50, bob: 20}
    head = (await api.get("/v1/ledger/head")).json()
    assert (head["sequence"], head["hash"]) == (3, events[5]["data"]["hash"])

    # resuming after the last sequence seen: only what came since, nothing twice
    await api.award(bob, 1)
    await chain_program(db, api.program)
    since = await items(api, after=events[-1]["sequence"])
    assert [(event["sequence"], event["type"]) for event in since] == [(8, "points.award")]
    assert since[0]["data"]["sequence"] == 4
    assert await items(api, after=8) == []
    assert await items(api, after=1000) == []
    assert await by_cursor(api, 2) == events + since


async def test_events_are_invisible_until_the_chainer_gives_them_their_sequence(
    api: Api, db: asyncpg.Connection
) -> None:
    alice = await api.enrol()
    # committed (the outbox holds rules.activated and member.created) but not yet placed
    assert await unsequenced(db, api.program) == 2
    assert await items(api) == []
    await api.award(alice, 10)
    assert await items(api) == []
    assert await page(api, limit=1) == {"items": [], "next_cursor": None}
    assert await chain_program(db, api.program) == 1
    assert await unsequenced(db, api.program) == 0
    assert types(await items(api)) == ["rules.activated", "member.created", "points.award"]

    await api.award(alice, 5)
    assert await items(api, after=3) == []
    await chain_program(db, api.program)
    assert [(e["sequence"], e["type"]) for e in await items(api, after=3)] == [(4, "points.award")]

    # a transaction older than the change holds it back: nothing may later go before it
    blocker = await asyncpg.connect(dsn())
    try:
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.fetchval("SELECT pg_current_xact_id()")
        bob = await api.enrol()
        await api.award(bob, 7)
        await chain_program(db, api.program, settle=0)
        assert await items(api, after=4) == []
        assert await unsequenced(db, api.program) == 1
        await transaction.rollback()
    finally:
        await blocker.close()
    await chain_program(db, api.program)
    later = await items(api, after=4)
    assert [(e["sequence"], e["type"]) for e in later] == [(5, "member.created"), (6, "points.award")]
    assert later[0]["data"]["member"] == bob


async def test_a_consumer_polling_while_changes_and_the_chainer_run_misses_nothing(
    api: Api, db: asyncpg.Connection
) -> None:
    members = [await api.enrol() for _ in range(4)]
    done = asyncio.Event()
    seen: list[Event] = []

    async def write(member: str) -> None:
        for round_ in range(6):
            assert (await api.award(member, 10)).status_code == 201
            if round_ % 2:
                assert await patch_member(api, member, {"metadata": {"round": round_}}) == 200
        await api.enrol()

    async def chainer() -> None:
        connection = await asyncpg.connect(dsn())
        try:
            while not done.is_set():
                await chain_program(connection, api.program, settle=0)
                await asyncio.sleep(0.01)
        finally:
            await connection.close()

    async def consumer() -> None:
        last = 0
        while True:
            batch = (await page(api, after=last, limit=4))["items"]
            if batch:
                assert sequences(batch) == list(range(last + 1, last + 1 + len(batch))), "a gap"
                seen.extend(batch)
                last = batch[-1]["sequence"]
            elif done.is_set():
                return
            await asyncio.sleep(0.005)

    chaining, reading = asyncio.create_task(chainer()), asyncio.create_task(consumer())
    try:
        await asyncio.gather(*(write(member) for member in members))
    finally:
        done.set()
        await chaining
    await chain_program(db, api.program)
    await reading
    # one last catch-up after the final chaining
    seen += await items(api, after=seen[-1]["sequence"] if seen else 0)

    assert seen == await items(api)
    assert sequences(seen) == list(range(1, len(seen) + 1))
    assert types(seen).count("points.award") == 24
    assert types(seen).count("member.updated") == 12
    assert types(seen).count("member.created") == 8
    # chain order: each member's enrolment before anything of theirs, entries in chain order
    awards = [e["data"]["sequence"] for e in seen if e["type"] == "points.award"]
    assert awards == list(range(1, 25))
    for member in members:
        mine = [e for e in seen if member in (e["data"].get("member"), *_posting_members(e))]
        assert mine[0]["type"] == "member.created"
        balances = [
            b["available"] for e in mine if e["type"] == "points.award" for b in e["data"]["balances"]
        ]
        assert balances == [10, 20, 30, 40, 50, 60]


def _posting_members(event: Event) -> list[str]:
    return [p["member"] for p in event["data"].get("postings", []) if p["member"] is not None]


async def test_the_chainers_batch_size_never_changes_the_log(
    api: Api, other: Api, db: asyncpg.Connection
) -> None:
    """The same changes in two programs, one chained 500 at a time, the other one
    item at a time (a batch ends in the middle of a transaction's entries and events):
    the same log."""
    alice, bob = unique("a"), unique("b")
    for program in (api, other):
        await program.use_rules(tier_rules())
        await program.enrol(alice)
        await program.enrol(bob)
        await program.award(alice, 40)
        now = datetime.now(UTC)
        await order(program, bob, "10.00", now - timedelta(hours=2))
        await order(program, bob, "10.00", now - timedelta(hours=1))  # an entry and a tier change
        await program.transfer(alice, bob, 5)
        assert await patch_member(program, alice, {"metadata": {"x": 1}}) == 200
        assert (await set_tier(program, alice, "gold", "vip")).status_code == 200
    await chain_program(db, api.program)
    pid = await program_id(db, other.program)
    deadline = time.monotonic() + 10
    while await chain_batch(db, pid, datetime.now(UTC), batch=1) > 0 or not await settled(db, other.program):
        assert time.monotonic() < deadline, "the chainer was held back too long"
        await asyncio.sleep(0.02)

    def shape(event: Event) -> tuple[Any, ...]:
        data = event["data"]
        if event["type"].startswith("points."):
            return (event["sequence"], event["type"], data["sequence"], data["points"], data["balances"])
        # instants differ between the two programs' runs
        return (event["sequence"], event["type"], {k: v for k, v in data.items() if not k.endswith("_at")})

    whole, one_by_one = await items(api), await items(other)
    assert sequences(whole) == list(range(1, 12))
    assert [shape(e) for e in one_by_one] == [shape(e) for e in whole]
    assert types(whole)[6:8] == ["points.earn", "tier.changed"]


# -- what each change writes --------------------------------------------------------------


async def test_a_new_programs_first_event_is_its_rules_version_1_then_member_and_rules_events(
    api: Api, db: asyncpg.Connection
) -> None:
    await chain_program(db, api.program)
    [first] = await items(api)
    assert (first["sequence"], first["type"], first["data"]) == (1, "rules.activated", {"version": 1})
    rules = (await api.get("/v1/rules/1")).json()
    assert instant(first["occurred_at"]) == instant(rules["activated_at"])

    alice = await api.enrol()
    joined = datetime(2026, 1, 5, 9, 30, 15, 250000, tzinfo=UTC)
    bob = await api.enrol(referred_by=alice, enrolled_at=joined.isoformat().replace("+00:00", "Z"))
    before = datetime.now(UTC)
    assert await patch_member(api, bob, {"birthday": "1990-04-17", "metadata": {"city": "Berlin"}}) == 200
    assert await patch_member(api, bob, {"metadata": {"city": None}}) == 200
    assert await patch_member(api, bob, {}) == 200  # sets nothing: no event
    assert await patch_member(api, "nobody-such", {"birthday": "1990-04-17"}) == 404
    assert await patch_member(api, bob, {"nickname": "b"}) == 422
    assert await api.use_rules(tier_rules()) == 2
    stored = await api.post("/v1/rules", tier_rules(), idempotency_key=None)  # stored, not active
    assert stored.status_code == 201, stored.text
    again = await api.post("/v1/rules/2/activate", {}, idempotency_key=None)  # already active
    assert again.status_code == 200, again.text
    missing = await api.post("/v1/rules/99/activate", {}, idempotency_key=None)
    assert missing.status_code == 404, missing.text
    await api.post("/v1/rules/3/activate", {}, idempotency_key=None)
    await chain_program(db, api.program)

    events = await items(api)
    assert sequences(events) == list(range(1, 8))
    assert [(e["type"], e["data"]) for e in events[1:]] == [
        (
            "member.created",
            {"member": alice, "enrolled_at": events[1]["data"]["enrolled_at"], "referred_by": None},
        ),
        (
            "member.created",
            {"member": bob, "enrolled_at": events[2]["data"]["enrolled_at"], "referred_by": alice},
        ),
        ("member.updated", {"member": bob, "fields": ["birthday", "metadata"]}),
        ("member.updated", {"member": bob, "fields": ["metadata"]}),
        ("rules.activated", {"version": 2}),
        ("rules.activated", {"version": 3}),
        # nothing for v3's storing, v2's second activation, or the refused calls
    ]
    created = events[2]
    assert instant(created["occurred_at"]) == joined == instant(created["data"]["enrolled_at"])
    assert instant(created["data"]["enrolled_at"]) == instant((await member_view(api, bob))["enrolled_at"])
    created_at = instant(created["created_at"])
    assert created_at is not None
    assert created_at < before
    updated_at = instant(events[3]["occurred_at"])
    assert updated_at is not None
    assert updated_at >= before
    assert events[5]["data"] == {"version": 2}
    assert instant(events[5]["occurred_at"]) == instant((await api.get("/v1/rules/2")).json()["activated_at"])


async def test_member_created_writes_enrolled_at_in_utc_like_the_member_view(
    api: Api, db: asyncpg.Connection
) -> None:
    """Every instant the API answers is UTC (`...Z`), the event's own occurred_at
    among them; data.enrolled_at should be too, whatever offset the enrolment named."""
    member = await api.enrol(enrolled_at="2026-01-01T12:00:00.5+02:00")
    await chain_program(db, api.program)
    [created] = await items(api, type="member.created")
    shown = (await member_view(api, member))["enrolled_at"]
    assert shown == "2026-01-01T10:00:00.500000Z"
    assert created["occurred_at"] == shown
    assert created["data"]["enrolled_at"] == shown


async def test_every_tier_change_is_a_tier_changed_event(api: Api, db: asyncpg.Connection) -> None:
    await api.use_rules(tier_rules())  # silver after 2 orders, gold after 4 and 200.00
    member = await api.enrol()
    now = datetime.now(UTC)
    await order(api, member, "10.00", now - timedelta(hours=2))
    second = await order(api, member, "10.00", now - timedelta(hours=1))
    until = (now + timedelta(days=30)).replace(microsecond=0)
    assert (await set_tier(api, member, "gold", "service recovery", until=until)).status_code == 200
    assert (await set_tier(api, member, None, "fraud review")).status_code == 200
    assert (await set_tier(api, member, None, "again")).status_code == 200  # no change: no event
    refused = await set_tier(api, member, "diamond", "no such tier")
    assert refused.status_code == 422, refused.text
    await chain_program(db, api.program)

    mine = await items(api, member=member)
    assert types(mine) == [
        "member.created",
        "points.earn",
        "points.earn",
        "tier.changed",  # written with the second order: right after its entry
        "tier.changed",
        "tier.changed",
    ]
    changes = [e["data"] for e in mine if e["type"] == "tier.changed"]
    for change in changes:
        assert set(change) == {"member", "from", "to", "reason", "term_ends_at"}
    assert [(c["member"], c["from"], c["to"], c["reason"]) for c in changes] == [
        (member, None, "silver", "qualified"),
        (member, "silver", "gold", "override"),
        (member, "gold", None, "override"),
    ]
    # the same changes as the member's tier history (newest first there)
    past = list(reversed(await history(api, member)))
    assert [(h["from_tier"], h["to_tier"], h["reason"]) for h in past] == [
        (c["from"], c["to"], c["reason"]) for c in changes
    ]
    for event, change in zip([e for e in mine if e["type"] == "tier.changed"], past, strict=True):
        assert instant(event["data"]["term_ends_at"]) == instant(change["term_ends_at"])
        assert instant(event["occurred_at"]) == instant(change["effective_at"])
        assert instant(event["created_at"]) == instant(change["recorded_at"])
    assert instant(changes[0]["term_ends_at"]) is not None
    assert past[0]["entry_id"] == mine[2]["data"]["id"]  # qualified by the second order's entry
    assert mine[2]["data"]["order_id"] == second["order_id"]
    assert instant(changes[1]["term_ends_at"]) == until
    assert changes[2]["term_ends_at"] is None

    both = await items(api, type="member.created,tier.changed")
    assert types(both) == ["member.created", "tier.changed", "tier.changed", "tier.changed"]
    assert [e["sequence"] for e in both] == sorted(e["sequence"] for e in both)


async def test_a_refused_or_rolled_back_change_leaves_no_event(api: Api, db: asyncpg.Connection) -> None:
    alice, bob = await api.enrol(), await api.enrol()
    await chain_program(db, api.program)
    start = await items(api)
    assert types(start) == ["rules.activated", "member.created", "member.created"]

    assert_refused(
        await api.post("/v1/members", {"external_id": alice}, idempotency_key=None), 409, "member_exists"
    )
    referred = await api.post(
        "/v1/members", {"external_id": unique("m"), "referred_by": "nobody"}, idempotency_key=None
    )
    assert referred.status_code == 422, referred.text
    assert_refused(await api.redeem(alice, 10), 422, "insufficient_points")
    assert_refused(await api.transfer(alice, bob, 10), 422, "insufficient_points")
    assert (await api.award("nobody-such", 10)).status_code == 404
    assert (await api.award(alice, 0)).status_code == 422
    # a replayed award (same Idempotency-Key) is the same entry, one event
    first = await api.post(f"/v1/members/{alice}/awards", {"points": 5, "reason": "x"}, idempotency_key="k-1")
    replay = await api.post(
        f"/v1/members/{alice}/awards", {"points": 5, "reason": "x"}, idempotency_key="k-1"
    )
    assert (first.status_code, replay.status_code) == (201, 201)
    assert first.json()["id"] == replay.json()["id"]
    await chain_program(db, api.program)
    assert await unsequenced(db, api.program) == 0
    events = await items(api)
    assert types(events) == ["rules.activated", "member.created", "member.created", "points.award"]
    assert [e["data"]["member"] for e in events if e["type"] == "member.created"] == [alice, bob]

    # outbox events (the service's own writer's, and the triggers') written in a
    # transaction that rolls back never reach the log, and leave no gap in it
    pid = await program_id(db, api.program)
    alice_id = await db.fetchval("SELECT id FROM member WHERE external_id = $1", alice)
    writer = await asyncpg.connect(dsn())
    try:
        transaction = writer.transaction()
        await transaction.start()
        now = datetime.now(UTC)
        written = {"member": alice, "fields": ["metadata"]}
        await emit(writer, pid, "member.updated", written, occurred_at=now, now=now, members=[alice_id])
        await writer.execute(
            "INSERT INTO rules_activation (program_id, version, activated_at) VALUES ($1, 1, $2)", pid, now
        )
        await writer.execute(
            "INSERT INTO tier_change (program_id, member_id, to_tier, reason, effective_at, recorded_at)"
            " VALUES ($1, $2, 'gold', 'override', $3, $3)",
            pid,
            alice_id,
            now,
        )
        pending = "SELECT type FROM event_log WHERE program_id = $1 AND sequence IS NULL ORDER BY position"
        assert [row["type"] for row in await writer.fetch(pending, pid)] == [
            "member.updated",
            "rules.activated",
            "tier.changed",
        ]
        await transaction.rollback()
    finally:
        await writer.close()
    assert await unsequenced(db, api.program) == 0
    assert await patch_member(api, alice, {"birthday": "1985-02-03"}) == 200
    await chain_program(db, api.program)
    [after] = await items(api, after=4)
    assert (after["sequence"], after["type"], after["data"]) == (
        5,
        "member.updated",
        {"member": alice, "fields": ["birthday"]},
    )


# -- filters ----------------------------------------------------------------------------------


async def test_type_and_member_filters(api: Api, db: asyncpg.Connection) -> None:
    await api.use_rules(tier_rules())
    alice, bob, carol = await api.enrol(), await api.enrol(), await api.enrol()
    await api.award(alice, 50)
    transferred = posted(await api.transfer(alice, bob, 5))
    await api.award(carol, 7)
    assert (await set_tier(api, carol, "gold", "vip")).status_code == 200
    assert await patch_member(api, bob, {"metadata": {"a": 1}}) == 200
    await chain_program(db, api.program)
    everything = await items(api)

    points = await items(api, type="points.*")
    assert types(points) == ["points.award", "points.transfer", "points.award"]
    assert points == [e for e in everything if e["type"].startswith("points.")]
    both = await items(api, type="member.created,tier.changed")
    assert types(both) == ["member.created"] * 3 + ["tier.changed"]
    assert both == [e for e in everything if e["type"] in ("member.created", "tier.changed")]
    assert types(await items(api, type="points.transfer,rules.*")) == ["rules.activated"] * 2 + [
        "points.transfer"
    ]
    assert await items(api, type="*") == everything
    assert await items(api, type="points.*,*") == everything
    assert await items(api, type="points.expire") == []
    # a filtered list pages like the whole one
    assert await by_cursor(api, 1, type="points.*") == points
    assert await by_after(api, 2, type="member.created,tier.changed") == both

    # a transfer concerns both its members; rules events concern nobody
    bobs = await items(api, member=bob)
    assert types(bobs) == ["member.created", "points.transfer", "member.updated"]
    assert bobs[1]["data"]["id"] == transferred["id"]
    alices = await items(api, member=alice)
    assert types(alices) == ["member.created", "points.award", "points.transfer"]
    assert bobs[1] == alices[2]
    carols = await items(api, member=carol)
    assert types(carols) == ["member.created", "points.award", "tier.changed"]
    assert carols[2]["data"]["member"] == carol
    assert types(await items(api, member=alice, type="points.*")) == ["points.award", "points.transfer"]
    assert await items(api, member=carol, type="points.transfer") == []
    assert await by_cursor(api, 1, member=alice) == alices
    assert await items(api, member=bob, after=bobs[1]["sequence"]) == bobs[2:]

    for bad in ("points.nope", "bogus.*", "POINTS.*", "points", "*.award", "points.*,", "points.* ", "tier"):
        assert_refused(await api.get("/v1/events", type=bad), 422, "validation_error")
    for bad_params in ({"after": -1}, {"limit": 0}, {"limit": 501}, {"after": "x"}):
        assert_refused(await api.get("/v1/events", **bad_params), 422, "validation_error")
    assert_refused(await api.get("/v1/events", member="nobody-here"), 404, "member_not_found")
    assert_refused(await api.get("/v1/events", member="bad id!"), 422, "validation_error")


# -- programs, scopes, cursors ---------------------------------------------------------------


async def test_other_programs_events_are_never_listed(api: Api, other: Api, db: asyncpg.Connection) -> None:
    theirs_member = await other.enrol()
    await other.award(theirs_member, 5)
    await other.award(await other.enrol(), 5)
    shared = unique("shared")  # the same external id in both programs
    await api.enrol(shared)
    await other.enrol(shared)
    await api.award(shared, 1)
    await chain_program(db, api.program)
    await chain_program(db, other.program)

    mine, theirs = await items(api), await items(other)
    assert types(mine) == ["rules.activated", "member.created", "points.award"]
    assert sequences(mine) == [1, 2, 3]
    assert sequences(theirs) == list(range(1, 7))
    assert not {e["id"] for e in mine} & {e["id"] for e in theirs}
    their_entries = {e["data"]["id"] for e in theirs if e["type"].startswith("points.")}
    assert not their_entries & {e["data"].get("id") for e in mine}
    assert types(await items(api, member=shared)) == ["member.created", "points.award"]
    assert types(await items(other, member=shared)) == ["member.created"]
    assert_refused(await api.get("/v1/events", member=theirs_member), 404, "member_not_found")
    # even with their own events:read key, a program reads only its own log
    reader = await other.key_with("events:read")
    assert await items(other, key=reader) == theirs


async def test_a_cursor_of_another_programs_log_is_refused(
    api: Api, other: Api, db: asyncpg.Connection
) -> None:
    """A cursor belongs to one list: one program's log (with its filters). Another
    program's cursor must be 400, not silently skip this program's events."""
    await other.enrol()
    await other.enrol()
    await api.enrol()
    await chain_program(db, api.program)
    await chain_program(db, other.program)
    theirs = await page(other, limit=2)
    assert theirs["next_cursor"] is not None
    assert_refused(await api.get("/v1/events", cursor=theirs["next_cursor"], limit=2), 400, "invalid_cursor")


async def test_events_read_or_admin_may_read_the_log_nothing_else(api: Api, db: asyncpg.Connection) -> None:
    await api.enrol()
    await chain_program(db, api.program)
    expected = await items(api)
    reader = await api.key_with("events:read")
    admin = await api.key_with("admin")
    assert await items(api, key=reader) == expected
    assert await items(api, key=admin) == expected
    for scopes in (("members:read",), ("members:read", "members:write", "points:earn", "webhooks:write")):
        key = await api.key_with(*scopes)
        assert_refused(await api.get("/v1/events", key=key), 403, "forbidden")
        # the scope is checked before anything else about the request
        assert_refused(await api.get("/v1/events", key=key, type="bogus"), 403, "forbidden")
    assert_refused(await api.client.get("/v1/events"), 401, "unauthorized")
    assert_refused(await api.get("/v1/events", key="not-a-key"), 401, "unauthorized")


async def test_a_forged_or_other_lists_cursor_is_invalid_cursor(api: Api, db: asyncpg.Connection) -> None:
    alice = await api.enrol()
    await api.enrol()
    for points in (1, 2, 3):
        await api.award(alice, points)
    await chain_program(db, api.program)
    first = await page(api, limit=2)
    cursor = first["next_cursor"]
    assert cursor is not None
    assert sequences((await page(api, limit=2, cursor=cursor))["items"]) == [3, 4]
    payload, _, signature = cursor.partition(".")
    forged_position = "WzFd"  # base64url of [1], signed for nothing
    members_cursor = (await api.get("/v1/members", limit=1)).json()["next_cursor"]
    assert members_cursor is not None
    for bad in (
        cursor + "x",
        cursor[:-2],
        f"{forged_position}.{signature}",
        payload,
        "garbage",
        ".",
        members_cursor,
    ):
        assert_refused(await api.get("/v1/events", cursor=bad), 400, "invalid_cursor")
    # the same log with other filters is another list
    for params in ({"type": "points.*"}, {"member": alice}, {"type": "*"}):
        assert_refused(await api.get("/v1/events", cursor=cursor, **params), 400, "invalid_cursor")
    typed = (await page(api, limit=1, type="points.*"))["next_cursor"]
    assert typed is not None
    assert_refused(await api.get("/v1/events", cursor=typed), 400, "invalid_cursor")
    assert sequences((await page(api, limit=1, type="points.*", cursor=typed))["items"]) == [5]
