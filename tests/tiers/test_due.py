"""evaluate-tiers reads only the members that are due: those whose term, grace or
override has ended, those in grace, and those whose tier was written since its last
run; after a rules change, or as of an instant before its last run's, every member.
Whom it read shows in its progress (`on_total`, `on_progress`); what it reports as
`members` stays every member of the program."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from app.config import get_settings
from app.db import Database
from app.tiers.service import Evaluated, evaluate_tiers
from tests.support import Api, database_url
from tests.tiers.helpers import (
    GOLD,
    SILVER,
    code_of,
    gold_member,
    history,
    month,
    months_later,
    order,
    same,
    set_tier,
    tier_of,
    tier_rules,
)


@pytest.fixture
async def database() -> AsyncIterator[Database]:
    db = Database(database_url(), get_settings())
    await db.connect()
    yield db
    await db.dispose()


@dataclass(frozen=True, slots=True)
class Run:
    done: Evaluated
    read: int  # members the run read and judged (its progress total)
    steps: list[int]


async def judge(
    database: Database, program_id: int, as_of: datetime, *, now: datetime | None = None, batch: int = 2
) -> Run:
    totals: list[int] = []
    steps: list[int] = []
    done = await evaluate_tiers(
        database,
        program_ids=[program_id],
        as_of=as_of,
        now=now or datetime.now(UTC),
        batch=batch,
        on_total=totals.append,
        on_progress=steps.append,
    )
    assert len(totals) == 1
    assert sum(steps) == totals[0]
    return Run(done, totals[0], steps)


async def silver_member(api: Api, qualified_at: datetime) -> str:
    member = await api.enrol()
    await order(api, member, "30.00", qualified_at - timedelta(days=1))
    await order(api, member, "30.00", qualified_at)
    assert await code_of(api, member) == "silver"
    return member


async def program_id(db: asyncpg.Connection, api: Api) -> int:
    return int(await db.fetchval("SELECT id FROM program WHERE code = $1", api.program))


class TestOnlyTheDue:
    async def test_a_due_member_many_batches_in_is_judged_and_no_other_is_read(
        self, api: Api, database: Database, db: asyncpg.Connection
    ) -> None:
        await api.use_rules(tier_rules())
        plain = [await api.enrol() for _ in range(6)]
        later = [await silver_member(api, month(-1)) for _ in range(2)]  # terms end in 11 months
        due = await silver_member(api, month(-11))  # the last id: its term ends next month
        pid = await program_id(db, api)
        ends = months_later(month(-11), 12)
        before = [await history(api, member) for member in later]

        first = await judge(database, pid, ends - timedelta(days=1))
        assert (first.read, first.done.members, first.done.changes) == (9, 9, 0)  # no watermark yet

        run = await judge(database, pid, ends + timedelta(days=1))
        assert (run.read, run.steps) == (1, [1])
        assert (run.done.members, run.done.changes, run.done.retained) == (9, 1, 1)
        assert same((await tier_of(api, due))["tier"]["term_ends_at"], months_later(ends, 12))
        assert [await history(api, member) for member in later] == before
        assert [await code_of(api, member) for member in plain] == [None] * 6

        again = await judge(database, pid, ends + timedelta(days=2))
        assert (again.read, again.done.changes) == (1, 0)  # the job's own change is read once more
        assert (await judge(database, pid, ends + timedelta(days=3))).read == 0

    async def test_terms_that_ended_while_the_job_was_not_running_are_judged_at_the_next_run(
        self, api: Api, database: Database, db: asyncpg.Connection
    ) -> None:
        await api.use_rules(tier_rules())
        keeps = await silver_member(api, month(-11))
        misses = await gold_member(api, month(-11))
        pid = await program_id(db, api)
        ends = months_later(month(-11), 12)
        await judge(database, pid, ends - timedelta(days=20))
        # Down from twenty days before the terms ended to 200 days after.
        run = await judge(database, pid, ends + timedelta(days=200))
        assert run.read == 2
        assert (run.done.retained, run.done.downgraded) == (1, 1)
        assert same((await tier_of(api, keeps))["tier"]["term_ends_at"], months_later(ends, 12))
        view = await tier_of(api, misses)
        assert view["tier"]["code"] == "silver"
        assert same(view["tier"]["since"], ends + timedelta(days=30))

    async def test_an_operators_change_is_judged_at_the_next_run(
        self, api: Api, database: Database, db: asyncpg.Connection
    ) -> None:
        await api.use_rules(tier_rules())
        member = await silver_member(api, month(-1))
        others = [await silver_member(api, month(-1)) for _ in range(3)]
        pid = await program_id(db, api)
        await judge(database, pid, month(1))
        # Taken away by hand with no end: the member's orders still qualify them, and
        # the job has always given the tier back at its next run.
        assert (await set_tier(api, member, None, "removed by mistake")).status_code == 200
        assert await code_of(api, member) is None
        run = await judge(database, pid, month(2))
        assert (run.read, run.done.upgraded) == (1, 1)
        assert await code_of(api, member) == "silver"
        assert [await code_of(api, other) for other in others] == ["silver"] * 3

    async def test_new_rules_are_judged_on_every_member_once(
        self, api: Api, database: Database, db: asyncpg.Connection
    ) -> None:
        await api.use_rules(tier_rules())
        members = [await silver_member(api, month(-1)) for _ in range(3)]
        pid = await program_id(db, api)
        await judge(database, pid, month(1))
        assert (await judge(database, pid, month(2))).read == 0
        # Lower thresholds: no term has ended, yet each member now qualifies for gold.
        await api.use_rules(tier_rules([SILVER, {**GOLD, "qualify": {"orders": 2}}]))
        run = await judge(database, pid, month(3))
        assert (run.read, run.done.upgraded) == (3, 3)
        assert [await code_of(api, member) for member in members] == ["gold"] * 3
        assert (await judge(database, pid, month(4))).read == 3  # its own changes, once
        assert (await judge(database, pid, month(5))).read == 0

    async def test_a_run_as_of_an_earlier_instant_or_close_to_the_last_one_reads_every_member(
        self, api: Api, database: Database, db: asyncpg.Connection
    ) -> None:
        await api.use_rules(tier_rules())
        for _ in range(3):
            await silver_member(api, month(-1))
        pid = await program_id(db, api)
        now = datetime.now(UTC)
        await judge(database, pid, month(6), now=now)
        assert (await judge(database, pid, month(4), now=now)).read == 3  # earlier than the last
        assert (await judge(database, pid, month(5), now=now)).read == 0
        # As of a minute or less after the last run's clock: orders recorded by another
        # process's clock may be later than this run's instant; every member is read.
        soon = now + timedelta(seconds=30)
        assert (await judge(database, pid, soon, now=soon)).read == 3
        later = soon + timedelta(seconds=30)
        assert (await judge(database, pid, later, now=later)).read == 3
        later += timedelta(minutes=1)
        assert (await judge(database, pid, later, now=later)).read == 0
