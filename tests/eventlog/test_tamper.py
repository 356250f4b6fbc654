"""`verify` recomputes every chain and names the first break: an edited posting or
entry (with the triggers switched off, as someone with the database's keys could),
a deleted entry, two swapped sequences. Each test tampers with a database of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.config import Settings
from app.main import create_app
from tests.conftest import scratch_database
from tests.support import chain_program, new_program, scratch_name

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("fresh_settings")


def verify(url: str) -> tuple[int, str]:
    result = runner.invoke(cli, ["verify"], env={"LEDGER_DATABASE_URL": url, "LEDGER_ENV": "test"})
    return result.exit_code, result.output


async def _build(url: str, dsn: str, settings: Settings) -> list[str]:
    """A program with five chained entries; their ids in chain order."""
    app = create_app(settings, database_url=url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ledger.test") as client:
            api = await new_program(client)
            alice, bob = await api.enrol(), await api.enrol()
            ids = [(await api.award(alice, 100)).json()["id"]]
            ids.append((await api.award(bob, 50)).json()["id"])
            ids.append((await api.redeem(alice, 10)).json()["id"])
            ids.append((await api.transfer(alice, bob, 5)).json()["id"])
            ids.append((await api.award(alice, 1)).json()["id"])
            connection = await asyncpg.connect(dsn)
            try:
                assert await chain_program(connection, api.program) == 5
            finally:
                await connection.close()
    return ids


async def _tamper(dsn: str, *statements: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        async with connection.transaction():
            # what someone with the database's superuser could do: no trigger runs
            await connection.execute("SET LOCAL session_replication_role = replica")
            for statement in statements:
                await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture
def ledger(settings: Settings) -> Iterator[tuple[str, str, list[str]]]:
    with scratch_database("tamper") as url:
        name = scratch_name("tamper")
        from tests.support import dsn

        ids = asyncio.run(_build(url, dsn(name), settings))
        code, output = verify(url)
        assert code == 0, output
        yield url, dsn(name), ids


def test_an_edited_posting_is_named(ledger: tuple[str, str, list[str]]) -> None:
    url, dsn, ids = ledger
    asyncio.run(_tamper(dsn, f"UPDATE posting SET amount = amount * 2 WHERE entry_id = '{ids[1]}'"))
    code, output = verify(url)
    assert code == 1
    assert f"sequence 2 entry {ids[1]}: hash does not match" in output


def test_an_edited_reason_is_named(ledger: tuple[str, str, list[str]]) -> None:
    url, dsn, ids = ledger
    asyncio.run(_tamper(dsn, f"UPDATE journal_entry SET reason = 'nothing to see' WHERE id = '{ids[2]}'"))
    code, output = verify(url)
    assert code == 1
    assert f"sequence 3 entry {ids[2]}: hash does not match" in output
    # the balances still add up: only the chain sees this
    assert "[ok] every entry has two or more postings summing to zero" in output


def test_a_posting_recorded_at_another_time_is_named(ledger: tuple[str, str, list[str]]) -> None:
    # the chain covers the entry's recorded_at, not the postings' copies of it (which
    # a balance as of an instant reads): verify compares the two
    url, dsn, ids = ledger
    asyncio.run(
        _tamper(
            dsn,
            f"UPDATE posting SET recorded_at = recorded_at - interval '1 day' WHERE entry_id = '{ids[3]}'",
        )
    )
    code, output = verify(url)
    assert code == 1
    assert (
        "[FAIL] every entry has two or more postings summing to zero, each recorded when the entry was"
        in output
    )
    assert f"id={ids[3]}" in output


def test_a_deleted_entry_is_named(ledger: tuple[str, str, list[str]]) -> None:
    url, dsn, ids = ledger
    victim = ids[4]  # the last award: its removal leaves every balance check but one sound
    asyncio.run(
        _tamper(
            dsn,
            f"DELETE FROM posting WHERE entry_id = '{victim}'",
            f"DELETE FROM journal_entry WHERE id = '{victim}'",
        )
    )
    code, output = verify(url)
    assert code == 1
    assert f"sequence 5 entry {victim}: the chained entry is missing" in output
    # its event stays behind too (no foreign key holds it to the journal): named
    lines = output.splitlines()
    at = next(number for number, line in enumerate(lines) if "an entry the journal lacks" in line)
    assert lines[at].startswith("[FAIL]"), output
    assert lines[at + 2].strip().endswith(f"entry_or_event={victim}"), output


def test_an_event_of_a_program_that_does_not_exist_is_named(ledger: tuple[str, str, list[str]]) -> None:
    url, dsn, _ = ledger
    asyncio.run(
        _tamper(
            dsn,
            "INSERT INTO event_log (id, program_id, type, occurred_at, created_at, data)"
            " VALUES ('01a22a61-0000-7000-8000-000000000001', 999999, 'member.created', now(), now(), '{}')",
        )
    )
    code, output = verify(url)
    assert code == 1
    lines = output.splitlines()
    at = next(number for number, line in enumerate(lines) if "a program that does not exist" in line)
    assert lines[at].startswith("[FAIL]"), output
    assert lines[at + 2].strip() == (
        "- program=999999, events=None, last=None, head=None,"
        " entry_or_event=01a22a61-0000-7000-8000-000000000001"
    ), output


def test_an_entry_whose_postings_were_deleted_is_named(ledger: tuple[str, str, list[str]]) -> None:
    url, dsn, ids = ledger
    victim = ids[1]
    asyncio.run(_tamper(dsn, f"DELETE FROM posting WHERE entry_id = '{victim}'"))
    code, output = verify(url)
    assert code == 1  # a report, not a crash: the entry's hash no longer matches
    assert f"sequence 2 entry {victim}: hash does not match" in output


def test_a_deleted_entry_and_its_chain_row_leave_a_gap(ledger: tuple[str, str, list[str]]) -> None:
    url, dsn, ids = ledger
    victim = ids[2]
    asyncio.run(
        _tamper(
            dsn,
            f"DELETE FROM event_log WHERE entry_id = '{victim}'",
            f"DELETE FROM entry_chain WHERE entry_id = '{victim}'",
            f"DELETE FROM posting WHERE entry_id = '{victim}'",
            f"DELETE FROM journal_entry WHERE id = '{victim}'",
        )
    )
    code, output = verify(url)
    assert code == 1
    assert f"sequence 4 entry {ids[3]}: expected sequence 3" in output


def test_swapped_sequences_are_named(ledger: tuple[str, str, list[str]]) -> None:
    url, dsn, ids = ledger
    asyncio.run(
        _tamper(
            dsn,
            f"UPDATE entry_chain SET sequence = -1 WHERE entry_id = '{ids[0]}'",
            f"UPDATE entry_chain SET sequence = 1 WHERE entry_id = '{ids[1]}'",
            f"UPDATE entry_chain SET sequence = 2 WHERE entry_id = '{ids[0]}'",
        )
    )
    code, output = verify(url)
    assert code == 1
    assert f"sequence 1 entry {ids[1]}: hash does not match" in output
