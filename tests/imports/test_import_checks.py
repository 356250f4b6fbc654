"""ledger_import_lots()'s checks: the set-wise checks that replace the per-row
triggers when the role may set session_replication_role, what they replace, the
per-row triggers for a role that may not, and lots written by several writers
at once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from uuid_utils.compat import uuid7

from app.imports import repository, service
from app.ledger import accounts
from tests.imports.test_imports import run, sound
from tests.support import Api, program_id, unique

NOW = datetime.now(UTC)

# Every trigger and foreign key that the rows ledger_import_lots() writes meet,
# as its contract (app/sql/functions/ledger_import_lots.sql) lists them with what
# its set-wise checks do instead. A new one fails this test: the function must
# then check set-wise what it guarantees, and its contract and this list say so.
MET = {
    "journal_entry": {
        "fk_journal_entry_reverses_entry_id_journal_entry",
        "fk_journal_entry_source_entry_id_journal_entry",
        "journal_entry_append_only",
        "journal_entry_balanced",
        "journal_entry_no_truncate",
    },
    "posting": {
        "fk_posting_entry_id_journal_entry",
        "posting_append_only",
        "posting_balanced",
        "posting_no_truncate",
    },
    "point_lot": {"fk_point_lot_entry_id_journal_entry", "fk_point_lot_member_id_member"},
    "member_balance": {"fk_member_balance_member_id_member"},
}

TRIGGERS_AND_FOREIGN_KEYS = """
SELECT c.relname AS table_name, t.tgname AS name FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relname = ANY ($1::text[]) AND NOT t.tgisinternal
UNION ALL
SELECT c.relname, k.conname FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
 WHERE c.relname = ANY ($1::text[]) AND k.contype = 'f'
"""


async def members_with_ids(api: Api, db: asyncpg.Connection, count: int) -> tuple[int, list[int]]:
    """`count` members imported into the api's program; (program id, their ids)."""
    names = [unique("ck") for _ in range(count)]
    response = await run(
        api, "members", [{"external_id": name, "enrolled_at": "2024-01-01T00:00:00Z"} for name in names]
    )
    assert response.status_code == 200, response.text
    pid = await program_id(db, api.program)
    await accounts.open_migration_account(db, pid)
    ids = await repository.member_ids(db, pid, names)
    return pid, [ids[name] for name in names]


def lots_of(members: list[int], each: int) -> list[tuple[int, str, int, datetime, datetime | None]]:
    return [
        (member, unique("lot"), 10 + n, NOW - timedelta(days=100 - n), NOW + timedelta(days=300 + n))
        for member in members
        for n in range(each)
    ]


async def write(db: asyncpg.Connection, pid: int, lots: list[Any], **options: Any) -> repository.LotsWritten:
    return await repository.import_lots(
        db, pid, "checks", NOW, None, [uuid7() for _ in lots], lots, **options
    )


