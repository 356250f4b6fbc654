"""app/sql/ holds the current definition of every function, trigger and type the
database runs; the migrations install frozen copies. These tests fail when the two
drift apart: "edited the live file, forgot the revision" cannot land."""

from __future__ import annotations

import datetime as dt
import importlib.util
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.sql import LIVE, catalog, differences, install, install_one, objects
from tests.conftest import scratch_database


@pytest.fixture(scope="module")
def head() -> Iterator[str]:
    """A database at `upgrade head`, for this module alone (it gets rewritten)."""
    with scratch_database("sql_definitions") as url:
        yield url


@pytest.fixture
async def engine(head: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(head)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _drift(engine: AsyncEngine, *, then: dict[str, str] | None = None) -> list[str]:
    """How the catalog `upgrade head` left differs from the same database after the
    live definitions (and then the texts in `then`, by object key) are installed
    over it. Rolled back: the database stays at head."""

    def compare(connection: Connection) -> list[str]:
        installed = catalog(connection)
        install(connection, LIVE)
        live = {obj.key: obj for obj in objects(LIVE)}
        for key, text in (then or {}).items():
            install_one(connection, live[key], text)
        return differences(installed, catalog(connection))

    async with engine.connect() as connection:
        transaction = await connection.begin()
        try:
            return await connection.run_sync(compare)
        finally:
            await transaction.rollback()


class TestLiveDefinitions:
    async def test_upgrade_head_installs_exactly_the_live_definitions(self, engine: AsyncEngine) -> None:
        assert await _drift(engine) == []

    async def test_an_edited_live_definition_without_a_revision_is_caught(self, engine: AsyncEngine) -> None:
        # As if someone changed the live file and forgot the revision: the body differs.
        edited = (LIVE / "functions" / "ledger_rfc3339.sql").read_text().replace('.US"Z"', '"Z"')
        assert await _drift(engine, then={"functions/ledger_rfc3339": edited}) == [
            "functions/ledger_rfc3339 ledger_rfc3339(timestamp with time zone): "
            "the installed definition differs from app/sql/"
        ]

    async def test_a_new_parameter_without_a_revision_is_caught(self, engine: AsyncEngine) -> None:
        edited = (
            (LIVE / "functions" / "tier_apply.sql")
            .read_text()
            .replace("    p_decisions jsonb\n", "    p_decisions jsonb,\n    p_note text DEFAULT NULL\n")
        )
        drift = await _drift(engine, then={"functions/tier_apply": edited})
        assert [line.split(":")[0] for line in drift] == [
            "functions/tier_apply tier_apply(bigint,integer,timestamp with time zone,jsonb)",
            "functions/tier_apply tier_apply(bigint,integer,timestamp with time zone,jsonb,text)",
        ]

    async def test_an_edited_trigger_is_caught(self, engine: AsyncEngine) -> None:
        edited = (
            (LIVE / "triggers" / "posting_append_only.sql").read_text().replace("UPDATE OR DELETE", "UPDATE")
        )
        drift = await _drift(engine, then={"triggers/posting_append_only": edited})
        assert drift == [
            "triggers/posting_append_only posting_append_only ON posting: "
            "the installed definition differs from app/sql/"
        ]


class TestEveryObjectHasAHome:
    async def test_everything_the_database_runs_has_a_live_file(self, engine: AsyncEngine) -> None:
        async with engine.connect() as connection:
            installed = await connection.run_sync(catalog)
        homes = {obj.key for obj in objects(LIVE)}
        assert {key.split(" ")[0] for key in installed} == homes

    def test_each_file_is_one_object_headed_by_its_contract(self) -> None:
        for obj in objects(LIVE):
            text = obj.definition()
            assert text.startswith("-- "), f"{obj.path} starts without its contract"
            creates = text.upper().count("CREATE ")
            assert creates == 1, f"{obj.path} creates {creates} objects"
            assert f" {obj.name}" in text.split("CREATE", 1)[1].split("\n")[0], f"{obj.path} is misnamed"


class TestInlining:
    async def test_rfc3339_inlines_into_the_calling_query(self, engine: AsyncEngine) -> None:
        # Not inlined, a call with a known argument (a custom plan's parameter) is
        # folded at planning by running the SQL function: its text parsed and
        # planned again on every execution of ledger_post()'s response.
        async with engine.connect() as connection:
            plan = (
                await connection.exec_driver_sql(
                    "EXPLAIN (VERBOSE, COSTS OFF) SELECT ledger_rfc3339(x) FROM (VALUES (now())) v(x)"
                )
            ).scalars()
            text = "\n".join(plan)
        assert "to_char" in text
        assert "ledger_rfc3339" not in text
        async with engine.connect() as connection:
            rendered = await connection.exec_driver_sql(
                "SELECT ledger_rfc3339('2026-11-24 17:18:25.683237+01'), ledger_rfc3339(NULL)"
            )
            assert tuple(rendered.one()) == ("2026-11-24T16:18:25.683237Z", None)


def _new_revision_module() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "migrations" / "new_revision.py"
    spec = importlib.util.spec_from_file_location("new_revision", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TestRevisionIds:
    def test_a_new_id_sorts_after_every_id_of_its_day_gaps_included(self) -> None:
        next_id = _new_revision_module().next_revision_id
        day = dt.date(2026, 11, 29)
        assert next_id(set(), day) == "20261129_0001"
        assert next_id({"20261128_0007", "20261129_0001", "20261129_0002"}, day) == "20261129_0003"
        # a helper's branch took 0020 ahead of 0003: the next one follows 0020
        assert next_id({"20261129_0001", "20261129_0002", "20261129_0020"}, day) == "20261129_0021"
