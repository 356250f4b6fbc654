"""Daily rollups (rollup-reports): every report reads the same with the rolled days
as from the ledger alone, for whole and partial days, past instants and periods;
a day is rolled once it is final, once only, by one run at a time; `verify`
names a tampered rollup."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.ledger.verify import verify
from app.reports.rollups import MARGIN, VERIFY_CHECKS
from tests.reports.test_reports import VALUATION, Ledger, report, rules, small_ledger
from tests.support import Api, MovableClock, database_url

ROLLUP_CHECK = VERIFY_CHECKS[-1][0]
LATER = timedelta(days=3)


async def program_id(db: asyncpg.Connection, api: Api) -> int:
    found = await db.fetchval("SELECT id FROM program WHERE code = $1", api.program)
    assert found is not None
    return int(found)


async def roll(api: Api, **body: str) -> dict[str, int]:
    response = await api.post("/v1/jobs/rollup-reports", body or None, idempotency_key=None)
    assert response.status_code == 200, response.text
    counts: dict[str, int] = response.json()["counts"]
    return counts


async def rolled_small_ledger(api: Api, db: asyncpg.Connection, clock: MovableClock) -> int:
    """The small ledger, its days rolled (the clock moved past them); its program."""
    await small_ledger(api)
    clock.offset = LATER
    await roll(api)
    return await program_id(db, api)


def iso(instant: datetime) -> str:
    return instant.isoformat()


def all_reports(ledger: Ledger, now: datetime) -> list[tuple[str, dict[str, str]]]:
    """Each report over the ledger's period (partial first and last days), over
    whole days around it, and at instants before, inside and after it."""
    start, end = ledger.start, ledger.end
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    periods = [
        (start, end),
        (day - timedelta(days=1), day + timedelta(days=2)),
        (start - timedelta(hours=5), now),
        (start + (end - start) / 2, now - timedelta(hours=1)),
    ]
    asked: list[tuple[str, dict[str, str]]] = []
    for first, last in periods:
        span = {"from": iso(first), "to": iso(last)}
        asked += [(name, span) for name in ("breakage", "redemption-cost", "overview")]
        asked += [("activity", {**span, "granularity": unit}) for unit in ("day", "week", "month")]
    for at in (start - timedelta(minutes=1), start + (end - start) / 2, end, day + timedelta(days=1), now):
        asked.append(("liability", {"as_of": iso(at)}))
    return asked


async def read_all(api: Api, asked: list[tuple[str, dict[str, str]]]) -> list[dict[str, Any]]:
    return [await report(api, name, **params) for name, params in asked]


async def forget_rollups(db: asyncpg.Connection, program: int) -> None:
    await db.execute("DELETE FROM report_day_figure WHERE program_id = $1", program)
    await db.execute("DELETE FROM report_rollup WHERE program_id = $1", program)


def rollup_mismatches(outcomes: list[Any]) -> list[str]:
    return [example for outcome in outcomes if outcome.name == ROLLUP_CHECK for example in outcome.examples]


async def sound(db: asyncpg.Connection) -> None:
    assert all(outcome.mismatches == 0 for outcome in await verify(db, VERIFY_CHECKS))


def noon(days: int) -> timedelta:
    """The clock offset that makes now noon (UTC) `days` days after today."""
    real = datetime.now(UTC)
    return real.replace(hour=12, minute=0, second=0, microsecond=0) + timedelta(days=days) - real


async def ordered(api: Api, member: str, total: str) -> None:
    placed = await api.order(member, total)
    assert placed.status_code == 201, placed.text


async def entry_id(response: Any) -> str:
    assert response.status_code == 201, response.text
    found: str = response.json()["id"]
    return found


class TestRollupReports:
    async def test_every_report_reads_the_same_with_and_without_rollups(
        self, api: Api, db: asyncpg.Connection, clock: MovableClock
    ) -> None:
        ledger = await small_ledger(api)
        program = await program_id(db, api)
        clock.offset = LATER
        # more the next day, after the small ledger's day is rolled: the live remainder
        now = clock.now()
        asked = all_reports(ledger, now)
        without = await read_all(api, asked)
        counts = await roll(api)
        assert counts["programs"] == 1
        assert counts["days"] >= 2
        assert counts["figures"] > 0
        assert await db.fetchval("SELECT count(*) FROM report_day_figure WHERE program_id = $1", program) > 0
        assert await read_all(api, asked) == without
        # activity after the rolled days (recorded now, 3 days on) reads live on top of them
        assert (await api.award(ledger.a, 11)).status_code == 201
        assert (await api.redeem(ledger.b, 7)).status_code == 201
        later = all_reports(ledger, clock.now())
        with_rollups = await read_all(api, later)
        await forget_rollups(db, program)
        assert await read_all(api, later) == with_rollups
        assert with_rollups[-1]["outstanding"] == 64
        await sound(db)

    async def test_a_transfer_and_a_refund_after_the_rolled_days(
        self, api: Api, db: asyncpg.Connection, clock: MovableClock
    ) -> None:
        """The unrolled remainder replays the lots of the members it touched (and
        of whoever they shared an entry with) on top of the rolled days."""
        await api.use_rules(rules(None, valuation=VALUATION))
        a, b, c = await api.enrol(), await api.enrol(), await api.enrol()
        order = await api.order(a, "200.00")
        assert order.status_code == 201, order.text
        expiring = (clock.now() + timedelta(days=40)).isoformat()
        assert (await api.award(b, 70, expires_at=expiring)).status_code == 201
        assert (await api.transfer(b, c, 50)).status_code == 201
        start = clock.now() - timedelta(minutes=1)
        clock.offset = LATER
        assert (await roll(api))["days"] >= 2
        assert (await api.transfer(a, b, 60)).status_code == 201
        refund = await api.refund(order.json()["order_id"], amount={"amount": "50.00", "currency": "EUR"})
        assert refund.status_code == 201, refund.text
        assert (await api.redeem(b, 70)).status_code == 201
        asked = [
            ("liability", {"as_of": iso(clock.now())}),
            ("breakage", {"from": iso(start), "to": iso(clock.now())}),
            ("activity", {"from": iso(start), "to": iso(clock.now()), "granularity": "day"}),
            ("overview", {"from": iso(start), "to": iso(clock.now())}),
        ]
        with_rollups = await read_all(api, asked)
        await forget_rollups(db, await program_id(db, api))
        assert await read_all(api, asked) == with_rollups
        assert with_rollups[0]["outstanding"] == 200 + 70 - 50 - 70
        await sound(db)

    async def test_the_kept_lots_carry_on_over_consecutive_runs(
        self, api: Api, db: asyncpg.Connection, clock: MovableClock
    ) -> None:
        """The first run keeps each member's lots at the end of the rolled days; the
        next day's run replays only that day on them, and a report only what came
        after. A refund, transfers, a reversal that gives back to lots taken on an
        earlier day, an expiry: every report reads the same as from the ledger
        alone, at instants inside each rolled day and after them, and `verify`
        finds the kept lots those of the whole history's replay."""
        await api.use_rules(rules(None, valuation=VALUATION))
        clock.offset = noon(1)
        start = clock.now() - timedelta(minutes=1)
        a, b, c = await api.enrol(), await api.enrol(), await api.enrol()
        order = await api.order(a, "200.00")
        assert order.status_code == 201, order.text
        expiring = (clock.now() + timedelta(days=1, hours=6)).isoformat()
        assert (await api.award(b, 70, expires_at=expiring)).status_code == 201
        assert (await api.award(c, 40)).status_code == 201
        assert (await api.transfer(b, c, 50)).status_code == 201
        # c's soonest expiring points first: the 50 from b, then 10 of its own
        redemption = await entry_id(await api.redeem(c, 60))
        await ordered(api, c, "30.00")
        first_day = clock.now()
        clock.offset = noon(2)
        assert (await roll(api))["days"] >= 1
        program = await program_id(db, api)
        kept = await db.fetchval("SELECT count(*) FROM report_lot WHERE program_id = $1", program)
        assert kept > 0
        # the next day: the reversal gives back to the lots the redemption took the day before
        refund = await api.refund(order.json()["order_id"], amount={"amount": "50.00", "currency": "EUR"})
        assert refund.status_code == 201, refund.text
        assert (await api.transfer(a, b, 60)).status_code == 201
        assert (await api.reverse(redemption)).status_code == 201
        assert (await api.redeem(b, 30)).status_code == 201
        await ordered(api, a, "10.00")
        await ordered(api, b, "20.00")
        second_day = clock.now()
        # read on the kept lots with the second day live
        asked = [
            ("liability", {"as_of": iso(first_day)}),
            ("liability", {"as_of": iso(second_day)}),
            ("breakage", {"from": iso(start), "to": iso(second_day)}),
            ("breakage", {"from": iso(start), "to": iso(first_day)}),
            ("activity", {"from": iso(start), "to": iso(second_day), "granularity": "day"}),
            ("overview", {"from": iso(start), "to": iso(second_day)}),
        ]
        on_the_first_run = await read_all(api, asked)
        clock.offset = noon(3)
        expired = await api.post("/v1/jobs/expire", {"as_of": iso(clock.now())}, idempotency_key=None)
        assert expired.status_code == 200, expired.text
        assert expired.json()["counts"]["points"] > 0
        assert (await roll(api))["days"] == 1  # the second day alone, on the kept lots
        assert (await api.transfer(c, a, 10)).status_code == 201
        assert (await api.award(a, 5)).status_code == 201
        for member, total in ((b, "5.00"), (c, "7.00"), (c, "8.00")):
            await ordered(api, member, total)
        now = clock.now()
        second_day_start = second_day.replace(hour=0, minute=0, second=0, microsecond=0)
        later = [
            *asked,
            ("liability", {"as_of": iso(now)}),
            ("liability", {"as_of": iso(second_day + timedelta(seconds=1))}),
            ("breakage", {"from": iso(start), "to": iso(now)}),
            ("overview", {"from": iso(start), "to": iso(now)}),
            ("overview", {"from": iso(first_day), "to": iso(now)}),
            ("overview", {"from": iso(second_day_start), "to": iso(now)}),
            ("overview", {"from": iso(second_day_start - timedelta(days=1)), "to": iso(now)}),
            *[
                ("activity", {"from": iso(start), "to": iso(now), "granularity": unit})
                for unit in ("day", "week", "month")
            ],
        ]
        on_the_second_run = await read_all(api, later)
        assert on_the_second_run[: len(asked)] == on_the_first_run
        await sound(db)
        await forget_rollups(db, program)
        assert await read_all(api, later) == on_the_second_run
        # a: 200 - 50 refunded - 60 + 10 + 5; b: 70 - 50 + 60 - 30 (its 20 expiring first);
        # c: 40 + 50 (b's, expiring) - 60 + 60 given back - 50 expired - 10
        # and the orders: c 30 the first day, a 10 and b 20 the second, b 5 and c 15 the third
        assert on_the_second_run[len(asked)]["outstanding"] == 105 + 50 + 30 + 30 + 30 + 20
        assert on_the_second_run[len(asked) + 2]["total"]["expired"] == 50
        whole, _, from_the_second_day, whole_days = on_the_second_run[len(asked) + 3 : len(asked) + 7]
        # a ordered on the first and second days, b on the second and third, c twice on the third
        assert (whole["buyers"], whole["repeat_buyers"]) == (3, 3)
        assert (whole_days["buyers"], whole_days["repeat_buyers"]) == (3, 3)
        assert (from_the_second_day["buyers"], from_the_second_day["repeat_buyers"]) == (3, 2)
        assert whole["members_participating"] == 3

    async def test_verify_names_tampered_kept_lots(
        self, api: Api, db: asyncpg.Connection, clock: MovableClock
    ) -> None:
        program = await rolled_small_ledger(api, db, clock)
        member = await db.fetchval(
            "SELECT min(member_id) FROM report_lot WHERE program_id = $1 AND remaining > 0", program
        )
        assert member is not None
        before = await report(api, "liability", as_of=iso(clock.now()))
        where = "program_id = $1 AND member_id = $2"
        await db.execute(f"UPDATE report_lot SET remaining = remaining + 1 WHERE {where}", program, member)
        try:
            assert await report(api, "liability", as_of=iso(clock.now())) != before
            found = rollup_mismatches(await verify(db, VERIFY_CHECKS))
            assert any(
                f"program={program}," in line and f"kept lots of member {member}" in line for line in found
            )
        finally:
            await db.execute(
                f"UPDATE report_lot SET remaining = remaining - 1 WHERE {where}", program, member
            )
        assert rollup_mismatches(await verify(db, VERIFY_CHECKS)) == []

    async def test_the_kept_lots_keep_each_days_versions(
        self, api: Api, db: asyncpg.Connection, clock: MovableClock
    ) -> None:
        """Lots changed on two rolled days have a version for each: a liability at
        an instant inside the second day starts from the first day's, and `verify`
        names a tampered first-day version by its day although the last versions
        (and a liability now) are sound."""
        await api.use_rules(rules(None, valuation=VALUATION))
        clock.offset = noon(1)
        member = await api.enrol()
        soon = (clock.now() + timedelta(days=20)).isoformat()
        assert (await api.award(member, 20, expires_at=soon)).status_code == 201
        assert (await api.award(member, 100)).status_code == 201
        first_day = clock.now().date()
        clock.offset = noon(2)
        # the soonest expiring lot first: 20 of the first, 10 of the second
        assert (await api.redeem(member, 30)).status_code == 201
        inside = clock.now()
        clock.offset = noon(3)
        assert (await roll(api))["days"] >= 2
        program = await program_id(db, api)
        member_id = await db.fetchval(
            "SELECT id FROM member WHERE program_id = $1 AND external_id = $2", program, member
        )
        versions = await db.fetch(
            "SELECT day, remaining FROM report_lot WHERE program_id = $1 AND member_id = $2"
            " ORDER BY seq, day",
            program,
            member_id,
        )
        second_day = first_day + timedelta(days=1)
        assert [tuple(row) for row in versions] == [
            (first_day, 20),
            (second_day, 0),
            (first_day, 100),
            (second_day, 90),
        ]
        past = await report(api, "liability", as_of=iso(inside))
        later = clock.now()
        now = await report(api, "liability", as_of=iso(later))
        where = "program_id = $1 AND member_id = $2 AND day = $3 AND remaining = 20"
        await db.execute(f"UPDATE report_lot SET remaining = 21 WHERE {where}", program, member_id, first_day)
        try:
            # the redemption now takes 21 of the soonest expiring lot, 9 of the other
            assert await report(api, "liability", as_of=iso(inside)) != past
            assert await report(api, "liability", as_of=iso(later)) == now
            found = rollup_mismatches(await verify(db, VERIFY_CHECKS))
            day = first_day.isoformat()
            assert f"program={program}, day={day}, figure=kept lots of member {member_id}" in found, found
        finally:
            where = "program_id = $1 AND member_id = $2 AND day = $3 AND remaining = 21"
            await db.execute(
                f"UPDATE report_lot SET remaining = 20 WHERE {where}", program, member_id, first_day
            )
        assert await report(api, "liability", as_of=iso(inside)) == past
        assert rollup_mismatches(await verify(db, VERIFY_CHECKS)) == []

    async def test_verify_names_a_missing_member_day(
        self, api: Api, db: asyncpg.Connection, clock: MovableClock
    ) -> None:
        program = await rolled_small_ledger(api, db, clock)
        row = await db.fetchrow(
            "DELETE FROM report_member_day WHERE program_id = $1 AND fact = 'active'"
            " AND (day, member_id) = (SELECT day, member_id FROM report_member_day"
            "  WHERE program_id = $1 AND fact = 'active' ORDER BY day, member_id LIMIT 1)"
            " RETURNING *",
            program,
        )
        assert row is not None
        try:
            found = rollup_mismatches(await verify(db, VERIFY_CHECKS))
            expected = f"program={program}, day={row['day'].isoformat()}, figure=member day active of member"
            assert any(line.startswith(expected) for line in found), found
        finally:
            await db.execute(
                "INSERT INTO report_member_day SELECT $1, $2, $3, $4, $5, $6, $7, $8",
                *row.values(),
            )
        assert rollup_mismatches(await verify(db, VERIFY_CHECKS)) == []

    async def test_a_day_not_yet_final_is_not_rolled(self, api: Api, db: asyncpg.Connection) -> None:
        await small_ledger(api)
        assert await roll(api) == {"programs": 1, "days": 0, "figures": 0}
        program = await program_id(db, api)
        assert await db.fetchval("SELECT count(*) FROM report_rollup WHERE program_id = $1", program) == 0

    async def test_a_day_waits_for_the_oldest_running_transaction(
        self, api: Api, clock: MovableClock, migrated_database: str
    ) -> None:
        """Today is final once now - MARGIN - (the oldest running transaction's age)
        has passed its end: a transaction that began before that holds it back."""
        await small_ledger(api)
        blocker = await asyncpg.connect(migrated_database.replace("postgresql+asyncpg", "postgresql"))
        try:
            began = datetime.now(UTC)
            async with blocker.transaction():
                await blocker.execute("SELECT 1")
                # as the job reckons, the blocker began 2 s before today (with the
                # margin) ended; by now, today ended long enough ago but for it
                tomorrow = (began + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
                clock.offset = tomorrow - began + MARGIN - timedelta(seconds=2)
                await asyncio.sleep(5)
                assert (await roll(api))["days"] == 0
        finally:
            await blocker.close()
        assert (await roll(api))["days"] == 1

    async def test_rerun_and_concurrent_runs_roll_each_day_once(
        self, api: Api, db: asyncpg.Connection, clock: MovableClock
    ) -> None:
        await small_ledger(api)
        clock.offset = LATER
        first, second = await asyncio.gather(roll(api), roll(api))
        assert sorted([first["days"], second["days"]])[0] == 0
        assert first["days"] + second["days"] >= 2
        assert await roll(api) == {"programs": 1, "days": 0, "figures": 0}
        program = await program_id(db, api)
        rows = await db.fetchval("SELECT count(*) FROM report_day_figure WHERE program_id = $1", program)
        assert rows == first["figures"] + second["figures"]
        await sound(db)

    async def test_verify_names_a_tampered_rollup(
        self, api: Api, db: asyncpg.Connection, clock: MovableClock
    ) -> None:
        program = await rolled_small_ledger(api, db, clock)
        row = await db.fetchrow(
            "SELECT day, key FROM report_day_figure WHERE program_id = $1 AND figure = 'cohort.issued'"
            " ORDER BY day LIMIT 1",
            program,
        )
        assert row is not None
        where = "program_id = $1 AND day = $2 AND figure = 'cohort.issued' AND key = $3"
        await db.execute(f"UPDATE report_day_figure SET value = value + 1 WHERE {where}", program, *row)
        try:
            found = rollup_mismatches(await verify(db, VERIFY_CHECKS))
            assert (
                f"program={program}, day={row['day'].isoformat()}, figure=cohort.issued {row['key']}" in found
            )
        finally:
            await db.execute(f"UPDATE report_day_figure SET value = value - 1 WHERE {where}", program, *row)
        assert rollup_mismatches(await verify(db, VERIFY_CHECKS)) == []

    async def test_the_job_needs_admin_and_rolls_its_own_program(
        self, api: Api, other: Api, db: asyncpg.Connection, clock: MovableClock
    ) -> None:
        await small_ledger(api)
        clock.offset = LATER
        assert (await roll(other))["days"] == 0
        program = await program_id(db, api)
        assert await db.fetchval("SELECT count(*) FROM report_rollup WHERE program_id = $1", program) == 0
        assert (await roll(api))["days"] >= 2

    @pytest.mark.usefixtures("fresh_settings")
    async def test_from_the_cli(self, api: Api) -> None:
        """The CLI runs by the real clock: today is not final yet, nothing rolls."""
        member = await api.enrol()
        assert (await api.award(member, 5)).status_code == 201
        env = {"LEDGER_DATABASE_URL": database_url(), "LEDGER_ENV": "test"}
        args = ["jobs", "run", "rollup-reports", "--program", api.program]
        result = await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)
        assert result.exit_code == 0, result.output
        assert "1 programs, 0 days, 0 figures" in result.output


