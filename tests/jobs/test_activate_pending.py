"""The activate-pending job over HTTP and from the CLI."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from app.cli import cli
from app.config import Environment, get_settings
from app.db import Database
from app.jobs.service import run
from tests.support import Api, database_url, unique

PENDING_14_DAYS: dict[str, Any] = {"earn": {"base": {"points": 1, "per": "1"}, "pending_days": 14}}


async def pending_order(api: Api, member: str, total: str, paid_at: datetime) -> dict[str, Any]:
    body = {
        "order_id": unique("o"),
        "member": member,
        "total": {"amount": total, "currency": "EUR"},
        "paid_at": paid_at.isoformat(),
    }
    response = await api.post("/v1/orders", body)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "pending"
    result: dict[str, Any] = response.json()
    return result


async def run_job(api: Api, as_of: datetime | None = None, name: str = "activate-pending") -> Any:
    body = {} if as_of is None else {"as_of": as_of.isoformat()}
    return await api.post(f"/v1/jobs/{name}", body, idempotency_key=None)


class TestActivatePendingOverHttp:
    async def test_moves_points_once_their_return_window_has_passed(self, api: Api) -> None:
        await api.use_rules(PENDING_14_DAYS)
        member = await api.enrol()
        paid_at = datetime.now(UTC) - timedelta(days=2)
        order = await pending_order(api, member, "80.00", paid_at)

        early = await run_job(api, paid_at + timedelta(days=14) - timedelta(seconds=1))
        assert early.status_code == 200
        assert early.json()["counts"] == {"credits": 0, "points": 0}
        assert await api.balances(member) == {"available": 0, "pending": 80, "held": 0, "debt": 0}

        due = await run_job(api, paid_at + timedelta(days=14))
        assert due.json()["counts"] == {"credits": 1, "points": 80}
        assert await api.balances(member) == {"available": 80, "pending": 0, "held": 0, "debt": 0}
        entry = (await api.get(f"/v1/members/{member}/entries")).json()["items"][0]
        assert (entry["kind"], entry["order_id"], entry["points"], entry["pending_points"]) == (
            "activate",
            order["order_id"],
            80,
            -80,
        )
        assert datetime.fromisoformat(entry["occurred_at"]) == paid_at + timedelta(days=14)

        again = await run_job(api, paid_at + timedelta(days=14))
        assert again.json()["counts"] == {"credits": 0, "points": 0}
        assert await api.available(member) == 80

    async def test_a_partly_refunded_order_activates_what_is_left(self, api: Api) -> None:
        await api.use_rules(PENDING_14_DAYS)
        member = await api.enrol()
        paid_at = datetime.now(UTC) - timedelta(days=1)
        order = await pending_order(api, member, "100.00", paid_at)
        refund = await api.refund(order["order_id"], amount={"amount": "30.00", "currency": "EUR"})
        assert refund.json()["from_pending"] == 30
        done = await run_job(api, paid_at + timedelta(days=15))
        assert done.json()["counts"] == {"credits": 1, "points": 70}
        late = await api.refund(order["order_id"], amount={"amount": "70.00", "currency": "EUR"})
        assert (late.json()["from_pending"], late.json()["from_available"]) == (0, 70)
        assert await api.balances(member) == {"available": 0, "pending": 0, "held": 0, "debt": 0}

    async def test_pending_awards_activate_too(self, api: Api) -> None:
        member = await api.enrol()
        until = datetime.now(UTC) + timedelta(days=3)
        await api.award(member, 25, pending_until=until.isoformat())
        done = await run_job(api, until)
        assert done.json()["counts"] == {"credits": 1, "points": 25}
        assert await api.available(member) == 25

    async def test_a_reversed_pending_award_has_nothing_left_to_activate(self, api: Api) -> None:
        member = await api.enrol()
        until = datetime.now(UTC) + timedelta(days=3)
        award = (await api.award(member, 25, pending_until=until.isoformat())).json()
        assert (await api.reverse(award["id"])).status_code == 201
        assert (await run_job(api, until)).json()["counts"] == {"credits": 0, "points": 0}
        assert await api.balances(member) == {"available": 0, "pending": 0, "held": 0, "debt": 0}

    async def test_touches_only_the_callers_program(self, api: Api, other: Api) -> None:
        until = datetime.now(UTC) + timedelta(days=1)
        mine, theirs = await api.enrol(), await other.enrol()
        await api.award(mine, 10, pending_until=until.isoformat())
        await other.award(theirs, 10, pending_until=until.isoformat())
        assert (await run_job(api, until)).json()["counts"]["credits"] == 1
        assert (await other.balances(theirs))["pending"] == 10

    async def test_unknown_job_is_404_and_it_needs_admin(self, api: Api) -> None:
        unknown = await run_job(api, name="make-points")
        assert unknown.status_code == 404
        assert unknown.json()["code"] == "unknown_job"
        key = await api.key_with("points:adjust")
        response = await api.post("/v1/jobs/activate-pending", {}, key=key, idempotency_key=None)
        assert response.status_code == 403

    async def test_a_future_as_of_is_refused_in_production(self, api: Api, app: FastAPI) -> None:
        context = app.state.context
        original = context.settings
        context.settings = original.model_copy(update={"env": Environment.production})
        try:
            response = await run_job(api, datetime.now(UTC) + timedelta(days=1))
        finally:
            context.settings = original
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "body.as_of"
        assert (await run_job(api, datetime.now(UTC) + timedelta(days=1))).status_code == 200


class TestConcurrentRuns:
    async def test_two_runs_at_once_activate_each_credit_once(self, api: Api, db: asyncpg.Connection) -> None:
        until = datetime.now(UTC) + timedelta(days=1)
        members = [await api.enrol() for _ in range(30)]
        for member in members:
            await api.award(member, 3, pending_until=until.isoformat())
        program_id = await db.fetchval("SELECT id FROM program WHERE code = $1", api.program)
        databases = [Database(database_url(), get_settings()) for _ in range(2)]
        try:
            for database in databases:
                await database.connect()
            summaries = await asyncio.gather(
                *(
                    run(
                        database,
                        "activate-pending",
                        program_id=program_id,
                        as_of=until,
                        now=datetime.now(UTC),
                    )
                    for database in databases
                )
            )
        finally:
            for database in databases:
                await database.dispose()
        assert sum(summary.counts["credits"] for summary in summaries) == 30
        assert [await api.available(member) for member in members] == [3] * 30


@pytest.mark.usefixtures("fresh_settings")
class TestActivatePendingFromTheCli:
    async def test_runs_for_one_program_as_of_an_instant(self, api: Api) -> None:
        member = await api.enrol()
        until = datetime.now(UTC) + timedelta(days=5)
        await api.award(member, 12, pending_until=until.isoformat())
        env = {"LEDGER_DATABASE_URL": database_url(), "LEDGER_ENV": "test"}
        args = ["jobs", "run", "activate-pending", "--program", api.program, "--as-of", until.isoformat()]
        result = await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)
        assert result.exit_code == 0, result.output
        assert "1 credits, 12 points" in result.output
        assert await api.available(member) == 12
        again = await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)
        assert "0 credits, 0 points" in again.output

    async def test_refuses_unknown_jobs_programs_and_instants(self) -> None:
        env = {"LEDGER_DATABASE_URL": database_url(), "LEDGER_ENV": "test"}
        runner = CliRunner()
        unknown = await asyncio.to_thread(runner.invoke, cli, ["jobs", "run", "nope"], env=env)
        assert unknown.exit_code == 2
        no_program = await asyncio.to_thread(
            runner.invoke, cli, ["jobs", "run", "activate-pending", "--program", "nobody-here"], env=env
        )
        assert no_program.exit_code == 1
        naive = await asyncio.to_thread(
            runner.invoke, cli, ["jobs", "run", "activate-pending", "--as-of", "2026-01-01T00:00:00"], env=env
        )
        assert naive.exit_code == 2
