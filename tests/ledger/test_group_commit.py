"""Group commit (LEDGER_GROUP_COMMIT): concurrent awards written together, one
transaction for a group, and each request still answered as if it were alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY

from app.config import Settings
from app.db import Database, GroupCommit
from app.ledger import repository
from app.main import create_app
from tests.members.test_status import set_status
from tests.support import Api, MovableClock, entries_with_key, new_program


async def serving(
    database: str, settings: Settings, clock: MovableClock, *, group_commit: bool
) -> AsyncIterator[Api]:
    """A program served by an app with group commit on or off (a small pool, so
    that concurrent requests queue for the groups in flight)."""
    application = create_app(
        settings.model_copy(update={"group_commit": group_commit, "db_pool_size": 4}),
        database_url=database,
        clock=clock,
    )
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://ledger.test") as http:
            api = await new_program(http)
            DATABASES[api.program] = application.state.context.db
            yield api


@pytest.fixture
async def grouped(migrated_database: str, settings: Settings, clock: MovableClock) -> AsyncIterator[Api]:
    async for api in serving(migrated_database, settings, clock, group_commit=True):
        yield api


@pytest.fixture
async def alone(migrated_database: str, settings: Settings, clock: MovableClock) -> AsyncIterator[Api]:
    async for api in serving(migrated_database, settings, clock, group_commit=False):
        yield api


SIZE_SUM = "points_ledger_group_commit_size_sum"
SIZE_COUNT = "points_ledger_group_commit_size_count"
SIZE_ALONE = "points_ledger_group_commit_size_bucket"
FALLBACKS = "points_ledger_group_commit_fallbacks_total"

# each test program's Database, to read its groups' outcomes
DATABASES: dict[str, Database] = {}


def awards_group(api: Api) -> GroupCommit:
    group = DATABASES[api.program].grouped("entry", repository.POST, repository.LOCK_MEMBERS)
    assert group is not None
    return group


async def program_id(db: asyncpg.Connection, api: Api) -> int:
    found = await db.fetchval("SELECT id FROM program WHERE code = $1", api.program)
    assert found is not None
    return int(found)


async def awards_per_transaction(db: asyncpg.Connection, api: Api) -> list[int]:
    """How many award entries each transaction wrote, largest first."""
    rows = await db.fetch(
        "SELECT count(*) AS n FROM journal_entry WHERE program_id = $1 AND kind = 'award' "
        "GROUP BY txid ORDER BY n DESC",
        await program_id(db, api),
    )
    return [int(row["n"]) for row in rows]


def metric(name: str, statement: str, **labels: str) -> float:
    """A group commit metric of this process (0 before its first observation)."""
    return REGISTRY.get_sample_value(name, {"statement": statement, **labels}) or 0.0


class TestGroupCommit:
    async def test_concurrent_awards_commit_in_groups_and_each_is_answered(
        self, grouped: Api, db: asyncpg.Connection
    ) -> None:
        members = [await grouped.enrol() for _ in range(12)]
        sizes, alone = metric(SIZE_SUM, "entry"), metric(SIZE_ALONE, "entry", le="1.0")
        groups = metric(SIZE_COUNT, "entry")
        responses = await asyncio.gather(*(grouped.award(m, n + 1) for n in range(4) for m in members))
        assert [r.status_code for r in responses] == [201] * 48
        # every award was sent in exactly one group; some groups held more than one
        assert metric(SIZE_SUM, "entry") - sizes == 48
        assert metric(SIZE_COUNT, "entry") - groups > metric(SIZE_ALONE, "entry", le="1.0") - alone
        exposition = (await grouped.client.get("/metrics")).text
        assert 'points_ledger_group_commit_size_count{statement="entry"}' in exposition
        # each answer is its own request's entry
        amounts = [next(p["points"] for p in r.json()["postings"] if p["member"]) for r in responses]
        assert amounts == [n + 1 for n in range(4) for _ in members]
        assert len({r.json()["id"] for r in responses}) == 48
        assert [await grouped.available(m) for m in members] == [10] * 12
        grouping = await awards_per_transaction(db, grouped)
        assert sum(grouping) == 48
        assert awards_group(grouped).failed == 0
        assert grouping[0] > 1, "no two awards shared a transaction: nothing was grouped"

    async def test_one_key_sent_at_once_writes_one_entry(self, grouped: Api, db: asyncpg.Connection) -> None:
        member = await grouped.enrol()
        body = {"points": 25, "reason": "checkout retry storm"}
        responses = await asyncio.gather(
            *(grouped.post(f"/v1/members/{member}/awards", body, idempotency_key="storm") for _ in range(12))
        )
        assert {r.status_code for r in responses} == {201}
        assert len({r.content for r in responses}) == 1
        assert sum(1 for r in responses if r.headers.get("Idempotent-Replayed") == "true") == 11
        assert await grouped.available(member) == 25
        assert await entries_with_key(db, grouped.program, "storm") == 1

    async def test_a_refused_award_gets_its_own_error_and_the_rest_are_written(
        self, grouped: Api, db: asyncpg.Connection
    ) -> None:
        members = [await grouped.enrol() for _ in range(10)]
        suspended = await grouped.enrol()
        assert (await set_status(grouped, suspended, "suspended")).status_code == 201
        calls = [grouped.award(m, 7) for m in members]
        calls[3:3] = [grouped.award("nobody-at-all", 7)]
        calls[8:8] = [grouped.award(suspended, 7)]
        fallbacks = metric(FALLBACKS, "entry")
        responses = await asyncio.gather(*calls)
        codes = [r.status_code for r in responses]
        assert codes == [201] * 3 + [404] + [201] * 4 + [409] + [201] * 3
        # nothing of a group that failed was kept: each award ran again alone, first time
        assert not [r for r in responses if r.headers.get("Idempotent-Replayed") == "true"]
        assert awards_group(grouped).failed >= 1, "the refused awards were never in a group"
        assert metric(FALLBACKS, "entry") - fallbacks == awards_group(grouped).failed
        assert responses[3].json()["code"] == "member_not_found"
        assert responses[8].json()["code"] == "member_not_eligible"
        assert [await grouped.available(m) for m in members] == [7] * 10
        assert await grouped.available(suspended) == 0
        assert sum(await awards_per_transaction(db, grouped)) == 10

    async def test_a_member_locked_elsewhere_holds_up_its_own_award_only(
        self, grouped: Api, db: asyncpg.Connection
    ) -> None:
        members = [await grouped.enrol() for _ in range(11)]
        busy = members[5]
        transaction = db.transaction()
        await transaction.start()
        try:
            # another transaction holds one member's balance row (a job's batch, a transfer)
            await db.execute(
                "SELECT 1 FROM member_balance b JOIN member m ON m.program_id = b.program_id"
                " AND m.id = b.member_id WHERE m.external_id = $1 FOR UPDATE OF b",
                busy,
            )
            tasks = [(m, asyncio.create_task(grouped.award(m, 3))) for _ in range(2) for m in members]
            others = [task for m, task in tasks if m != busy]
            _, pending = await asyncio.wait(others, timeout=10)
            assert not pending, "awards to other members waited for the locked one"
            assert [task.result().status_code for task in others] == [201] * 20
            assert not any(task.done() for m, task in tasks if m == busy)
        finally:
            await transaction.rollback()
        assert [(await task).status_code for m, task in tasks if m == busy] == [201, 201]
        assert [await grouped.available(m) for m in members] == [6] * 11

    async def test_an_award_alone_waits_for_its_member_as_long_as_it_takes(
        self, grouped: Api, db: asyncpg.Connection
    ) -> None:
        member = await grouped.enrol()
        async with db.transaction():
            await db.execute(
                "SELECT 1 FROM member_balance b JOIN member m ON m.program_id = b.program_id"
                " AND m.id = b.member_id WHERE m.external_id = $1 FOR UPDATE OF b",
                member,
            )
            waiting = asyncio.create_task(grouped.award(member, 4))
            await asyncio.sleep(1)  # well past the group's lock timeout
            assert not waiting.done()
        response = await waiting
        assert response.status_code == 201, response.text
        assert await grouped.available(member) == 4

    async def test_concurrent_orders_commit_in_groups_and_each_is_answered(
        self, grouped: Api, db: asyncpg.Connection
    ) -> None:
        members = [await grouped.enrol() for _ in range(8)]
        # three orders a member at once: within a group, a member's second order finds
        # the balance moved since its facts were read, and is posted again under its lock
        calls = [grouped.order(m, f"{10 * (n + 1)}.00") for n in range(3) for m in members]
        calls[5:5] = [grouped.order("nobody-at-all", "10.00")]
        sizes = metric(SIZE_SUM, "order")
        responses = await asyncio.gather(*calls)
        codes = [r.status_code for r in responses]
        assert codes == [201] * 5 + [404] + [201] * 19, [r.text for r in responses if r.status_code != 201]
        assert responses[5].json()["code"] == "member_not_found"
        assert not [r for r in responses if r.headers.get("Idempotent-Replayed") == "true"]
        assert [await grouped.available(m) for m in members] == [60] * 8
        rows = await db.fetch(
            "SELECT count(*) AS n FROM journal_entry WHERE program_id = $1 AND kind = 'earn' GROUP BY txid",
            await program_id(db, grouped),
        )
        assert sum(row["n"] for row in rows) == 24
        assert max(row["n"] for row in rows) > 1, "no two orders shared a transaction: nothing was grouped"
        # each order sent at least once (one posted again under its lock is sent again)
        assert metric(SIZE_SUM, "order") - sizes >= 24


async def test_with_group_commit_off_each_award_is_its_own_transaction(
    alone: Api, db: asyncpg.Connection
) -> None:
    members = [await alone.enrol() for _ in range(6)]
    responses = await asyncio.gather(*(alone.award(m, 5) for m in members for _ in range(4)))
    assert [r.status_code for r in responses] == [201] * 24
    assert await awards_per_transaction(db, alone) == [1] * 24
