"""The hash chain: sequence and hash on entries and statements, the head, and a
consumer's own check of every hash."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime

import asyncpg

from app.db import Database
from app.ledger import chain
from tests.holds.helpers import capture, new_hold
from tests.support import Api, chain_program, dsn, program_id


async def test_entries_are_unchained_until_the_chainer_runs_then_dense_and_linked(
    api: Api, db: asyncpg.Connection
) -> None:
    alice, bob = await api.enrol(), await api.enrol()
    first = (await api.award(alice, 100)).json()
    assert "sequence" not in first  # the POST answers as before; the chain comes later
    shown = (await api.get(f"/v1/entries/{first['id']}")).json()
    assert (shown["sequence"], shown["hash"], shown["canonical"]) == (None, None, None)
    head = (await api.get("/v1/ledger/head")).json()
    assert head == {"sequence": 0, "hash": None, "entries_unchained": 1}

    await api.redeem(alice, 30)
    await api.transfer(alice, bob, 20)
    assert await chain_program(db, api.program) == 3

    statement = (await api.get(f"/v1/members/{alice}/entries")).json()["items"]
    assert [item["sequence"] for item in statement] == [3, 2, 1]
    previous = bytes(32)
    for item in reversed(statement):
        entry = (await api.get(f"/v1/entries/{item['id']}")).json()
        assert entry["hash"] == item["hash"]
        # what a consumer can check on its own: the hash covers the previous hash
        # and the canonical form, and the canonical form is this entry
        assert hashlib.sha256(previous + entry["canonical"].encode()).hexdigest() == entry["hash"]
        canonical = json.loads(entry["canonical"])
        assert (canonical["id"], canonical["kind"]) == (entry["id"], entry["kind"])
        assert sum(p["points"] for p in canonical["postings"]) == 0
        assert [p["points"] for p in canonical["postings"]] == [p["points"] for p in entry["postings"]]
        previous = bytes.fromhex(entry["hash"])
    head = (await api.get("/v1/ledger/head")).json()
    assert head == {"sequence": 3, "hash": statement[0]["hash"], "entries_unchained": 0}


# text that JSON escapes, or must not: quotes, backslashes, every control
# character, DEL, non-ASCII (composed and not), a line separator, an emoji
AWKWARD = [
    'say "hi"',
    "C:\\points\\",
    "".join(chr(code) for code in range(1, 32)),
    "tab\there\nnewline\r\x7f",
    "Zürich, Zu\u0308rich, \u2028, 🎁, 中文",
    "",
]


async def test_postgresql_escapes_text_as_the_canonical_form_does(db: asyncpg.Connection) -> None:
    # the chainer's canonical form is written by PostgreSQL (CANONICAL_SQL), verify's
    # by Python: one escaping rule for both, or every hash of such text would break
    for text in AWKWARD:
        assert await db.fetchval("SELECT to_json($1::text)::text", text) == json.dumps(
            text, ensure_ascii=False
        ), text


async def test_the_chainers_canonical_form_is_the_one_verify_recomputes(
    api: Api, db: asyncpg.Connection
) -> None:
    alice, bob = await api.enrol(), await api.enrol()
    reasons = ['say "hi" \\ back', "Zürich 🎁 \u2028 中文"]
    ids = [(await api.award(alice, 10 + n, reason=reason)).json()["id"] for n, reason in enumerate(reasons)]
    await api.transfer(alice, bob, 5)  # postings of two members
    await api.reverse(ids[0], reason='typo\'s "fix"')  # reverses
    hold = await new_hold(api, alice, 3, order_id='ord "7"')  # an order id
    assert (await capture(api, hold["hold_id"])).status_code == 201  # a source
    assert (await api.order(bob, "12.50")).status_code == 201  # a rules version
    chained = await chain_program(db, api.program)
    program = await db.fetchval("SELECT id FROM program WHERE code = $1", api.program)
    rows = await db.fetch(
        f"SELECT {chain.CANONICAL_COLUMNS}, c.hash FROM entry_chain c"
        " JOIN journal_entry e ON e.program_id = c.program_id AND e.id = c.entry_id"
        " WHERE c.program_id = $1 ORDER BY c.sequence",
        program,
    )
    assert len(rows) == chained >= 7
    for column in ("reverses_entry_id", "source_entry_id", "order_id", "rules_version"):
        assert any(row[column] is not None for row in rows), column
    previous = bytes(32)
    for row in rows:
        # written by the chainer from PostgreSQL's text; recomputed here as verify does
        assert bytes(row["hash"]) == chain.link(previous, row), dict(row)
        previous = bytes(row["hash"])


async def test_canonical_form_uses_internal_ids_never_external_ones(api: Api, db: asyncpg.Connection) -> None:
    member = await api.enrol("person@example.com")
    entry = (await api.award(member, 5)).json()
    await chain_program(db, api.program)
    canonical = (await api.get(f"/v1/entries/{entry['id']}")).json()["canonical"]
    assert "person@example.com" not in canonical
    internal = await db.fetchval("SELECT id FROM member WHERE external_id = $1", member)
    assert {p["member"] for p in json.loads(canonical)["postings"]} == {internal, None}


async def test_each_program_has_its_own_chain(api: Api, other: Api, db: asyncpg.Connection) -> None:
    await api.award(await api.enrol(), 10)
    await other.award(await other.enrol(), 10)
    await other.award(await other.enrol(), 10)
    await chain_program(db, api.program)
    await chain_program(db, other.program)
    assert (await api.get("/v1/ledger/head")).json()["sequence"] == 1
    assert (await other.get("/v1/ledger/head")).json()["sequence"] == 2


async def test_the_head_needs_events_read_or_admin(api: Api) -> None:
    reader = await api.key_with("events:read")
    members_only = await api.key_with("members:read")
    assert (await api.get("/v1/ledger/head", key=reader)).status_code == 200
    refused = await api.get("/v1/ledger/head", key=members_only)
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"


async def test_an_entry_committed_while_an_older_transaction_runs_waits_for_it(
    api: Api, db: asyncpg.Connection
) -> None:
    """The chainer takes only entries of transactions older than every running one,
    so an entry can never have to go before one already chained."""
    member = await api.enrol()
    blocker = await asyncpg.connect(dsn())
    try:
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.fetchval("SELECT pg_current_xact_id()")  # holds a transaction id
        await api.award(member, 7)
        assert await chain_program(db, api.program, settle=0) == 0
        assert (await api.get("/v1/ledger/head")).json()["entries_unchained"] == 1
        await transaction.rollback()
    finally:
        await blocker.close()
    assert await chain_program(db, api.program) == 1


async def test_two_chainers_at_once_chain_each_entry_once_in_a_dense_sequence(
    api: Api, db: asyncpg.Connection, database: Database
) -> None:
    """Two chainers on the same program, each on a connection of its own, round after
    round while awards keep coming: the advisory lock (and the unique (program,
    sequence) behind it) leaves one chain, 1..n, each entry in it once, and verify's
    chain check finds nothing wrong."""
    pid = await program_id(db, api.program)
    members = [await api.enrol() for _ in range(3)]
    for member in members:
        await api.award(member, 1)
    writing = True

    async def write() -> int:
        written = 0
        while writing:
            assert (await api.award(members[written % len(members)], 1 + written % 7)).status_code == 201
            written += 1
        return written

    writer = asyncio.create_task(write())
    taken = [0, 0]
    try:
        for _ in range(40):
            now = datetime.now(UTC)
            # batch 3: many small transactions, so the two meet often
            done = await asyncio.gather(*(chain.chain_all(database, now, [pid], batch=3) for _ in range(2)))
            taken = [total + one for total, one in zip(taken, done, strict=True)]
    finally:
        writing = False
        await writer
    await chain_program(db, api.program)
    assert all(taken), f"both chainers took a share: {taken}"

    entries = await db.fetchval("SELECT count(*) FROM journal_entry WHERE program_id = $1", pid)
    chained = await db.fetch(
        "SELECT entry_id, sequence FROM entry_chain WHERE program_id = $1 ORDER BY sequence", pid
    )
    assert [row["sequence"] for row in chained] == list(range(1, entries + 1))
    assert len({row["entry_id"] for row in chained}) == entries
    events = await db.fetch(
        "SELECT sequence, entry_id FROM event_log WHERE program_id = $1 ORDER BY sequence", pid
    )
    assert [row["sequence"] for row in events] == list(range(1, len(events) + 1))
    assert sorted(row["entry_id"] for row in events if row["entry_id"]) == sorted(
        row["entry_id"] for row in chained
    )
    async with db.transaction():
        assert [found for found in await chain.breaks(db) if found.startswith(f"program {pid} ")] == []


def _scans(plan: dict[str, object]) -> list[tuple[object, object]]:
    """Every (node type, relation) of an EXPLAIN (FORMAT JSON) plan."""
    found = [(plan.get("Node Type"), plan.get("Relation Name"))]
    for child in plan.get("Plans", []):  # type: ignore[attr-defined]
        found += _scans(child)
    return found


async def test_the_chainers_rounds_read_the_journal_by_index_not_whole(
    api: Api, db: asyncpg.Connection
) -> None:
    """Every round asks which programs wait and how old their oldest entry is:
    whatever the journal's size, by the (program_id, txid, id) index, never a scan
    of the whole journal (which it was, every quarter second). Asked of a journal
    of 20,000 more entries, in a transaction rolled back (they have no postings)."""
    program = await program_id(db, api.program)
    transaction = db.transaction()
    await transaction.start()
    try:
        await db.execute(
            "INSERT INTO journal_entry (id, program_id, kind, occurred_at, recorded_at, idempotency_key,"
            " request_fingerprint) SELECT gen_random_uuid(), $1, 'award', now(), now(), 'plan-' || n, ''"
            " FROM generate_series(1, 20000) n",
            program,
        )
        await db.execute("ANALYZE journal_entry")
        for query in (chain.WAITING, chain.OLDEST_WAITING):
            statement = await db.prepare("EXPLAIN (FORMAT JSON) " + query)
            plan = json.loads(await statement.fetchval(chain.START.last_entry_id))[0]["Plan"]
            scans = _scans(plan)
            assert ("Seq Scan", "journal_entry") not in scans, scans
            assert any(relation == "journal_entry" for _, relation in scans), scans
    finally:
        await transaction.rollback()
