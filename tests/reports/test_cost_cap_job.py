"""The check-cost-cap job: the last closed month in the program's timezone,
checked against the cap without anyone asking for the report; one
`cost.cap_exceeded` a month however often the job (or the report) runs."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.ledger.verify import verify
from app.reports.cap import last_closed_month
from tests.support import Api, MovableClock, database_url

VALUATION = {"cost_per_point": "0.005", "currency": "EUR", "redemption_cost_cap": "0.03"}
ZONE = "Pacific/Auckland"  # 11-13 hours ahead of UTC: its months are not UTC's


def rules(**extra: Any) -> dict[str, Any]:
    return {"earn": {"base": {"points": 1, "per": "1", "rounding": "floor"}}, "timezone": ZONE, **extra}


def iso(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


def next_month(clock: MovableClock) -> datetime:
    """An hour into the next month of the program's timezone, from now."""
    local = clock.now().astimezone(ZoneInfo(ZONE))
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return datetime(year, month, 1, 1, tzinfo=ZoneInfo(ZONE)).astimezone(UTC)


async def run_job(api: Api, **body: Any) -> dict[str, int]:
    response = await api.post("/v1/jobs/check-cost-cap", body, idempotency_key=None)
    assert response.status_code == 200, response.text
    counts: dict[str, int] = response.json()["counts"]
    return counts


async def cap_events(db: asyncpg.Connection, api: Api) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT e.data, e.occurred_at FROM event_log e JOIN program p ON p.id = e.program_id"
        " WHERE p.code = $1 AND e.type = 'cost.cap_exceeded'",
        api.program,
    )
    return [{**json.loads(row["data"]), "occurred_at": row["occurred_at"]} for row in rows]


async def sound(db: asyncpg.Connection) -> None:
    assert all(outcome.mismatches == 0 for outcome in await verify(db))


async def over_the_cap(api: Api) -> None:
    """An order of 10.00 and 1000 points redeemed: cost 5.000 against a cap of 0.30."""
    await api.use_rules(rules(valuation=VALUATION))
    member = await api.enrol()
    assert (await api.order(member, "10.00")).status_code == 201
    assert (await api.award(member, 990)).status_code == 201
    assert (await api.redeem(member, 1000)).status_code == 201


class TestLastClosedMonth:
    def test_months_are_the_zones(self) -> None:
        auckland = ZoneInfo(ZONE)
        # 2026-12-01 05:00 UTC is 18:00 on 1 December in Auckland (UTC+13 in summer)
        start, end = last_closed_month(datetime(2026, 12, 1, 5, tzinfo=UTC), auckland)
        assert (start, end) == (
            datetime(2026, 10, 31, 11, tzinfo=UTC),
            datetime(2026, 11, 30, 11, tzinfo=UTC),
        )
        # 2026-11-30 10:00 UTC is still 23:00 on 30 November there: October is the last closed month
        start, end = last_closed_month(datetime(2026, 11, 30, 10, tzinfo=UTC), auckland)
        assert start == datetime(2026, 9, 30, 11, tzinfo=UTC)
        assert end == datetime(2026, 10, 31, 11, tzinfo=UTC)
        # January: December of the year before
        start, end = last_closed_month(datetime(2027, 1, 15, tzinfo=UTC), ZoneInfo("UTC"))
        assert (start, end) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


