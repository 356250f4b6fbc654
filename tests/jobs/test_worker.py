"""`points-ledger worker`: each job once per round, one worker per job at a time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.config import get_settings
from app.db import Database
from app.jobs.worker import LOCK_SPACE, Round, run_forever, run_round
from tests.support import Api, MovableClock, database_url, dsn


async def lots_to_expire(api: Api, clock: MovableClock) -> tuple[str, str, str]:
    """A member with points past their date, one with a due pending award, one with an expired hold."""
    expiring, pending, holding = await api.enrol(), await api.enrol(), await api.enrol()
    await api.award(expiring, 10, expires_at=(datetime.now(UTC) + timedelta(minutes=5)).isoformat())
    await api.award(pending, 7, pending_until=(datetime.now(UTC) + timedelta(minutes=5)).isoformat())
    await api.award(holding, 9)
    hold = await api.post(
        f"/v1/members/{holding}/holds",
        {"points": 9, "expires_at": (datetime.now(UTC) + timedelta(minutes=5)).isoformat()},
    )
    assert hold.status_code == 201, hold.text
    clock.offset = timedelta(minutes=10)
    return expiring, pending, holding


class TestRound:
    async def test_runs_every_job_as_of_now(self, api: Api, clock: MovableClock, database: Database) -> None:
        expiring, pending, holding = await lots_to_expire(api, clock)
        done = await run_round(database, clock)
        assert list(done.ran) == [
            "lift-statuses",
            "activate-pending",
            "release-holds",
            "expire",
            "evaluate-tiers",
            "notify-expiring",
            "fail-conversions",
            "close-statements",
            "check-cost-cap",
            "snapshot-segments",
            "rollup-reports",
        ]
        assert done.skipped == []
        assert await api.balances(expiring) == {"available": 0, "pending": 0, "held": 0, "debt": 0}
        assert await api.balances(pending) == {"available": 7, "pending": 0, "held": 0, "debt": 0}
        assert await api.balances(holding) == {"available": 9, "pending": 0, "held": 0, "debt": 0}
        again = await run_round(database, clock)
        for job in ("activate-pending", "release-holds", "expire"):
            assert again.ran[job] == dict.fromkeys(again.ran[job], 0)
        assert again.ran["evaluate-tiers"]["changes"] == 0  # it looks at every member, changes none

    async def test_skips_a_job_another_worker_is_running(
        self, api: Api, clock: MovableClock, database: Database
    ) -> None:
        expiring, _, _ = await lots_to_expire(api, clock)
        other_worker = await asyncpg.connect(dsn())
        try:
            assert await other_worker.fetchval(
                "SELECT pg_try_advisory_lock($1, hashtext('expire'))", LOCK_SPACE
            )
            done = await run_round(database, clock)
            assert done.skipped == ["expire"]
            assert "expire" not in done.ran
            assert await api.available(expiring) == 10
        finally:
            await other_worker.close()  # its session ends: so does its lock
        done = await run_round(database, clock, ["expire"])
        assert done.ran["expire"]["members"] >= 1
        assert await api.available(expiring) == 0

    async def test_two_workers_at_once_do_the_work_once(
        self, api: Api, clock: MovableClock, database: Database
    ) -> None:
        expiring, pending, holding = await lots_to_expire(api, clock)
        second = Database(database_url(), get_settings())
        await second.connect()
        try:
            rounds = await asyncio.gather(run_round(database, clock), run_round(second, clock))
        finally:
            await second.dispose()
        for job, key in (("activate-pending", "credits"), ("release-holds", "holds")):
            assert sum(done.ran.get(job, {key: 0})[key] for done in rounds) >= 1
        assert await api.balances(expiring) == {"available": 0, "pending": 0, "held": 0, "debt": 0}
        assert await api.balances(pending) == {"available": 7, "pending": 0, "held": 0, "debt": 0}
        assert await api.balances(holding) == {"available": 9, "pending": 0, "held": 0, "debt": 0}


class TestForever:
    async def test_rounds_until_stopped(self, clock: MovableClock, database: Database) -> None:
        stop = asyncio.Event()
        rounds: list[Round] = []

        def seen(done: Round) -> None:
            rounds.append(done)
            if len(rounds) == 2:
                stop.set()

        await asyncio.wait_for(
            run_forever(database, clock, interval=0.01, stop=stop, on_round=seen), timeout=60
        )
        assert len(rounds) == 2

    async def test_jobs_with_longer_intervals_wait_their_turn(
        self, clock: MovableClock, database: Database
    ) -> None:
        stop = asyncio.Event()
        rounds: list[Round] = []

        def seen(done: Round) -> None:
            rounds.append(done)
            if len(rounds) == 3:
                stop.set()

        hourly = {
            "expire": 3600.0,
            "evaluate-tiers": 3600.0,
            "notify-expiring": 3600.0,
            "close-statements": 3600.0,
            "check-cost-cap": 3600.0,
            "snapshot-segments": 3600.0,
            "rollup-reports": 3600.0,
        }
        await asyncio.wait_for(
            run_forever(database, clock, interval=0.01, stop=stop, on_round=seen, job_intervals=hourly),
            timeout=60,
        )
        assert list(rounds[0].ran) == [
            "lift-statuses",
            "activate-pending",
            "release-holds",
            "expire",
            "evaluate-tiers",
            "notify-expiring",
            "fail-conversions",
            "close-statements",
            "check-cost-cap",
            "snapshot-segments",
            "rollup-reports",
        ]
        assert [list(done.ran) for done in rounds[1:]] == [
            ["lift-statuses", "activate-pending", "release-holds", "fail-conversions"]
        ] * 2


@pytest.mark.usefixtures("fresh_settings")
class TestWorkerCli:
    async def test_once_runs_a_round_and_reports_it(self) -> None:
        env = {"LEDGER_DATABASE_URL": database_url(), "LEDGER_ENV": "test"}
        result = await asyncio.to_thread(CliRunner().invoke, cli, ["worker", "--once"], env=env)
        assert result.exit_code == 0, result.output
        for job in (
            "lift-statuses",
            "activate-pending",
            "release-holds",
            "expire",
            "evaluate-tiers",
            "notify-expiring",
        ):
            assert f"{job}: " in result.output
        assert "chained: " in result.output
        assert "webhooks: " in result.output
