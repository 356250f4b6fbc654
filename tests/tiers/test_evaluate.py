"""The evaluate-tiers job: each term judged at its end on the window ending then,
whenever the job runs; grace, downgrades, late runs, rule changes, reruns, batches,
the CLI and the worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.config import get_settings
from app.db import Database
from app.jobs.service import JOBS
from app.jobs.worker import run_round
from app.tiers.service import evaluate_tiers
from tests.support import Api, MovableClock, database_url
from tests.tiers.helpers import (
    GOLD,
    PLATINUM,
    SILVER,
    code_of,
    evaluate,
    gold_member,
    history,
    month,
    months_later,
    move_to,
    order,
    same,
    tier_of,
    tier_rules,
)

NOTHING = {"changes": 0, "upgraded": 0, "retained": 0, "downgraded": 0}


@pytest.fixture
async def database() -> AsyncIterator[Database]:
    db = Database(database_url(), get_settings())
    await db.connect()
    yield db
    await db.dispose()


@pytest.fixture
def _fresh_settings() -> Iterator[None]:
    # The CLI reads its settings (LEDGER_DATABASE_URL) through the cached get_settings().
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def silver_member(api: Api, qualified_at: datetime) -> str:
    """Silver with the 2nd order at `qualified_at` (the 1st a day before): the window
    that judges the term starts at `qualified_at` and holds 1 order, which retains."""
    member = await api.enrol()
    await order(api, member, "30.00", qualified_at - timedelta(days=1))
    await order(api, member, "30.00", qualified_at)
    assert await code_of(api, member) == "silver"
    return member


async def standing(api: Api, member: str) -> tuple[Any, Any]:
    view = await tier_of(api, member)
    return view["tier"], view["history"]


def counts(**changed: int) -> dict[str, int]:
    return {**NOTHING, **changed}


def without_members(found: dict[str, int]) -> dict[str, int]:
    return {key: value for key, value in found.items() if key != "members"}


class TestRetention:
    async def test_met_renews_the_term_from_the_old_end_on_the_window_ending_then(self, api: Api) -> None:
        version = await api.use_rules(tier_rules())
        start = month(-11)
        member = await silver_member(api, start)
        await order(api, member, "20.00", month(-8))
        ends = months_later(start, 12)
        assert (await evaluate(api, ends - timedelta(seconds=1))) == {"members": 1, **NOTHING}
        found = await evaluate(api, ends + timedelta(days=20))
        assert found == {"members": 1, **counts(changes=1, retained=1)}
        tier = (await tier_of(api, member))["tier"]
        assert tier["code"] == "silver"
        assert same(tier["since"], start)
        assert same(tier["term_ends_at"], months_later(start, 24))  # from the old end, not as_of
        assert tier["grace_ends_at"] is None
        change = (await history(api, member))[0]
        assert (change["from_tier"], change["to_tier"], change["reason"]) == ("silver", "silver", "retained")
        assert same(change["effective_at"], ends)
        assert same(change["term_ends_at"], months_later(start, 24))
        assert change["rules_version"] == version
        activity = change["activity"]
        assert (activity["orders"], activity["spend"], activity["points"]) == (2, "50.00", 50)
        assert same(activity["window_start"], start)
        assert same(activity["window_end"], ends)


class TestGrace:
    async def test_a_missed_term_is_in_grace_then_drops_one_tier_at_the_grace_end(self, api: Api) -> None:
        await api.use_rules(tier_rules())
        qualified = month(-11)
        member = await gold_member(api, qualified)
        ends = months_later(qualified, 12)
        grace_ends = ends + timedelta(days=30)

        assert without_members(await evaluate(api, ends + timedelta(days=1))) == NOTHING
        tier = (await tier_of(api, member))["tier"]
        assert tier["code"] == "gold"
        assert same(tier["term_ends_at"], ends)
        assert same(tier["grace_ends_at"], grace_ends)
        assert len(await history(api, member)) == 2
        profile = (await api.get(f"/v1/members/{member}")).json()
        assert profile["tier"]["code"] == "gold"

        assert without_members(await evaluate(api, grace_ends - timedelta(seconds=1))) == NOTHING
        assert await code_of(api, member) == "gold"

        found = await evaluate(api, grace_ends + timedelta(days=1))
        assert without_members(found) == counts(changes=1, downgraded=1)
        tier = (await tier_of(api, member))["tier"]
        assert (tier["code"], tier["grace_ends_at"]) == ("silver", None)
        assert same(tier["since"], grace_ends)
        assert same(tier["term_ends_at"], months_later(grace_ends, 12))
        change = (await history(api, member))[0]
        assert (change["from_tier"], change["to_tier"], change["reason"]) == ("gold", "silver", "downgraded")
        assert same(change["effective_at"], grace_ends)
        activity = change["activity"]
        assert (activity["orders"], activity["spend"], activity["points"]) == (1, "50.00", 50)
        assert same(activity["window_start"], qualified)
        assert same(activity["window_end"], ends)

    async def test_qualifying_again_in_grace_keeps_the_tier_with_a_new_term_from_as_of(
        self, api: Api, clock: MovableClock
    ) -> None:
        await api.use_rules(tier_rules())
        qualified = month(-11)
        member = await gold_member(api, qualified)
        ends = months_later(qualified, 12)
        await evaluate(api, ends + timedelta(days=1))
        move_to(clock, ends + timedelta(days=5))
        for day in (2, 3, 4, 5):
            result = await order(api, member, "50.00", ends + timedelta(days=day) - timedelta(hours=1))
            assert result["tier_reached"] is None  # already gold
        as_of = ends + timedelta(days=10)
        found = await evaluate(api, as_of)
        assert without_members(found) == counts(changes=1, retained=1)
        tier = (await tier_of(api, member))["tier"]
        assert (tier["code"], tier["grace_ends_at"]) == ("gold", None)
        assert same(tier["since"], qualified)
        assert same(tier["term_ends_at"], months_later(as_of, 12))
        change = (await history(api, member))[0]
        assert (change["to_tier"], change["reason"]) == ("gold", "retained")
        assert same(change["effective_at"], as_of)
        assert change["activity"]["orders"] == 4

    async def test_qualifying_again_in_grace_keeps_the_tier_though_the_job_runs_after_the_grace(
        self, api: Api, clock: MovableClock
    ) -> None:
        # As above, but the job first runs 40 days after the term's end: by then the
        # member had qualified again for gold 35 days before the grace ended. Run on
        # day 10, the job retains the tier; run late, it must not decide otherwise.
        await api.use_rules(tier_rules())
        qualified = month(-11)
        member = await gold_member(api, qualified)
        ends = months_later(qualified, 12)
        move_to(clock, ends + timedelta(days=10))
        for day in (2, 3, 4, 5):
            await order(api, member, "50.00", ends + timedelta(days=day) - timedelta(hours=1))
        found = await evaluate(api, ends + timedelta(days=40))
        reasons = [change["reason"] for change in await history(api, member)]
        assert "downgraded" not in reasons, reasons
        assert found["downgraded"] == 0
        assert reasons[0] == "retained"
        assert await code_of(api, member) == "gold"


class TestWindows:
    @pytest.mark.parametrize(
        ("window", "orders", "retained"),
        [("rolling_12_months", 1, False), ("calendar_year", 0, False), ("lifetime", 4, True)],
    )
    async def test_the_window_ending_at_the_term_end_follows_the_policy(
        self, api: Api, window: str, orders: int, retained: bool
    ) -> None:
        await api.use_rules(tier_rules(window=window))
        qualified = month(-11)
        member = await gold_member(api, qualified)
        ends = months_later(qualified, 12)
        starts = {
            "rolling_12_months": qualified,
            "calendar_year": datetime(ends.year, 1, 1, tzinfo=UTC),
            "lifetime": None,
        }[window]
        found = await evaluate(api, ends + timedelta(days=31))
        view = await tier_of(api, member)
        change = view["history"][0]
        assert change["reason"] == ("retained" if retained else "downgraded")
        assert found[change["reason"]] == 1
        assert change["activity"]["orders"] == orders
        assert same(change["activity"]["window_start"], starts)
        assert same(change["activity"]["window_end"], ends)
        assert view["tier"]["code"] == ("gold" if retained else "silver")

    async def test_terms_are_calendar_months_in_the_programs_timezone(self, api: Api) -> None:
        document = tier_rules(term_months=5)
        document["timezone"] = "Europe/Berlin"
        await api.use_rules(document)
        qualified = month(-3)
        member = await silver_member(api, qualified)
        berlin = ZoneInfo("Europe/Berlin")
        # The same wall time in Berlin 5 months on: an hour off in UTC across a DST change.
        expected = months_later(qualified.astimezone(berlin), 5).astimezone(UTC)
        assert same((await tier_of(api, member))["tier"]["term_ends_at"], expected)


class TestDowngrade:
    @pytest.mark.parametrize(
        ("downgrade", "extra_orders", "expected"),
        [
            ("one_down", 0, "gold"),
            ("one_down", 1, "gold"),
            ("to_qualified", 0, None),
            ("to_qualified", 1, "silver"),
        ],
    )
    async def test_one_down_or_to_the_qualified_tier(
        self, api: Api, downgrade: str, extra_orders: int, expected: str | None
    ) -> None:
        await api.use_rules(tier_rules([SILVER, GOLD, PLATINUM], downgrade=downgrade, grace_days=0))
        member = await api.enrol()
        qualified = month(-11)
        for hours in range(5, -1, -1):
            await order(api, member, "50.00", qualified - timedelta(hours=hours))
        assert await code_of(api, member) == "platinum"
        for _ in range(extra_orders):
            await order(api, member, "50.00", month(-5))
        ends = months_later(qualified, 12)

        found = await evaluate(api, ends + timedelta(days=1))
        assert without_members(found) == counts(changes=1, downgraded=1)
        view = await tier_of(api, member)
        change = view["history"][0]
        assert (change["from_tier"], change["to_tier"], change["reason"]) == (
            "platinum",
            expected,
            "downgraded",
        )
        assert same(change["effective_at"], ends)  # no grace
        assert change["activity"]["orders"] == 1 + extra_orders
        if expected is None:
            assert view["tier"] is None
            assert change["term_ends_at"] is None
            assert view["progress"]["next_tier"] == "silver"
        else:
            assert view["tier"]["code"] == expected
            assert same(view["tier"]["since"], ends)
            assert same(view["tier"]["term_ends_at"], months_later(ends, 12))


class TestLateJob:
    async def test_a_term_that_ended_weeks_ago_is_judged_on_the_window_ending_then(
        self, api: Api, clock: MovableClock
    ) -> None:
        await api.use_rules(tier_rules())
        qualified = month(-11)
        member = await gold_member(api, qualified)
        ends = months_later(qualified, 12)
        # After the term's end (the job has not run): 3 orders, what gold's retain asks for.
        move_to(clock, ends + timedelta(days=10))
        for day in (1, 2, 3):
            await order(api, member, "50.00", ends + timedelta(days=day))
        found = await evaluate(api, ends + timedelta(days=40))
        assert without_members(found) == counts(changes=1, downgraded=1)
        view = await tier_of(api, member)
        assert view["tier"]["code"] == "silver"
        assert same(view["tier"]["since"], ends + timedelta(days=30))
        change = view["history"][0]
        assert change["reason"] == "downgraded"
        assert change["activity"]["orders"] == 1  # not the 3 orders after the term's end
        assert same(change["activity"]["window_end"], ends)

    async def test_activity_before_the_term_end_keeps_the_tier_though_the_job_runs_late(
        self, api: Api
    ) -> None:
        await api.use_rules(tier_rules())
        qualified = month(-11)
        member = await silver_member(api, qualified)
        ends = months_later(qualified, 12)
        # As of 60 days later the window ending then holds no order at all.
        found = await evaluate(api, ends + timedelta(days=60))
        assert without_members(found) == counts(changes=1, retained=1)
        tier = (await tier_of(api, member))["tier"]
        assert tier["code"] == "silver"
        assert same(tier["term_ends_at"], months_later(ends, 12))

    async def test_a_second_term_that_ended_meanwhile_is_judged_on_its_own_window(
        self, api: Api, clock: MovableClock
    ) -> None:
        await api.use_rules(tier_rules())
        qualified = month(-11)
        member = await gold_member(api, qualified)
        first_end = months_later(qualified, 12)
        dropped = first_end + timedelta(days=30)  # gold missed: silver from the grace end
        second_end = months_later(dropped, 12)
        move_to(clock, dropped + timedelta(days=10))
        await order(api, member, "10.00", dropped + timedelta(days=5))  # keeps silver's term

        found = await evaluate(api, second_end + timedelta(days=5))
        assert without_members(found) == counts(changes=2, downgraded=1, retained=1)
        view = await tier_of(api, member)
        assert view["tier"]["code"] == "silver"
        assert same(view["tier"]["since"], dropped)
        assert same(view["tier"]["term_ends_at"], months_later(second_end, 12))
        retained, downgraded = view["history"][:2]
        assert (downgraded["from_tier"], downgraded["to_tier"], downgraded["reason"]) == (
            "gold",
            "silver",
            "downgraded",
        )
        assert same(downgraded["effective_at"], dropped)
        assert same(downgraded["activity"]["window_end"], first_end)
        assert downgraded["activity"]["orders"] == 1
        assert (retained["from_tier"], retained["to_tier"], retained["reason"]) == (
            "silver",
            "silver",
            "retained",
        )
        assert same(retained["effective_at"], second_end)
        assert same(retained["activity"]["window_start"], dropped)
        assert same(retained["activity"]["window_end"], second_end)
        assert (retained["activity"]["orders"], retained["activity"]["spend"]) == (1, "10.00")

    async def test_two_missed_terms_drop_two_tiers_in_one_run(self, api: Api) -> None:
        await api.use_rules(tier_rules())
        qualified = month(-11)
        member = await gold_member(api, qualified)
        first_drop = months_later(qualified, 12) + timedelta(days=30)
        second_drop = months_later(first_drop, 12) + timedelta(days=30)
        found = await evaluate(api, second_drop + timedelta(days=1))
        assert without_members(found) == counts(changes=2, downgraded=2)
        view = await tier_of(api, member)
        assert view["tier"] is None
        changes = [(c["from_tier"], c["to_tier"], c["reason"]) for c in view["history"][:2]]
        assert changes == [("silver", None, "downgraded"), ("gold", "silver", "downgraded")]
        assert same(view["history"][0]["effective_at"], second_drop)
        assert same(view["history"][1]["effective_at"], first_drop)
        assert without_members(await evaluate(api, second_drop + timedelta(days=1))) == NOTHING


class TestRuleChange:
    async def test_lower_thresholds_upgrade_at_the_next_evaluation_not_retroactively(self, api: Api) -> None:
        first = await api.use_rules(tier_rules())
        start = month(-11)
        member = await silver_member(api, start)
        [before] = await history(api, member)
        second = await api.use_rules(tier_rules([SILVER, {**GOLD, "qualify": {"orders": 2}}]))
        # Activating the version changes no tier and rewrites no history.
        assert await code_of(api, member) == "silver"
        assert await history(api, member) == [before]
        assert before["rules_version"] == first

        as_of = (datetime.now(UTC) + timedelta(minutes=1)).replace(microsecond=0)
        found = await evaluate(api, as_of)
        assert without_members(found) == counts(changes=1, upgraded=1)
        view = await tier_of(api, member)
        assert view["tier"]["code"] == "gold"
        assert same(view["tier"]["since"], as_of)
        assert same(view["tier"]["term_ends_at"], months_later(as_of, 12))
        upgraded, old = view["history"]
        assert (upgraded["from_tier"], upgraded["to_tier"], upgraded["reason"]) == (
            "silver",
            "gold",
            "qualified",
        )
        assert same(upgraded["effective_at"], as_of)
        assert upgraded["rules_version"] == second
        assert old == before
        assert without_members(await evaluate(api, as_of)) == NOTHING

    async def test_stricter_rules_take_no_tier_back_before_its_term_ends(self, api: Api) -> None:
        await api.use_rules(tier_rules())
        start = month(-11)
        member = await silver_member(api, start)
        term = (await tier_of(api, member))["tier"]
        strict = {**SILVER, "qualify": {"orders": 5}, "retain": {"orders": 5}}
        await api.use_rules(tier_rules([strict, GOLD]))
        ends = months_later(start, 12)
        assert without_members(await evaluate(api, ends - timedelta(days=1))) == NOTHING
        assert (await tier_of(api, member))["tier"] == term
        # At the term's end the active (stricter) rules judge it: missed, in grace.
        await evaluate(api, ends + timedelta(days=1))
        assert same((await tier_of(api, member))["tier"]["grace_ends_at"], ends + timedelta(days=30))


class TestEvaluateTiersJob:
    async def test_a_rerun_for_the_same_instant_changes_nothing(self, api: Api) -> None:
        await api.use_rules(tier_rules())
        qualified = month(-11)
        keeps = await silver_member(api, qualified)
        misses = await gold_member(api, qualified)
        nobody = await api.enrol()
        as_of = months_later(qualified, 12) + timedelta(days=1)
        first = await evaluate(api, as_of)
        assert first == {"members": 3, **counts(changes=1, retained=1)}
        views = [await standing(api, member) for member in (keeps, misses, nobody)]
        assert views[1][0]["grace_ends_at"] is not None
        again = await evaluate(api, as_of)
        assert again == {"members": 3, **NOTHING}
        assert [await standing(api, member) for member in (keeps, misses, nobody)] == views

    async def test_without_as_of_it_runs_as_of_now_for_the_calling_program_only(
        self, api: Api, other: Api
    ) -> None:
        qualified = month(-13)  # the term ended last month
        members = []
        for program in (api, other):
            await program.use_rules(tier_rules())
            members.append(await silver_member(program, qualified))
        before = datetime.now(UTC)
        response = await api.post("/v1/jobs/evaluate-tiers", {}, idempotency_key=None)
        assert response.status_code == 200, response.text
        assert before <= datetime.fromisoformat(response.json()["as_of"]) <= datetime.now(UTC)
        assert response.json()["counts"] == {"members": 1, **counts(changes=1, retained=1)}
        assert same((await tier_of(api, members[0]))["tier"]["term_ends_at"], month(11))
        assert len(await history(other, members[1])) == 1

    async def test_only_an_admin_key_runs_it(self, api: Api) -> None:
        key = await api.key_with("members:read", "points:burn")
        response = await api.post("/v1/jobs/evaluate-tiers", {}, key=key, idempotency_key=None)
        assert response.status_code == 403

    async def test_batches_report_progress_and_reach_every_member(
        self, api: Api, database: Database, db: asyncpg.Connection
    ) -> None:
        await api.use_rules(tier_rules())
        qualified = month(-11)
        members = [await silver_member(api, qualified) for _ in range(5)]
        program_id = await db.fetchval("SELECT id FROM program WHERE code = $1", api.program)
        totals: list[int] = []
        steps: list[int] = []
        as_of = months_later(qualified, 12) + timedelta(days=1)
        done = await evaluate_tiers(
            database,
            program_ids=[program_id],
            as_of=as_of,
            now=datetime.now(UTC),
            batch=2,
            on_total=totals.append,
            on_progress=steps.append,
        )
        assert (done.members, done.changes, done.retained) == (5, 5, 5)
        assert (totals, steps) == ([5], [2, 2, 1])
        for member in members:
            assert same((await tier_of(api, member))["tier"]["term_ends_at"], months_later(qualified, 24))


@pytest.mark.usefixtures("_fresh_settings")
class TestEvaluateTiersFromTheCli:
    async def test_runs_with_a_progress_bar_and_reruns_as_a_no_op(self, api: Api) -> None:
        await api.use_rules(tier_rules())
        qualified = month(-11)
        members = [await silver_member(api, qualified), await gold_member(api, qualified)]
        as_of = months_later(qualified, 12) + timedelta(days=31)
        env = {"LEDGER_DATABASE_URL": database_url(), "LEDGER_ENV": "test"}
        args = [
            "jobs",
            "run",
            "evaluate-tiers",
            "--program",
            api.program,
            "--as-of",
            as_of.isoformat(),
            "--progress",
        ]
        result = await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)
        assert result.exit_code == 0, result.output
        assert "2 members, 2 changes, 0 upgraded, 1 retained, 1 downgraded" in result.output
        assert "2/2" in result.output
        again = await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)
        assert again.exit_code == 0, again.output
        assert "2 members, 0 changes, 0 upgraded, 0 retained, 0 downgraded" in again.output
        assert [await code_of(api, member) for member in members] == ["silver", "silver"]


class TestWorker:
    async def test_the_worker_evaluates_tiers_as_of_now(
        self, api: Api, clock: MovableClock, database: Database
    ) -> None:
        assert "evaluate-tiers" in JOBS  # the worker runs every job
        await api.use_rules(tier_rules())
        member = await silver_member(api, month(-13))
        done = await run_round(database, clock)
        assert done.ran["evaluate-tiers"]["retained"] >= 1
        tier: dict[str, Any] = (await tier_of(api, member))["tier"]
        assert same(tier["term_ends_at"], month(11))
