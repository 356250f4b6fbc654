"""Lots and the expire job: expiry dates from the rules, oldest-expiring first,
transfers keep dates, inactivity, one entry per member per run, over HTTP, from
the CLI and from two runs at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.config import get_settings
from app.db import Database
from app.jobs.service import run
from app.ledger import expiry
from tests.support import Api, database_url, unique

BASE: dict[str, Any] = {"base": {"points": 1, "per": "1"}}


def rules(expiry: dict[str, Any], **earn: Any) -> dict[str, Any]:
    return {"earn": {**BASE, **earn}, "expiry": expiry}


async def expire(api: Api, as_of: datetime) -> dict[str, int]:
    response = await api.post("/v1/jobs/expire", {"as_of": as_of.isoformat()}, idempotency_key=None)
    assert response.status_code == 200, response.text
    counts: dict[str, int] = response.json()["counts"]
    return counts


async def expiring(api: Api, member: str) -> list[tuple[int, datetime]]:
    response = await api.get(f"/v1/members/{member}")
    assert response.status_code == 200, response.text
    return [
        (item["points"], datetime.fromisoformat(item["expires_at"])) for item in response.json()["expiring"]
    ]


async def order(api: Api, member: str, total: str, paid_at: datetime) -> dict[str, Any]:
    body = {
        "order_id": unique("o"),
        "member": member,
        "total": {"amount": total, "currency": "EUR"},
        "paid_at": paid_at.isoformat(),
    }
    response = await api.post("/v1/orders", body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def soon(days: int) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0)


class TestExpiryDates:
    async def test_awards_take_the_rolling_policy_and_an_explicit_date_wins(self, api: Api) -> None:
        await api.use_rules(rules({"policy": "rolling", "months": 12}))
        member = await api.enrol()
        given = await api.award(member, 100)
        awarded_at = datetime.fromisoformat(given.json()["recorded_at"])
        policy_date = datetime.fromisoformat(given.json()["expires_at"])
        assert policy_date == awarded_at.replace(year=awarded_at.year + 1)
        explicit = soon(40)
        await api.award(member, 30, expires_at=explicit.isoformat())
        assert await expiring(api, member) == [(30, explicit), (100, policy_date)]

    async def test_no_policy_means_no_expiry(self, api: Api) -> None:
        member = await api.enrol()
        given = await api.award(member, 100)
        assert given.json()["expires_at"] is None
        assert await expiring(api, member) == []
        assert await expire(api, soon(3650)) == {"members": 0, "lots": 0, "points": 0}
        assert await api.available(member) == 100

    async def test_end_of_period_rounds_up_in_the_programs_timezone(self, api: Api) -> None:
        await api.use_rules(
            {
                "timezone": "Asia/Shanghai",
                **rules({"policy": "end_of_period", "months": 12, "round_to": "quarter"}),
            }
        )
        member = await api.enrol()
        paid_at = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
        await order(api, member, "50.00", paid_at)
        # 2026-11-20 in Shanghai + 12 months = 2027-11-20 -> the quarter ends 2028-01-01 local.
        end = datetime(2028, 1, 1, tzinfo=ZoneInfo("Asia/Shanghai"))
        assert await expiring(api, member) == [(50, end.astimezone(UTC))]

    async def test_pending_order_points_keep_the_date_decided_when_earned(self, api: Api) -> None:
        await api.use_rules(rules({"policy": "rolling", "months": 1}, pending_days=14))
        member = await api.enrol()
        paid_at = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
        await order(api, member, "40.00", paid_at)
        assert await expiring(api, member) == []  # pending points are not in lots yet
        done = await api.post(
            "/v1/jobs/activate-pending", {"as_of": soon(30).isoformat()}, idempotency_key=None
        )
        assert done.json()["counts"]["credits"] == 1
        assert await expiring(api, member) == [(40, datetime(2026, 12, 20, 10, 0, tzinfo=UTC))]

    async def test_event_points_expire_like_order_points(self, api: Api) -> None:
        await api.use_rules(
            {**rules({"policy": "rolling", "months": 6}), "events": {"review": {"points": 10}}}
        )
        member = await api.enrol()
        occurred = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
        response = await api.post(
            f"/v1/members/{member}/events", {"type": "review", "occurred_at": occurred.isoformat()}
        )
        assert response.status_code == 201, response.text
        assert await expiring(api, member) == [(10, datetime(2027, 5, 1, 8, 0, tzinfo=UTC))]


class TestOldestExpiringFirst:
    async def test_a_redemption_takes_the_soonest_expiring_points(self, api: Api) -> None:
        member = await api.enrol()
        late, early = soon(60), soon(10)
        await api.award(member, 100, expires_at=late.isoformat())
        await api.award(member, 50, expires_at=early.isoformat())
        await api.award(member, 20)  # never expires: spent last
        assert (await api.redeem(member, 70)).status_code == 201
        assert await expiring(api, member) == [(80, late)]
        counts = await expire(api, late)
        assert counts == {"members": 1, "lots": 1, "points": 80}
        assert await api.available(member) == 20

    async def test_transferred_points_keep_their_expiry_dates(self, api: Api) -> None:
        giver, taker = await api.enrol(), await api.enrol()
        first, second = soon(10), soon(20)
        await api.award(giver, 30, expires_at=second.isoformat())
        await api.award(giver, 30, expires_at=first.isoformat())
        assert (await api.transfer(giver, taker, 45)).status_code == 201
        assert await expiring(api, taker) == [(30, first), (15, second)]
        assert await expiring(api, giver) == [(15, second)]

    async def test_a_reversed_redemption_gives_back_the_same_lots(self, api: Api) -> None:
        member = await api.enrol()
        date = soon(15)
        await api.award(member, 40, expires_at=date.isoformat())
        await api.award(member, 10)
        spent = await api.redeem(member, 45)
        assert await expiring(api, member) == []
        assert (await api.reverse(spent.json()["id"])).status_code == 201
        assert await expiring(api, member) == [(40, date)]

    async def test_expire_entries_cannot_be_reversed(self, api: Api) -> None:
        member = await api.enrol()
        await api.award(member, 5, expires_at=soon(1).isoformat())
        await expire(api, soon(2))
        entry = (await api.get(f"/v1/members/{member}/entries")).json()["items"][0]
        assert (entry["kind"], entry["points"]) == ("expire", -5)
        refused = await api.reverse(entry["id"])
        assert refused.status_code == 422
        assert refused.json()["code"] == "entry_not_reversible"


class TestExpireJob:
    async def test_one_entry_per_member_per_run_and_a_rerun_changes_nothing(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        member, spared = await api.enrol(), await api.enrol()
        dates = [soon(5), soon(6), soon(7)]
        for day, points in zip(dates, (10, 20, 30), strict=True):
            await api.award(member, points, expires_at=day.isoformat())
        await api.award(member, 7, expires_at=soon(30).isoformat())
        await api.award(spared, 9, expires_at=soon(30).isoformat())

        assert await expire(api, dates[0] - timedelta(seconds=1)) == {"members": 0, "lots": 0, "points": 0}
        assert await expire(api, dates[2]) == {"members": 1, "lots": 3, "points": 60}
        assert await expire(api, dates[2]) == {"members": 0, "lots": 0, "points": 0}
        assert await api.available(member) == 7
        assert await api.available(spared) == 9
        entries = (await api.get(f"/v1/members/{member}/entries")).json()["items"]
        expired = [entry for entry in entries if entry["kind"] == "expire"]
        assert len(expired) == 1
        assert datetime.fromisoformat(expired[0]["occurred_at"]) == dates[2]
        rows = await db.fetch(
            "SELECT a.kind, p.amount FROM posting p JOIN account a ON a.id = p.account_id"
            " WHERE p.entry_id = $1 ORDER BY a.kind",
            expired[0]["id"],
        )
        assert [(row["kind"], row["amount"]) for row in rows] == [("available", -60), ("expiry", 60)]

    async def test_touches_only_the_callers_program(self, api: Api, other: Api) -> None:
        mine, theirs = await api.enrol(), await other.enrol()
        await api.award(mine, 5, expires_at=soon(1).isoformat())
        await other.award(theirs, 5, expires_at=soon(1).isoformat())
        assert (await expire(api, soon(2)))["members"] == 1
        assert await other.available(theirs) == 5

    async def test_held_points_do_not_expire_until_they_come_back(self, api: Api) -> None:
        member = await api.enrol()
        date = soon(3)
        await api.award(member, 50, expires_at=date.isoformat())
        hold = await api.post(f"/v1/members/{member}/holds", {"points": 20})
        assert hold.status_code == 201, hold.text
        assert await expire(api, date) == {"members": 1, "lots": 1, "points": 30}
        release = await api.post(f"/v1/holds/{hold.json()['hold_id']}/release", {})
        assert release.status_code == 201, release.text
        # Back in their own lot, which has expired: the next run takes them.
        assert await expiring(api, member) == [(20, date)]
        assert await expire(api, date) == {"members": 1, "lots": 1, "points": 20}
        assert await api.balances(member) == {"available": 0, "pending": 0, "held": 0, "debt": 0}


class TestInactivity:
    async def test_all_points_expire_after_months_without_an_order(self, api: Api) -> None:
        await api.use_rules(rules({"policy": "inactivity", "months": 6}))
        enrolled = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
        idle = await api.enrol(enrolled_at=enrolled.isoformat())
        active = await api.enrol(enrolled_at=enrolled.isoformat())
        await api.award(idle, 40)
        await api.award(active, 40)
        last_order = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
        await order(api, active, "10.00", last_order)

        # Never ordered: six months after enrolment (July has 31 days).
        assert await expiring(api, idle) == [(40, datetime(2026, 7, 31, 12, 0, tzinfo=UTC))]
        assert await expiring(api, active) == [(50, datetime(2027, 5, 1, 9, 0, tzinfo=UTC))]

        assert await expire(api, datetime(2027, 5, 1, 8, 59, tzinfo=UTC)) == {
            "members": 1,
            "lots": 1,
            "points": 40,
        }
        assert await api.available(idle) == 0
        assert await api.available(active) == 50

        # Any order moves the date of all the member's points.
        await order(api, active, "5.00", datetime(2026, 11, 20, 9, 0, tzinfo=UTC))
        assert await expiring(api, active) == [(55, datetime(2027, 5, 20, 9, 0, tzinfo=UTC))]
        assert await expire(api, datetime(2027, 5, 20, 9, 0, tzinfo=UTC)) == {
            "members": 1,
            "lots": 3,
            "points": 55,
        }

    async def test_dated_lots_still_expire_on_their_own_date(self, api: Api) -> None:
        await api.use_rules(rules({"policy": "inactivity", "months": 12}))
        member = await api.enrol()
        date = soon(10)
        await api.award(member, 15, expires_at=date.isoformat())
        await api.award(member, 25)
        listed = await expiring(api, member)
        assert listed[0] == (15, date)
        assert listed[1][0] == 25
        assert await expire(api, date) == {"members": 1, "lots": 1, "points": 15}


class TestConcurrentRuns:
    async def test_two_runs_at_once_expire_each_member_once(self, api: Api, db: asyncpg.Connection) -> None:
        date = soon(1)
        members = [await api.enrol() for _ in range(25)]
        for member in members:
            await api.award(member, 4, expires_at=date.isoformat())
            await api.award(member, 3, expires_at=(date + timedelta(hours=1)).isoformat())
        program_id = await db.fetchval("SELECT id FROM program WHERE code = $1", api.program)
        databases = [Database(database_url(), get_settings()) for _ in range(2)]
        try:
            for database in databases:
                await database.connect()
            summaries = await asyncio.gather(
                *(
                    run(
                        database,
                        "expire",
                        program_id=program_id,
                        as_of=date + timedelta(hours=2),
                        now=datetime.now(UTC),
                    )
                    for database in databases
                )
            )
        finally:
            for database in databases:
                await database.dispose()
        assert sum(summary.counts["members"] for summary in summaries) == 25
        assert sum(summary.counts["lots"] for summary in summaries) == 50
        assert [await api.available(member) for member in members] == [0] * 25
        entries = await db.fetchval(
            "SELECT count(*) FROM journal_entry WHERE program_id = $1 AND kind = 'expire'", program_id
        )
        assert entries == 25


@pytest.mark.usefixtures("fresh_settings")
class TestExpireFromTheCli:
    async def test_runs_with_a_progress_bar_and_reruns_as_a_no_op(self, api: Api) -> None:
        members = [await api.enrol() for _ in range(3)]
        date = soon(2)
        for member in members:
            await api.award(member, 6, expires_at=date.isoformat())
        env = {"LEDGER_DATABASE_URL": database_url(), "LEDGER_ENV": "test"}
        args = ["jobs", "run", "expire", "--program", api.program, "--as-of", date.isoformat(), "--progress"]
        result = await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)
        assert result.exit_code == 0, result.output
        assert "3 members, 3 lots, 18 points" in result.output
        assert "3/3" in result.output  # the bar, drawn once at the end off a terminal
        again = await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)
        assert "0 members, 0 lots, 0 points" in again.output
        assert [await api.available(member) for member in members] == [0, 0, 0]


class TestResume:
    async def test_a_run_cut_off_after_a_batch_is_finished_by_the_next(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        date = soon(1)
        members = [await api.enrol() for _ in range(5)]
        for member in members:
            await api.award(member, 2, expires_at=date.isoformat())
        program_id = await db.fetchval("SELECT id FROM program WHERE code = $1", api.program)

        class Crash(Exception):
            pass

        def crash(_: int) -> None:
            raise Crash

        database = Database(database_url(), get_settings())
        await database.connect()
        try:
            with pytest.raises(Crash):
                await expiry.expire(
                    database,
                    program_ids=[program_id],
                    as_of=date,
                    now=datetime.now(UTC),
                    batch=2,
                    on_progress=crash,
                )
            assert sorted([await api.available(member) for member in members]) == [0, 0, 2, 2, 2]
            done = await expiry.expire(
                database, program_ids=[program_id], as_of=date, now=datetime.now(UTC), batch=2
            )
        finally:
            await database.dispose()
        assert (done.members, done.points) == (3, 6)
        assert [await api.available(member) for member in members] == [0] * 5
        entries = await db.fetchval(
            "SELECT count(*) FROM journal_entry WHERE program_id = $1 AND kind = 'expire'", program_id
        )
        assert entries == 5


class TestRefundsTakeTheOrdersOwnPoints:
    async def test_a_refund_leaves_the_members_older_points_alone(self, api: Api) -> None:
        await api.use_rules(rules({"policy": "rolling", "months": 12}))
        member = await api.enrol()
        soon_date = soon(5)
        await api.award(member, 100, expires_at=soon_date.isoformat())
        placed = await order(api, member, "50.00", datetime.now(UTC) - timedelta(minutes=1))
        refund = await api.refund(placed["order_id"], amount={"amount": "50.00", "currency": "EUR"})
        assert refund.status_code == 201, refund.text
        # Oldest-first would have taken the soon-expiring points and kept the order's.
        assert await expiring(api, member) == [(100, soon_date)]

    async def test_after_activation_too(self, api: Api) -> None:
        await api.use_rules(rules({"policy": "rolling", "months": 12}, pending_days=14))
        member = await api.enrol()
        soon_date = soon(40)
        await api.award(member, 100, expires_at=soon_date.isoformat())
        placed = await order(api, member, "50.00", datetime.now(UTC) - timedelta(days=1))
        done = await api.post(
            "/v1/jobs/activate-pending", {"as_of": soon(20).isoformat()}, idempotency_key=None
        )
        assert done.json()["counts"]["credits"] == 1
        refund = await api.refund(placed["order_id"], amount={"amount": "20.00", "currency": "EUR"})
        assert refund.json()["from_available"] == 20
        listed = await expiring(api, member)
        assert listed[0] == (100, soon_date)
        assert listed[1][0] == 30


class TestPendingAwardsAndPolicies:
    async def test_a_pending_award_that_would_activate_expired_is_refused(self, api: Api) -> None:
        await api.use_rules(rules({"policy": "rolling", "months": 1}))
        member = await api.enrol()
        refused = await api.award(member, 10, pending_until=soon(60).isoformat())
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["field"] == "body.pending_until"
        fine = await api.award(member, 10, pending_until=soon(10).isoformat())
        assert fine.status_code == 201, fine.text
        assert (await api.balances(member))["pending"] == 10


async def expire_directly(
    database: Database, program_id: int, as_of: datetime, *, batch: int = 2
) -> tuple[expiry.Expired, int]:
    """The job as the worker runs it, and how many members it looked at."""
    totals: list[int] = []
    steps: list[int] = []
    done = await expiry.expire(
        database,
        program_ids=[program_id],
        as_of=as_of,
        now=datetime.now(UTC),
        batch=batch,
        on_total=totals.append,
        on_progress=steps.append,
    )
    assert sum(steps) == totals[0]
    return done, totals[0]


@pytest.fixture
async def database() -> AsyncIterator[Database]:
    db = Database(database_url(), get_settings())
    await db.connect()
    yield db
    await db.dispose()


class TestOnlyTheDue:
    """The job looks only at members with something that may have expired: lots past
    their date, and under an inactivity policy members whose last activity reached
    the cutoff since its last run, or who were given points since it began."""

    async def test_a_due_member_many_batches_in_is_expired_and_no_other_is_looked_at(
        self, api: Api, database: Database, db: asyncpg.Connection
    ) -> None:
        date = soon(3)
        later = [await api.enrol() for _ in range(7)]
        for member in later:
            await api.award(member, 10, expires_at=soon(60).isoformat())
        due = await api.enrol()  # the last id
        await api.award(due, 5, expires_at=date.isoformat())
        program_id = await db.fetchval("SELECT id FROM program WHERE code = $1", api.program)
        done, looked_at = await expire_directly(database, program_id, date)
        assert (done.members, done.lots, done.points, looked_at) == (1, 1, 5, 1)
        assert [await api.available(member) for member in later] == [10] * 7

    async def test_points_given_to_an_inactive_member_after_a_run_expire_at_the_next(
        self, api: Api, database: Database, db: asyncpg.Connection
    ) -> None:
        await api.use_rules(rules({"policy": "inactivity", "months": 6}))
        long_ago = (datetime.now(UTC) - timedelta(days=800)).isoformat()
        idle = await api.enrol(enrolled_at=long_ago)
        active = [await api.enrol(enrolled_at=long_ago) for _ in range(3)]
        for member in active:
            await order(api, member, "20.00", datetime.now(UTC) - timedelta(days=1))
        program_id = await db.fetchval("SELECT id FROM program WHERE code = $1", api.program)
        assert (await expire_directly(database, program_id, soon(1)))[0].members == 0
        # An award or a transfer in is no activity: the member stays inactive, and
        # what they were given expires at the next run.
        await api.award(idle, 30)
        done, looked_at = await expire_directly(database, program_id, soon(2))
        assert (done.members, done.points, looked_at) == (1, 30, 1)
        assert await api.available(idle) == 0
        assert (await api.transfer(active[0], idle, 5)).status_code == 201
        done, _ = await expire_directly(database, program_id, soon(3))
        assert (done.members, done.points) == (1, 5)
        assert [await api.available(member) for member in active] == [15, 20, 20]

    async def test_a_deadline_that_passes_between_runs_is_found_by_the_next(
        self, api: Api, database: Database, db: asyncpg.Connection
    ) -> None:
        await api.use_rules({**rules({"policy": "inactivity", "months": 6}), "timezone": "Asia/Shanghai"})
        now = datetime.now(UTC)
        long_ago = (now - timedelta(days=800)).isoformat()
        ordered = await api.enrol(enrolled_at=long_ago)
        await order(api, ordered, "25.00", now - timedelta(days=170))  # six months on: in about 12 days
        enrolled = await api.enrol(enrolled_at=(now - timedelta(days=175)).isoformat())  # in about 7 days
        await api.award(enrolled, 40)
        keeps = await api.enrol(enrolled_at=long_ago)
        await order(api, keeps, "10.00", now - timedelta(days=100))
        program_id = await db.fetchval("SELECT id FROM program WHERE code = $1", api.program)
        assert (await expire_directly(database, program_id, now))[0].members == 0
        # The job does not run for two months.
        done, _ = await expire_directly(database, program_id, now + timedelta(days=60))
        assert (done.members, done.points) == (2, 65)
        assert [await api.available(member) for member in (ordered, enrolled, keeps)] == [0, 0, 10]
        done, looked_at = await expire_directly(database, program_id, now + timedelta(days=61))
        assert (done.members, looked_at) == (0, 0)

    async def test_shorter_months_apply_at_the_next_run(
        self, api: Api, database: Database, db: asyncpg.Connection
    ) -> None:
        await api.use_rules(rules({"policy": "inactivity", "months": 12}))
        now = datetime.now(UTC)
        member = await api.enrol(enrolled_at=(now - timedelta(days=800)).isoformat())
        await order(api, member, "50.00", now - timedelta(days=240))
        program_id = await db.fetchval("SELECT id FROM program WHERE code = $1", api.program)
        assert (await expire_directly(database, program_id, now))[0].members == 0
        assert (await expire_directly(database, program_id, now + timedelta(days=1)))[1] == 0
        await api.use_rules(rules({"policy": "inactivity", "months": 6}))
        done, _ = await expire_directly(database, program_id, now + timedelta(days=2))
        assert (done.members, done.points) == (1, 50)
