"""The hash chain: sequence and hash on entries and statements, the head, and a
consumer's own check of every hash."""

from __future__ import annotations

import hashlib
import json

import asyncpg

from tests.support import Api, chain_program, dsn


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
