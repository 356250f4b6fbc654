"""The schema: built by Alembic from nothing, one head, matching the models, and
guarding the ledger inside the database itself."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine

from app.cli import alembic_config, run_migrations
from app.models import Base
from tests.conftest import scratch_database
from tests.support import Api, database_url


@pytest.fixture(scope="module")
def migrated_scratch() -> Iterator[str]:
    with scratch_database("migrations") as url:
        yield url


def test_single_head() -> None:
    script = ScriptDirectory.from_config(alembic_config(database_url()))  # type: ignore[arg-type]
    assert len(script.get_heads()) == 1


async def test_upgrade_from_empty_matches_the_models(migrated_scratch: str) -> None:
    engine = create_async_engine(migrated_scratch)
    try:
        async with engine.connect() as connection:

            def diff(sync_connection: Any) -> list[Any]:
                context = MigrationContext.configure(sync_connection, opts={"compare_server_default": True})
                return list(compare_metadata(context, Base.metadata))

            differences = await connection.run_sync(diff)
            version = await connection.exec_driver_sql("SELECT version_num FROM alembic_version")
            assert (
                version.scalar_one()
                == ScriptDirectory.from_config(
                    alembic_config(migrated_scratch)  # type: ignore[arg-type]
                ).get_current_head()
            )
    finally:
        await engine.dispose()
    assert differences == []


async def test_upgrade_is_repeatable(migrated_scratch: str) -> None:
    await asyncio.to_thread(run_migrations, migrated_scratch)


class TestDatabaseGuards:
    async def _an_entry(self, api: Api) -> uuid.UUID:
        member = await api.enrol()
        return uuid.UUID((await api.award(member, 10)).json()["id"])

    @pytest.mark.parametrize(
        "statement",
        [
            "UPDATE journal_entry SET reason = 'edited' WHERE id = $1",
            "DELETE FROM journal_entry WHERE id = $1",
            "UPDATE posting SET amount = amount * 2 WHERE entry_id = $1",
            "DELETE FROM posting WHERE entry_id = $1",
        ],
    )
    async def test_journal_and_postings_refuse_update_and_delete(
        self, api: Api, db: asyncpg.Connection, statement: str
    ) -> None:
        entry_id = await self._an_entry(api)
        with pytest.raises(asyncpg.PostgresError, match="append-only") as refused:
            await db.execute(statement, entry_id)
        assert refused.value.sqlstate == "LP002"

    @pytest.mark.parametrize("table", ["journal_entry", "posting"])
    async def test_truncate_is_refused(self, db: asyncpg.Connection, table: str) -> None:
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await db.execute(f"TRUNCATE {table} CASCADE")

    async def test_unbalanced_entry_is_refused_at_commit(self, api: Api, db: asyncpg.Connection) -> None:
        member = await api.enrol()
        account = await db.fetchrow(
            "SELECT a.program_id, a.id, a.member_id FROM account a"
            " JOIN member m ON m.program_id = a.program_id AND m.id = a.member_id"
            " WHERE m.external_id = $1 AND a.kind = 'available'",
            member,
        )
        assert account is not None
        entry_id = uuid.uuid4()
        transaction = db.transaction()
        await transaction.start()
        try:
            await db.execute(
                "INSERT INTO journal_entry (id, program_id, kind, occurred_at, recorded_at, idempotency_key,"
                " request_fingerprint) VALUES ($1, $3, 'award', now(), now(), $2, 'x')",
                entry_id,
                str(entry_id),
                account["program_id"],
            )
            await db.execute(
                "INSERT INTO posting (program_id, entry_id, account_id, member_id, amount,"
                " available_after, pending_after, held_after, recorded_at)"
                " VALUES ($4, $1, $2, $3, 500, 500, 0, 0, now())",
                entry_id,
                account["id"],
                account["member_id"],
                account["program_id"],
            )
            with pytest.raises(asyncpg.PostgresError, match="does not balance") as refused:
                await transaction.commit()
            assert refused.value.sqlstate == "LP003"
        finally:
            if not db.is_closed() and db.is_in_transaction():
                await transaction.rollback()
        assert await db.fetchval("SELECT count(*) FROM journal_entry WHERE id = $1", entry_id) == 0

    async def test_entry_without_postings_is_refused_at_commit(self, db: asyncpg.Connection) -> None:
        entry_id = uuid.uuid4()
        with pytest.raises(asyncpg.PostgresError, match="does not balance"):
            async with db.transaction():
                await db.execute(
                    "INSERT INTO journal_entry (id, program_id, kind, occurred_at, recorded_at,"
                    " idempotency_key, request_fingerprint) VALUES ($1, 1, 'award', now(), now(), $2, 'x')",
                    entry_id,
                    str(entry_id),
                )

    async def test_available_balance_cannot_go_negative(self, api: Api, db: asyncpg.Connection) -> None:
        member = await api.enrol()
        with pytest.raises(asyncpg.CheckViolationError):
            await db.execute(
                "UPDATE member_balance SET available = -1"
                " WHERE member_id = (SELECT id FROM member WHERE external_id = $1)",
                member,
            )

    async def test_ledger_post_refuses_legs_that_do_not_sum_to_zero(self, db: asyncpg.Connection) -> None:
        with pytest.raises(asyncpg.PostgresError, match="summing to zero"):
            await db.fetch(
                "SELECT * FROM ledger_post(p_entry_id => $1, p_program_id => 1, p_kind => 'award',"
                " p_idempotency_key => 'k', p_request_fingerprint => 'f', p_occurred_at => now(),"
                " p_recorded_at => now(), p_actor_key_id => NULL, p_reverses_entry_id => NULL,"
                " p_reason => NULL, p_order_id => NULL, p_rules_version => NULL, p_expires_at => NULL,"
                " p_pending_until => NULL, p_metadata => '{}', p_members => $2, p_accounts => $3,"
                " p_amounts => $4)",
                uuid.uuid4(),
                [None, None],
                ["issuance", "redemption"],
                [5, -4],
            )
