"""Import entries are checked set-wise: at the end of the statement that writes them
(ledger_check_entries_balanced(), triggers journal_entry_import_balanced and
posting_balanced), an import entry must have two or more postings summing to zero,
and a posting added later to an import entry, or to any entry an earlier
transaction wrote, must leave it balanced. Nothing refused is written."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from tests.imports.test_imports import run, sound
from tests.support import Api, program_id, unique

# One statement, as ledger_import_lots() writes them: the entries and their postings
# (the program's migration account on both sides: only the sums matter here).
WRITE_ENTRIES = """
WITH entries AS (
    INSERT INTO journal_entry (id, program_id, kind, occurred_at, recorded_at, idempotency_key,
                               request_fingerprint)
    SELECT x.id, $1, 'import', now(), now(), 'test·' || x.id, 'import'
      FROM unnest($2::uuid[]) AS x(id)
)
INSERT INTO posting (program_id, entry_id, account_id, amount, recorded_at)
SELECT $1, p.entry_id, $3, p.amount, now()
  FROM unnest($4::uuid[], $5::bigint[]) AS p(entry_id, amount)
"""


async def migration_account(db: asyncpg.Connection, api: Api) -> tuple[int, int]:
    await api.enrol()  # the program exists
    pid = await program_id(db, api.program)
    await db.execute(
        "INSERT INTO account (program_id, kind) VALUES ($1, 'migration')"
        " ON CONFLICT (program_id, kind, partner_id) WHERE member_id IS NULL DO NOTHING",
        pid,
    )
    account = await db.fetchval(
        "SELECT id FROM account WHERE program_id = $1 AND kind = 'migration' AND member_id IS NULL", pid
    )
    return pid, account


async def import_entries(db: asyncpg.Connection, pid: int) -> int:
    return int(await db.fetchval("SELECT count(*) FROM journal_entry WHERE program_id = $1", pid))


class TestImportEntriesBalanceSetWise:
    async def test_balanced_import_entries_are_written(self, api: Api, db: asyncpg.Connection) -> None:
        pid, account = await migration_account(db, api)
        first, second = uuid.uuid4(), uuid.uuid4()
        async with db.transaction():
            await db.execute(
                WRITE_ENTRIES, pid, [first, second], account, [first, first, second, second], [7, -7, 3, -3]
            )
        assert await import_entries(db, pid) == 2

    @pytest.mark.parametrize(
        ("postings", "amounts"),
        [
            pytest.param([0, 0], [500, -400], id="postings-not-summing-to-zero"),
            pytest.param([0], [500], id="one-posting"),
            pytest.param([], [], id="no-postings"),
        ],
    )
    async def test_an_unbalanced_import_entry_is_refused_by_its_statement(
        self, api: Api, db: asyncpg.Connection, postings: list[int], amounts: list[int]
    ) -> None:
        pid, account = await migration_account(db, api)
        # three entries in one statement, the middle one unbalanced: the statement is refused whole
        ids = [uuid.uuid4() for _ in range(3)]
        entry_ids = [ids[0], ids[0], *(ids[1] for _ in postings), ids[2], ids[2]]
        transaction = db.transaction()
        await transaction.start()
        try:
            with pytest.raises(asyncpg.PostgresError, match="does not balance") as refused:
                await db.execute(WRITE_ENTRIES, pid, ids, account, entry_ids, [10, -10, *amounts, 20, -20])
            assert refused.value.sqlstate == "LP003"
            assert str(ids[1]) in str(refused.value)
        finally:
            await transaction.rollback()
        assert await import_entries(db, pid) == 0
        await sound(db)

    async def test_a_posting_added_later_to_an_import_entry_is_refused(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        pid, account = await migration_account(db, api)
        entry = uuid.uuid4()
        transaction = db.transaction()
        await transaction.start()
        try:
            await db.execute(WRITE_ENTRIES, pid, [entry], account, [entry, entry], [5, -5])  # balanced
            with pytest.raises(asyncpg.PostgresError, match="does not balance") as refused:
                await db.execute(
                    "INSERT INTO posting (program_id, entry_id, account_id, amount, recorded_at)"
                    " VALUES ($1, $2, $3, 1, now())",
                    pid,
                    entry,
                    account,
                )
            assert refused.value.sqlstate == "LP003"
        finally:
            await transaction.rollback()
        assert await import_entries(db, pid) == 0

    async def test_a_posting_added_to_an_entry_of_an_earlier_transaction_is_refused(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        member = await api.enrol(unique("bal"))
        earned = (datetime.now(UTC) - timedelta(days=3)).isoformat()
        lot = {"member": member, "lot_ref": "L1", "points": 40, "earned_at": earned}
        lots = await run(api, "lots", [lot])
        assert lots.json()["imported"] == 1, lots.text
        pid = await program_id(db, api.program)
        posting = await db.fetchrow(
            "SELECT p.entry_id, p.account_id FROM posting p JOIN journal_entry e"
            " ON e.program_id = p.program_id AND e.id = p.entry_id"
            " WHERE p.program_id = $1 AND e.kind = 'import' AND p.member_id IS NULL",
            pid,
        )
        assert posting is not None
        with pytest.raises(asyncpg.PostgresError, match="does not balance") as refused:
            await db.execute(
                "INSERT INTO posting (program_id, entry_id, account_id, amount, recorded_at)"
                " VALUES ($1, $2, $3, -1, now())",
                pid,
                posting["entry_id"],
                posting["account_id"],
            )
        assert refused.value.sqlstate == "LP003"
        assert await db.fetchval("SELECT count(*) FROM posting WHERE program_id = $1", pid) == 2
        await sound(db)
