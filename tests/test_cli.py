"""The command line, run in-process against real PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

import asyncpg
import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from app import embedded
from app.cli import cli, run_migrations
from app.db import asyncpg_dsn
from tests.conftest import scratch_database
from tests.support import dsn, scratch_name

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("fresh_settings")


def invoke(url: str, *args: str) -> tuple[int, str]:
    result = runner.invoke(cli, list(args), env={"LEDGER_DATABASE_URL": url, "LEDGER_ENV": "test"})
    return result.exit_code, result.output


async def _sound_then_corrupt(name: str) -> None:
    connection = await asyncpg.connect(dsn(name))
    try:
        member = await connection.fetchval(
            "INSERT INTO member (program_id, external_id, enrolled_at, created_at)"
            " VALUES (1, 'cli-member', now(), now()) RETURNING id"
        )
        await connection.execute(
            "INSERT INTO account (program_id, member_id, kind)"
            " SELECT 1, $1, k FROM unnest(ARRAY['available', 'pending', 'held']) AS k",
            member,
        )
        await connection.execute(
            "INSERT INTO member_balance (program_id, member_id, updated_at) VALUES (1, $1, now())", member
        )
        await connection.fetch(
            "SELECT * FROM ledger_post(p_entry_id => $1, p_program_id => 1, p_kind => 'award',"
            " p_idempotency_key => 'cli-1', p_request_fingerprint => 'f', p_occurred_at => now(),"
            " p_recorded_at => now(), p_actor_key_id => NULL, p_reverses_entry_id => NULL, p_reason => 'r',"
            " p_order_id => NULL, p_rules_version => NULL, p_expires_at => NULL, p_pending_until => NULL,"
            " p_metadata => '{}', p_members => ARRAY['cli-member', NULL],"
            " p_accounts => ARRAY['available', 'issuance'], p_amounts => ARRAY[40, -40]::bigint[])",
            uuid.uuid4(),
        )
    finally:
        await connection.close()


async def _corrupt(name: str) -> None:
    connection = await asyncpg.connect(dsn(name))
    try:
        await connection.execute("UPDATE member_balance SET available = available + 5")
    finally:
        await connection.close()


class TestVerify:
    def test_sound_ledger_passes_and_a_tampered_balance_fails(self) -> None:
        with scratch_database("verify") as url:
            self._sound_then_tampered(url, scratch_name("verify"))

    def _sound_then_tampered(self, url: str, name: str) -> None:
        asyncio.run(_sound_then_corrupt(name))

        code, output = invoke(url, "verify")
        assert code == 0, output
        assert "ledger is sound" in output
        assert "[ok] every entry has two or more postings summing to zero" in output

        asyncio.run(_corrupt(name))
        code, output = invoke(url, "verify")
        assert code == 1
        assert "[FAIL] every cached member balance equals the sum of its postings" in output
        assert "cli-member" in output

    def test_rebuild_lots_repairs_what_verify_finds(self) -> None:
        with scratch_database("rebuild") as url:
            self._rebuilt(url, scratch_name("rebuild"))

    def _rebuilt(self, url: str, name: str) -> None:
        asyncio.run(_sound_then_corrupt(name))
        asyncio.run(_execute(name, "UPDATE point_lot SET remaining = remaining - 1"))
        code, output = invoke(url, "verify")
        assert code == 1
        assert "[FAIL] the lots agree with a replay of the ledger" in output
        code, output = invoke(url, "rebuild-lots")
        assert code == 0, output
        assert "rebuilt 1 lots from the ledger" in output
        code, output = invoke(url, "verify")
        assert (code, "ledger is sound" in output) == (0, True), output


async def _execute(name: str, sql: str) -> None:
    connection = await asyncpg.connect(dsn(name))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


class TestApiKeyCreate:
    def test_works_in_a_process_of_its_own(self, migrated_database: str) -> None:
        # In a fresh interpreter, where only what the CLI imports is loaded: an api_key
        # row names a partner table no auth module imports (in-process, the tests'
        # own imports would hide that).
        import os
        import subprocess
        import sys

        env = {**os.environ, "LEDGER_DATABASE_URL": migrated_database, "LEDGER_ENV": "test"}
        result = subprocess.run(
            [sys.executable, "-c", "from app.cli import cli; cli()", "api-key", "create", "--program",
             "default", "--scopes", "members:read", "--name", "fresh"],
            cwd=Path(__file__).resolve().parent.parent, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.strip().splitlines()[-1].startswith("plk_")

    def test_prints_a_working_key(self, migrated_database: str) -> None:
        code, output = invoke(
            migrated_database,
            "api-key",
            "create",
            "--program",
            "default",
            "--scopes",
            "members:read,points:earn",
            "--name",
            "ci",
        )
        assert code == 0, output
        key = output.strip().splitlines()[-1]
        assert key.startswith("plk_")

        async def scopes() -> list[str]:
            from app.auth.service import hash_key

            connection = await asyncpg.connect(asyncpg_dsn(migrated_database))
            try:
                return list(
                    await connection.fetchval("SELECT scopes FROM api_key WHERE key_hash = $1", hash_key(key))
                )
            finally:
                await connection.close()

        assert asyncio.run(scopes()) == ["members:read", "points:earn"]

    def test_unknown_program_and_scope_fail(self, migrated_database: str) -> None:
        code, _ = invoke(migrated_database, "api-key", "create", "--program", "nope", "--scopes", "admin")
        assert code == 1
        code, _ = invoke(migrated_database, "api-key", "create", "--program", "default", "--scopes", "root")
        assert code == 2


class TestMigrate:
    def test_migrate_is_idempotent(self, migrated_database: str) -> None:
        code, output = invoke(migrated_database, "migrate")
        assert code == 0, output
        assert "latest revision" in output


class TestEmbeddedDatabase:
    def test_first_run_without_configuration_gets_a_migrated_server(self, tmp_path: Path) -> None:
        url = embedded.start(tmp_path)
        run_migrations(url)

        async def programs() -> int:
            connection = await asyncpg.connect(asyncpg_dsn(url))
            try:
                return int(await connection.fetchval("SELECT count(*) FROM program WHERE code = 'default'"))
            finally:
                await connection.close()

        assert asyncio.run(programs()) == 1


class TestApiKeyListAndRevoke:
    def test_list_shows_the_keys_and_revoke_stops_one(self, migrated_database: str) -> None:
        code, output = invoke(migrated_database, "api-key", "create", "--program", "default", "--scopes",
                              "members:read", "--name", "listed")  # fmt: skip
        assert code == 0, output
        code, listing = invoke(migrated_database, "api-key", "list", "--program", "default")
        assert code == 0, listing
        line = next(line for line in listing.splitlines() if " listed " in line)
        assert line.endswith("active")
        assert "members:read" in line
        key_id = line.split()[0]
        code, output = invoke(migrated_database, "api-key", "revoke", key_id)
        assert (code, output.strip()) == (0, f"revoked {key_id}")
        code, listing = invoke(migrated_database, "api-key", "list", "--program", "default")
        assert "revoked 2" in next(line for line in listing.splitlines() if line.startswith(key_id))

    def test_unknown_keys_and_programs_fail(self, migrated_database: str) -> None:
        code, _ = invoke(migrated_database, "api-key", "revoke", str(uuid.uuid4()))
        assert code == 1
        code, _ = invoke(migrated_database, "api-key", "revoke", "not-an-id")
        assert code == 2
        code, _ = invoke(migrated_database, "api-key", "list", "--program", "nope")
        assert code == 1


class TestHelp:
    def test_version(self) -> None:
        code, output = invoke("postgresql://unused/none", "--version")
        assert (code, output.strip()) == (0, "points-ledger 0.1.0")

    # The width an 80-column terminal gets, and the narrowest click lays help out in.
    @pytest.mark.parametrize("width", [78, 50])
    def test_help_has_no_type_placeholders(self, width: int) -> None:
        paths = _command_paths(typer.main.get_command(cli), [])
        assert {"import", "api-key revoke", "jobs run"} <= {" ".join(path) for path in paths}
        listed = 0
        for path in paths:
            result = runner.invoke(cli, [*path, "--help"], terminal_width=width)
            shown = " ".join(["points-ledger", *path, "--help"])
            assert result.exit_code == 0, (shown, result.output)
            listed += len(_summaries(result.output))
            assert not re.search(r"<[^<>\s]+>", result.output), (shown, result.output)  # KIND <str>
            assert not re.search(r"\{[^{}\s]+\}", result.output), (shown, result.output)  # {KIND}
            for name, summary in _summaries(result.output).items():
                # click cuts a summary that does not fit with "...": each must be a whole sentence
                assert not summary.endswith("..."), (shown, name, summary)
                assert summary.endswith("."), (shown, name, summary)
        assert listed == len(paths) - 1  # every command but the top one, in its group's list

    def test_arguments_show_their_names(self) -> None:
        result = runner.invoke(cli, ["import", "--help"])
        assert "import [OPTIONS] KIND FILE\n" in result.output
        assert "\n  KIND  What the file holds" in result.output


def _command_paths(command: object, path: list[str]) -> list[list[str]]:
    """The path of every command and group under `command`, itself included."""
    paths = [path]
    if isinstance(command, TyperGroup):
        for name, sub in command.commands.items():
            paths.extend(_command_paths(sub, [*path, name]))
    return paths


def _summaries(output: str) -> dict[str, str]:
    """The Commands section of a group's help: each command's summary, its wrapped lines joined."""
    summaries: dict[str, str] = {}
    lines = output.split("\nCommands:\n", 1)[1].splitlines() if "\nCommands:\n" in output else []
    for line in lines:
        if not line.strip():
            break
        name, _, text = line.strip().partition(" ")
        if line.startswith("  ") and not line.startswith("   "):
            summaries[name] = text.strip()
        else:  # a summary's wrapped continuation
            last = next(reversed(summaries))
            summaries[last] += " " + line.strip()
    return summaries


class TestImport:
    """`points-ledger import`: a CSV of members then lots, re-run, errors file, exit codes."""

    def test_import_rerun_errors_file_and_exit_codes(self, tmp_path: Path) -> None:
        with scratch_database("import") as url:
            members = tmp_path / "members.csv"
            members.write_text(
                "external_id,enrolled_at,birthday,metadata\nlg-1,2024-01-05T10:00:00Z,,\n"
                'lg-2,2024-02-05T10:00:00Z,1990-04-17,"{""tier"": ""gold""}"\n'
            )
            lots = tmp_path / "lots.jsonl"
            lots.write_text(
                '{"member": "lg-1", "lot_ref": "a", "points": 100, "earned_at": "2025-01-01T00:00:00Z",'
                ' "expires_at": "2099-01-01T00:00:00Z"}\n'
                '{"member": "lg-2", "lot_ref": "b", "points": 50, "earned_at": "2025-01-01T00:00:00Z"}\n'
                '{"member": "lg-2", "lot_ref": "c", "points": 5, "earned_at": "2020-01-01T00:00:00Z",'
                ' "expires_at": "2021-01-01T00:00:00Z"}\n'
            )
            base = ["--program", "default", "--source", "old", "--no-progress"]
            code, output = invoke(url, "import", "members", str(members), *base)
            assert code == 0, output
            assert '"imported": 2' in output
            code, output = invoke(
                url, "import", "lots", str(lots), *base, "--expect-rows", "3", "--expect-points", "9"
            )
            assert code == 1, output
            assert "import_control_totals_mismatch" in output
            code, output = invoke(url, "import", "lots", str(lots), *base, "--all-or-nothing")
            assert code == 1, output
            assert "import_rows_invalid" in output
            code, output = invoke(url, "import", "lots", str(lots), *base, "--dry-run")
            assert code == 1, output
            assert '"imported": 2' in output
            errors = tmp_path / "errors.csv"
            code, output = invoke(url, "import", "lots", str(lots), *base, "--errors-file", str(errors))
            assert code == 1, output  # a row was invalid: the valid ones are in
            assert '"imported": 2' in output
            assert '"points": 150' in output
            assert errors.read_text().splitlines()[1].startswith("3,expires_at,lot_expired,")
            code, output = invoke(url, "import", "lots", str(lots), *base, "--errors-file", str(errors))
            assert '"imported": 0' in output, output
            assert '"skipped": 2' in output
            code, output = invoke(url, "import", "tiers", str(lots), *base)
            assert code == 1  # lots are no tiers: every row invalid
            code, output = invoke(url, "import", "points", str(lots), *base)
            assert code == 2
            code, output = invoke(url, "verify")
            assert code == 0, output

    def test_text_no_database_can_hold_is_a_row_error(self, tmp_path: Path) -> None:
        """A JSON line may spell a lone surrogate (\\ud800), which no UTF-8 text
        holds: the row is invalid, the others imported, and nothing fails."""
        with scratch_database("import-text") as url:
            base = ["--program", "default", "--source", "old", "--no-progress"]
            members = tmp_path / "members.jsonl"
            members.write_text(
                '{"external_id": "t-1"}\n{"external_id": "t-2", "metadata": {"note": "\\ud800"}}\n'
            )
            code, output = invoke(url, "import", "members", str(members), *base)
            assert code == 1, output
            assert ('"imported": 1' in output, "row 2: metadata" in output) == (True, True), output
            lots = tmp_path / "lots.jsonl"
            lots.write_text(
                '{"member": "t-1", "lot_ref": "a", "points": 10, "earned_at": "2025-01-01T00:00:00Z"}\n'
                '{"member": "t-1", "lot_ref": "b\\udfff", "points": 10,'
                ' "earned_at": "2025-01-01T00:00:00Z"}\n'
            )
            code, output = invoke(url, "import", "lots", str(lots), *base)
            assert code == 1, output
            assert ('"imported": 1' in output, "row 2: lot_ref" in output) == (True, True), output
            code, output = invoke(url, "verify")
            assert code == 0, output