@pytest.mark.parametrize("timezone", ["Pacific/Kiritimati", "America/Los_Angeles"])
async def test_local_days_in_the_programs_timezone(
    api: Api, db: asyncpg.Connection, clock: MovableClock, timezone: str
) -> None:
    await api.use_rules(rules(None, valuation=VALUATION, timezone=timezone))
    member = await api.enrol()
    assert (await api.order(member, "80.00")).status_code == 201
    assert (await api.award(member, 30)).status_code == 201
    start = clock.now() - timedelta(hours=30)
    clock.offset = LATER
    assert (await roll(api))["days"] >= 2
    state = await db.fetchrow(
        "SELECT timezone FROM report_rollup WHERE program_id = $1", await program_id(db, api)
    )
    assert state is not None
    assert state["timezone"] == timezone
    assert (await api.redeem(member, 20)).status_code == 201
    asked = [
        ("activity", {"from": iso(start), "to": iso(clock.now()), "granularity": unit})
        for unit in ("day", "week", "month")
    ] + [
        ("liability", {"as_of": iso(clock.now())}),
        ("breakage", {"from": iso(start), "to": iso(clock.now())}),
    ]
    with_rollups = await read_all(api, asked)
    await forget_rollups(db, await program_id(db, api))
    assert await read_all(api, asked) == with_rollups
    assert with_rollups[3]["outstanding"] == 90