class TestCheckCostCap:
    async def test_a_month_over_the_cap_writes_one_event(
        self, api: Api, clock: MovableClock, db: asyncpg.Connection
    ) -> None:
        await over_the_cap(api)
        this_month = next_month(clock)
        clock.offset = this_month - datetime.now(UTC)
        start, end = last_closed_month(clock.now(), ZoneInfo(ZONE))
        assert start < datetime.now(UTC) < end  # what was recorded lies in the month checked

        assert await run_job(api) == {"programs": 1, "checked": 1, "exceeded": 1, "events": 1}
        (event,) = await cap_events(db, api)
        assert (event["from"], event["to"]) == (iso(start), iso(end))
        assert event["occurred_at"] == end
        assert (event["cost"], event["revenue"], event["headroom"]) == (
            {"amount": "5.000", "currency": "EUR"},
            {"amount": "10.00", "currency": "EUR"},
            {"amount": "-4.7000", "currency": "EUR"},
        )
        assert (event["points_redeemed"], event["cap"], event["ratio"]) == (1000, "0.03", "0.500000")

        # Again, at once, and the report asked for the same month: still one event.
        again = await asyncio.gather(run_job(api), run_job(api))
        assert [counts["events"] for counts in again] == [0, 0]
        assert [counts["exceeded"] for counts in again] == [1, 1]
        asked = await api.get("/v1/reports/redemption-cost", **{"from": iso(start), "to": iso(end)})
        assert asked.status_code == 200, asked.text
        assert asked.json()["cap_exceeded"] is True
        assert len(await cap_events(db, api)) == 1
        await sound(db)

    async def test_the_report_first_then_the_job_writes_none(
        self, api: Api, clock: MovableClock, db: asyncpg.Connection
    ) -> None:
        await over_the_cap(api)
        clock.offset = next_month(clock) - datetime.now(UTC)
        start, end = last_closed_month(clock.now(), ZoneInfo(ZONE))
        asked = await api.get("/v1/reports/redemption-cost", **{"from": iso(start), "to": iso(end)})
        assert asked.json()["cap_exceeded"] is True
        assert await run_job(api) == {"programs": 1, "checked": 1, "exceeded": 1, "events": 0}
        assert len(await cap_events(db, api)) == 1
        await sound(db)

    async def test_under_the_cap_without_a_cap_and_a_month_not_over_yet(
        self, api: Api, clock: MovableClock, db: asyncpg.Connection
    ) -> None:
        # Under: 1000.00 of orders and 1000 points redeemed: 5.000 against 30.00.
        await api.use_rules(rules(valuation=VALUATION))
        member = await api.enrol()
        assert (await api.order(member, "1000.00")).status_code == 201
        assert (await api.redeem(member, 1000)).status_code == 201
        # The month now running has not ended: as of a future instant outside production,
        # the job leaves it for later.
        future = iso(next_month(clock) + timedelta(days=3))
        assert await run_job(api, as_of=future) == {"programs": 1, "checked": 0, "exceeded": 0, "events": 0}
        clock.offset = next_month(clock) - datetime.now(UTC)
        assert await run_job(api) == {"programs": 1, "checked": 1, "exceeded": 0, "events": 0}

        await sound(db)

    async def test_without_a_cap_nothing_is_checked(
        self, api: Api, clock: MovableClock, db: asyncpg.Connection
    ) -> None:
        # The same activity as over_the_cap(), under rules without a valuation.
        await api.use_rules(rules())
        member = await api.enrol()
        assert (await api.order(member, "10.00")).status_code == 201
        assert (await api.award(member, 990)).status_code == 201
        assert (await api.redeem(member, 1000)).status_code == 201
        clock.offset = next_month(clock) - datetime.now(UTC)
        assert await run_job(api) == {"programs": 1, "checked": 0, "exceeded": 0, "events": 0}
        assert await cap_events(db, api) == []
        await sound(db)

    async def test_a_jobs_key_without_admin_is_refused(self, api: Api) -> None:
        reader = await api.key_with("reports:read")
        refused = await api.post("/v1/jobs/check-cost-cap", {}, key=reader, idempotency_key=None)
        assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")

    @pytest.mark.usefixtures("fresh_settings")
    async def test_from_the_cli(self, api: Api) -> None:
        await api.use_rules(rules(valuation=VALUATION))
        env = {"LEDGER_DATABASE_URL": database_url(), "LEDGER_ENV": "test"}
        args = ["jobs", "run", "check-cost-cap", "--program", api.program]
        result = await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)
        assert result.exit_code == 0, result.output
        # the program's rules set a cap; the month before this one is checked (nothing in it)
        assert "1 programs, 1 checked, 0 exceeded, 0 events" in result.output