class TestWhatTheSetWiseChecksReplace:
    async def test_the_triggers_and_foreign_keys_imported_rows_meet_are_those_the_contract_lists(
        self, db: asyncpg.Connection
    ) -> None:
        found: dict[str, set[str]] = {table: set() for table in MET}
        for row in await db.fetch(TRIGGERS_AND_FOREIGN_KEYS, list(MET)):
            found[row["table_name"]].add(row["name"])
        assert found == MET

    async def test_a_superuser_gets_the_set_wise_checks_and_the_triggers_are_back_after(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        pid, members = await members_with_ids(api, db, 2)
        transaction = db.transaction()
        await transaction.start()
        try:
            written = await write(db, pid, lots_of(members, 2))
            assert written == repository.LotsWritten(4, 2 * (10 + 11), row_checks=False)
            assert await db.fetchval("SHOW session_replication_role") == "origin"
            # the balanced-entry trigger is on again for what follows in the transaction
            await db.execute(
                "INSERT INTO journal_entry (id, program_id, kind, occurred_at, recorded_at,"
                " idempotency_key, request_fingerprint) VALUES ($1, $2, 'import', now(), now(), $3, 'x')",
                uuid.uuid4(),
                pid,
                unique("no-postings"),
            )
            with pytest.raises(asyncpg.PostgresError, match="does not balance") as refused:
                await db.execute("SET CONSTRAINTS ALL IMMEDIATE")
        finally:
            await transaction.rollback()
        assert refused.value.sqlstate == "LP003"
        async with db.transaction():
            assert await write(db, pid, lots_of(members, 2)) == repository.LotsWritten(
                4, 2 * (10 + 11), row_checks=False
            )
        await sound(db)

    async def test_a_lot_of_a_member_of_another_program_is_refused(
        self, api: Api, other: Api, db: asyncpg.Connection
    ) -> None:
        pid, _ = await members_with_ids(api, db, 1)
        _, strangers = await members_with_ids(other, db, 1)
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            async with db.transaction():
                await write(db, pid, lots_of(strangers, 1))


@pytest.fixture
async def plain_role(db: asyncpg.Connection) -> AsyncIterator[str]:
    """A role that may write the ledger's tables but not set session_replication_role."""
    role = unique("imp_role").replace("-", "_")
    await db.execute(f"CREATE ROLE {role} NOLOGIN")
    try:
        await db.execute(f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {role}")
        await db.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}")
        yield role
    finally:
        await db.execute(f"DROP OWNED BY {role}")  # its grants, here and on the parameter
        await db.execute(f"DROP ROLE {role}")


class TestARoleThatMayNotSetTheParameter:
    async def test_gets_the_per_row_triggers_and_the_set_wise_checks_once_granted(
        self, api: Api, db: asyncpg.Connection, plain_role: str
    ) -> None:
        pid, members = await members_with_ids(api, db, 2)
        async with db.transaction():
            await db.execute(f"SET LOCAL ROLE {plain_role}")
            written = await write(db, pid, lots_of(members, 1))
            assert written == repository.LotsWritten(2, 20, row_checks=True)
        await db.execute(f"GRANT SET ON PARAMETER session_replication_role TO {plain_role}")
        async with db.transaction():
            await db.execute(f"SET LOCAL ROLE {plain_role}")
            written = await write(db, pid, lots_of(members, 1))
            assert written == repository.LotsWritten(2, 20, row_checks=False)
            assert await db.fetchval("SHOW session_replication_role") == "origin"
        await sound(db)

    async def test_the_row_checks_may_be_asked_for(self, api: Api, db: asyncpg.Connection) -> None:
        pid, members = await members_with_ids(api, db, 1)
        async with db.transaction():
            written = await write(db, pid, lots_of(members, 1), row_checks=True)
        assert written.row_checks


class TestSeveralWriters:
    async def test_chunks_written_at_once_keep_each_members_lots_in_order_and_the_ledger_sound(
        self, api: Api, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(service.CHUNK, "lots", 4)
        monkeypatch.setattr(service, "WRITERS", 2)
        names = [unique("wr") for _ in range(5)]
        assert (await run(api, "members", [{"external_id": name} for name in names])).status_code == 200
        rows = [
            {
                "member": name,
                "lot_ref": f"{name}-{n}",
                "points": 1 + n,
                "earned_at": (NOW - timedelta(days=50 - n)).isoformat(),
                "expires_at": (NOW + timedelta(days=400)).isoformat(),
            }
            for n in range(6)
            for name in names
        ]
        body = (await run(api, "lots", rows)).json()
        assert (body["imported"], body["points"]) == (30, 5 * sum(range(1, 7)))
        pid = await program_id(db, api.program)
        ids = await repository.member_ids(db, pid, names)
        assert len({member % 2 for member in ids.values()}) == 2, "members for both writers"
        for name, member in ids.items():
            # each member's lots in the file's order (earned_at), by lot id and by posting id
            lots = await db.fetch(
                "SELECT l.points, max(p.id) AS posting FROM point_lot l JOIN posting p"
                " ON p.program_id = l.program_id AND p.entry_id = l.entry_id"
                " WHERE l.program_id = $1 AND l.member_id = $2 GROUP BY l.program_id, l.id ORDER BY l.id",
                pid,
                member,
            )
            assert [lot["points"] for lot in lots] == list(range(1, 7)), name
            assert [lot["posting"] for lot in lots] == sorted(lot["posting"] for lot in lots)
        rerun = (await run(api, "lots", rows)).json()
        assert (rerun["imported"], rerun["skipped"]) == (0, 30)
        await sound(db)
