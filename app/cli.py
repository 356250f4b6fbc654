"""The `points-ledger` command line."""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

# Every table, so that SQLAlchemy can resolve foreign keys between domains (an
# account names its partner, a key its partner) whichever domain writes first.
import app.models  # noqa: F401
from app.config import Environment, Settings, get_settings
from app.jobs import NAMES, JobName

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession
    from typer._click import Context, HelpFormatter  # the click typer ships and builds on

log = logging.getLogger("points_ledger")


class _Command(TyperCommand):
    """Help as a newcomer reads it. An argument shows its name alone, `KIND` (Typer
    adds its Python type, `KIND <str>`, and braces on the usage line, `{KIND}`); its
    help says what it takes. A command's summary in its group's list is the first
    sentence of its help, whole: click cuts one that does not fit the line with "...".
    (An option shows its metavar alone already; every option that takes a value has one.)"""

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = param.display_name_raw
                pieces.append(name if param.required else f"[{name}]")
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces

    def format_options(self, ctx: Context, formatter: HelpFormatter) -> None:
        arguments, options = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if isinstance(param, TyperArgument):
                arguments.append((param.display_name_raw, record[1]))
            else:
                options.append(record)
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)

    def get_short_help_str(self, limit: int = 45) -> str:
        return super().get_short_help_str(limit=sys.maxsize)


class _Group(TyperGroup):
    """A group's summary in its parent's list is its first sentence, whole, like a command's."""

    def get_short_help_str(self, limit: int = 45) -> str:
        return super().get_short_help_str(limit=sys.maxsize)


cli = typer.Typer(
    cls=_Group,
    help="points-ledger: a loyalty-points service over a double-entry ledger.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # plain help, wrapped by click; see _Command
)
api_key_cli = typer.Typer(cls=_Group, help="Manage API keys.", no_args_is_help=True, rich_markup_mode=None)
cli.add_typer(api_key_cli, name="api-key")
jobs_cli = typer.Typer(cls=_Group, help="Run the ledger's jobs.", no_args_is_help=True, rich_markup_mode=None)
cli.add_typer(jobs_cli, name="jobs")


def _settings() -> Settings:
    try:
        return get_settings()
    except ValueError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from exc


def database_url(settings: Settings) -> str:
    """LEDGER_DATABASE_URL, or outside production an embedded server in LEDGER_DATA_DIR."""
    if settings.database_url:
        return settings.database_url
    if settings.env is Environment.production:  # Settings already refuses this; belt and braces
        raise typer.Exit(2)
    from app import embedded

    url = embedded.start(settings.data_dir)
    log.info("embedded PostgreSQL ready in %s (LEDGER_DATABASE_URL is not set)", settings.data_dir)
    return url


def direct_database_url(settings: Settings) -> str:
    """LEDGER_DIRECT_DATABASE_URL when set, else database_url(): for the commands
    that want PostgreSQL itself rather than a pooler in front of it (migrate: DDL
    and Alembic's own statements in one long transaction; verify and rebuild-lots:
    long reads and a lock on every lot, beyond any pooler's timeouts)."""
    if settings.direct_database_url:
        return settings.direct_database_url
    return database_url(settings)


def alembic_config(url: str) -> object:
    from alembic.config import Config

    root = Path(__file__).resolve().parent.parent
    ini, scripts = root / "alembic.ini", root / "migrations"
    if not scripts.is_dir():  # installed from a wheel: migrations are packaged inside app/
        scripts = Path(__file__).resolve().parent / "_migrations"
        ini = scripts / "alembic.ini"
    config = Config(str(ini))
    config.set_main_option("script_location", str(scripts))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def run_migrations(url: str) -> None:
    from alembic import command

    command.upgrade(alembic_config(url), "head")  # type: ignore[arg-type]


@cli.command(cls=_Command)
def migrate() -> None:
    """Bring the database schema to the latest revision."""
    run_migrations(direct_database_url(_settings()))
    typer.echo("schema is at the latest revision")


@cli.command(cls=_Command)
def serve(
    host: Annotated[
        str, typer.Option(envvar="LEDGER_HOST", metavar="HOST", help="The interface to listen on.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="LEDGER_PORT", metavar="PORT", help="The TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, metavar="N", help="How many worker processes.")] = 1,
) -> None:
    """Serve the HTTP API.

    With no LEDGER_DATABASE_URL, an embedded PostgreSQL is started in LEDGER_DATA_DIR
    and migrated first. Ctrl+C (or SIGTERM) stops the service and the embedded server.
    """
    import os
    import shutil
    import signal
    import tempfile

    import uvicorn

    settings = _settings()
    url = database_url(settings)
    embedded = not settings.database_url
    metrics_dir = None
    try:
        if embedded:
            run_migrations(url)
            log.info("schema at revision %s", _head())
            os.environ["LEDGER_DATABASE_URL"] = url  # worker processes read it
            if settings.admin_key is None:
                log.info(
                    "no LEDGER_ADMIN_KEY: make a key with "
                    "`points-ledger api-key create --program default --scopes admin`"
                )
        if workers > 1:
            # Every worker counts in files here and /metrics sums them (prometheus_client
            # reads the variable when it is imported: each worker imports it afresh).
            metrics_dir = tempfile.mkdtemp(prefix="points-ledger-metrics-")
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        get_settings.cache_clear()
        shown = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
        log.info("serving on http://%s:%d; docs at http://%s:%d/docs", shown, port, shown, port)
        # uvicorn shuts down gracefully on SIGINT or SIGTERM, then raises the signal
        # again with the handler it found: this one, which lets it return to the
        # finally below. A second signal meanwhile (uv run forwards the terminal's
        # Ctrl+C once more) must not cut the shutdown short either.
        for stopping in (signal.SIGINT, signal.SIGTERM):
            signal.signal(stopping, lambda *_: None)
        uvicorn.run(
            "app.asgi:app",
            host=host,
            port=port,
            workers=workers,
            proxy_headers=True,
            access_log=False,  # the service logs each request itself, with its request id
            log_config=None,  # keep the logging app.logs set up
        )
    except KeyboardInterrupt:
        pass  # Ctrl+C: uvicorn has shut down; what is left is below
    finally:
        if embedded:
            from app import embedded as server

            server.stop()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        log.info("stopped")


def _head() -> str:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("postgresql://unused/none"))  # type: ignore[arg-type]
    return str(script.get_current_head())


@cli.command(cls=_Command)
def verify() -> None:
    """Prove the ledger is sound, check by check.

    Prints every check and its mismatches; exits 1 on any mismatch.
    """
    url = direct_database_url(_settings())
    failed = asyncio.run(_verify(url))
    raise typer.Exit(1 if failed else 0)


async def _verify(url: str) -> bool:
    import asyncpg

    from app.db import asyncpg_dsn
    from app.ledger.verify import totals, verify
    from app.reports.rollups import VERIFY_CHECKS

    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        counts = await totals(connection)
        typer.echo("checked " + ", ".join(f"{n} {what}" for what, n in counts.items()))
        outcomes = await verify(connection, VERIFY_CHECKS)
    finally:
        await connection.close()
    for outcome in outcomes:
        typer.echo(f"[{'ok' if outcome.mismatches == 0 else 'FAIL'}] {outcome.name}")
        if outcome.mismatches:
            typer.echo(f"       {outcome.mismatches} mismatch(es)")
            for example in outcome.examples:
                typer.echo(f"       - {example}")
    failed = sum(outcome.mismatches for outcome in outcomes)
    typer.echo("ledger is sound" if not failed else f"ledger has {failed} mismatch(es)")
    return failed > 0


@cli.command("rebuild-lots", cls=_Command)
def rebuild_lots() -> None:
    """Rebuild every lot from the ledger, when `verify` finds them out of step.

    A lot is what is left of a credit of points, with its expiry. Earning and
    spending wait while it runs: it locks the lots.
    """
    url = direct_database_url(_settings())
    written = asyncio.run(_rebuild_lots(url))
    typer.echo(f"rebuilt {written} lots from the ledger; run `points-ledger verify` to check them")


async def _rebuild_lots(url: str) -> int:
    import asyncpg

    from app.db import asyncpg_dsn
    from app.ledger.lots import rebuild

    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return await rebuild(connection)
    finally:
        await connection.close()


def _split_scopes(values: list[str]) -> list[str]:
    from app.auth.schemas import ALL_SCOPES

    scopes = sorted({part for value in values for part in value.replace(",", " ").split() if part})
    unknown = [scope for scope in scopes if scope not in ALL_SCOPES]
    if unknown or not scopes:
        raise typer.BadParameter(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(ALL_SCOPES)}")
    return scopes


@api_key_cli.command("create", cls=_Command)
def api_key_create(
    program: Annotated[str, typer.Option(metavar="CODE", help="The program's code, e.g. default.")],
    scopes: Annotated[
        list[str],
        typer.Option(metavar="SCOPES", help="The key's scopes, comma-separated (or the option repeated)."),
    ],
    name: Annotated[str, typer.Option(metavar="NAME", help="A label for the key.")] = "cli",
) -> None:
    """Create an API key and print it once."""
    chosen = _split_scopes(scopes)
    url = database_url(_settings())
    key = asyncio.run(_create_key(url, program, name, chosen))
    if key is None:
        typer.echo(f"no program {program}", err=True)
        raise typer.Exit(1)
    typer.echo(key)


@asynccontextmanager
async def _unit_of_work(url: str) -> AsyncIterator[AsyncSession]:
    """One transaction on the database, for the commands that manage keys."""
    from app.db import Database

    db = Database(url, _settings())
    try:
        async with db.unit_of_work() as session:
            yield session
    finally:
        await db.dispose()


async def _create_key(url: str, program: str, name: str, scopes: list[str]) -> str | None:
    from app.auth.service import create_key
    from app.clock import SystemClock
    from app.programs.repository import program_id

    async with _unit_of_work(url) as session:
        found = await program_id(session, program)
        if found is None:
            return None
        _, key = await create_key(
            session, program_id=found, name=name, scopes=scopes, partner_code=None, now=SystemClock().now()
        )
        return key


@api_key_cli.command("list", cls=_Command)
def api_key_list(
    program: Annotated[str, typer.Option(metavar="CODE", help="The program's code, e.g. default.")],
) -> None:
    """List a program's keys, newest first.

    One line a key: id, name, prefix, scopes, created, revoked. Secrets are never
    shown (only their digests are kept).
    """
    rows = asyncio.run(_list_keys(database_url(_settings()), program))
    if rows is None:
        typer.echo(f"no program {program}", err=True)
        raise typer.Exit(1)
    for row in rows:
        revoked = f"revoked {row.revoked_at:%Y-%m-%dT%H:%M:%SZ}" if row.revoked_at else "active"
        typer.echo(
            f"{row.id}  {row.name:<16} {row.key_prefix}...  {','.join(row.scopes):<40} "
            f"created {row.created_at:%Y-%m-%dT%H:%M:%SZ}  {revoked}"
        )


async def _list_keys(url: str, program: str) -> list[Any] | None:
    from app.auth.service import list_keys
    from app.programs.repository import program_id

    async with _unit_of_work(url) as session:
        found = await program_id(session, program)
        if found is None:
            return None
        return await list_keys(session, found, limit=10_000, before=None)


@api_key_cli.command("revoke", cls=_Command)
def api_key_revoke(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id, as `api-key list` shows it.")],
) -> None:
    """Revoke a key: its next request, in every process, is 401."""
    try:
        parsed = uuid.UUID(key_id)
    except ValueError as exc:
        raise typer.BadParameter("an API key id, like 0193b1a2-7c1e-7d2a-9a4f-5a1e2f3b4c5d") from exc
    if not asyncio.run(_revoke_key(database_url(_settings()), parsed)):
        typer.echo(f"no API key {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


async def _revoke_key(url: str, key_id: uuid.UUID) -> bool:
    from app.auth.service import ApiKeyNotFound, program_of_key, revoke_key
    from app.clock import SystemClock

    async with _unit_of_work(url) as session:
        program = await program_of_key(session, key_id)
        if program is None:
            return False
        try:
            await revoke_key(session, program, key_id, SystemClock().now())
        except ApiKeyNotFound:
            return False
        return True


def _instant(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter("an RFC 3339 instant such as 2026-12-01T00:00:00Z") from exc
    if parsed.tzinfo is None:
        raise typer.BadParameter("give the instant's offset, e.g. 2026-12-01T00:00:00Z")
    from app.fields import EARLIEST, LATEST

    if not EARLIEST <= parsed < LATEST:
        raise typer.BadParameter("an instant between 1900-01-01 and 9000-01-01")
    return parsed.astimezone(UTC)


@jobs_cli.command("run", cls=_Command)
def jobs_run(
    job: Annotated[JobName, typer.Argument(metavar="JOB", help=f"The job to run: {', '.join(NAMES)}.")],
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", metavar="INSTANT", help="Run as of this RFC 3339 instant (default: now)."),
    ] = None,
    program: Annotated[
        str | None, typer.Option(metavar="CODE", help="Only this program (default: all).")
    ] = None,
    progress: Annotated[
        bool | None,
        typer.Option("--progress/--no-progress", help="Draw a progress bar (default: on a terminal)."),
    ] = None,
) -> None:
    """Run a job to completion and print what it did.

    The job runs as of now, or as of the instant `--as-of` gives.
    """
    settings = _settings()
    instant = _instant(as_of)
    url = database_url(settings)
    summary = asyncio.run(_run_job(url, settings, job.value, program, instant, progress))
    if summary is None:
        typer.echo(f"no program {program}", err=True)
        raise typer.Exit(1)
    typer.echo(summary)


class _Bar:
    """A job's progress as a rich progress bar on stderr."""

    def __init__(self, name: str, enabled: bool | None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        console = Console(stderr=True)
        self.progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not (console.is_terminal if enabled is None else enabled),
        )
        self.task = self.progress.add_task(name, total=None)

    def total(self, items: int) -> None:
        self.progress.update(self.task, total=items)

    def advance(self, items: int) -> None:
        self.progress.advance(self.task, items)


async def _run_job(
    url: str,
    settings: Settings,
    name: str,
    program: str | None,
    as_of: datetime | None,
    progress: bool | None,
) -> str | None:
    from app.clock import SystemClock
    from app.db import Database
    from app.jobs.service import run
    from app.programs.repository import program_id

    db = Database(url, settings)
    await db.connect()
    try:
        found = None
        if program is not None:
            async with db.unit_of_work() as session:
                found = await program_id(session, program)
            if found is None:
                return None
        now = SystemClock().now()
        if as_of is not None and as_of > now and settings.env is Environment.production:
            raise typer.BadParameter("--as-of in the future is refused in production")
        bar = _Bar(name, progress)
        with bar.progress:
            summary = await run(db, name, program_id=found, as_of=as_of or now, now=now, progress=bar)
    finally:
        await db.dispose()
    counts = ", ".join(f"{value} {key}" for key, value in summary.counts.items())
    return f"{summary.job} as of {summary.as_of.isoformat()}: {counts}"


class ImportFormat(StrEnum):
    csv = "csv"
    jsonl = "jsonl"


def _read_rows(path: Path, fmt: ImportFormat | None) -> list[dict[str, Any]]:
    """A file's rows: CSV with a header line, or JSON lines (one object a line)."""
    import csv
    import json

    chosen = fmt or (ImportFormat.csv if path.suffix.lower() == ".csv" else ImportFormat.jsonl)
    with path.open(encoding="utf-8", newline="") as handle:
        if chosen is ImportFormat.csv:
            return list(csv.DictReader(handle))
        rows: list[dict[str, Any]] = []
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise typer.BadParameter(f"line {number} of {path} is not JSON: {exc}") from exc
        return rows


@cli.command("import", cls=_Command)
def import_file(
    kind: Annotated[
        str, typer.Argument(metavar="KIND", help="What the file holds: members, lots, orders or tiers.")
    ],
    file: Annotated[
        Path, typer.Argument(metavar="FILE", help="The file: CSV (.csv) or JSON lines (.jsonl).")
    ],
    program: Annotated[str, typer.Option(metavar="CODE", help="The program's code.")],
    source: Annotated[
        str, typer.Option(metavar="NAME", help="The legacy system: rows are keyed by it and their reference.")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate every row and say what would be written.")
    ] = False,
    expect_rows: Annotated[
        int | None, typer.Option(metavar="N", help="Control total: refuse unless the file has N rows.")
    ] = None,
    expect_points: Annotated[
        int | None, typer.Option(metavar="P", help="Control total: refuse unless the rows hold P points.")
    ] = None,
    all_or_nothing: Annotated[
        bool, typer.Option("--all-or-nothing", help="Import nothing if any row is invalid.")
    ] = False,
    errors_file: Annotated[
        Path | None,
        typer.Option(metavar="PATH", help="Write the invalid rows here (CSV: row, field, code, message)."),
    ] = None,
    fmt: Annotated[
        ImportFormat | None,
        typer.Option("--format", metavar="FORMAT", help="csv or jsonl (default: by the file's extension)."),
    ] = None,
    progress: Annotated[
        bool | None,
        typer.Option("--progress/--no-progress", help="Draw a progress bar (default: on a terminal)."),
    ] = None,
) -> None:
    """Import members, lots, past orders or tiers from a legacy program.

    Prints the summary (JSON). Exits 1 when the import is refused (control totals,
    or an invalid row with --all-or-nothing) or a row is invalid; 0 otherwise.
    Running the same file again imports nothing more (its rows are `skipped`).
    """
    from app.imports.schemas import IMPORT_KINDS

    if kind not in IMPORT_KINDS:
        raise typer.BadParameter(f"KIND is one of {', '.join(IMPORT_KINDS)}")
    if not file.is_file():
        raise typer.BadParameter(f"no file {file}")
    rows = _read_rows(file, fmt)
    settings = _settings()
    url = database_url(settings)
    outcome = asyncio.run(
        _import(
            url,
            settings,
            kind,
            program,
            source,
            rows,
            dry_run,
            all_or_nothing,
            expect_rows,
            expect_points,
            progress,
        )
    )
    if outcome is None:
        typer.echo(f"no program {program}", err=True)
        raise typer.Exit(1)
    summary, refusal = outcome
    if errors_file is not None and summary.errors:
        import csv

        with errors_file.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["row", "field", "code", "message"])
            for error in summary.errors:
                writer.writerow([error.row, error.field, error.code, error.message])
    elif summary.errors:
        for error in summary.errors[:20]:
            typer.echo(f"row {error.row}: {error.field}: {error.code}: {error.message}", err=True)
        if len(summary.errors) > 20:
            typer.echo(f"... {len(summary.errors) - 20} more (--errors-file PATH lists them all)", err=True)
    typer.echo(summary.model_dump_json(exclude={"errors"}, indent=2))
    if refusal is not None:
        typer.echo(f"refused: {refusal}", err=True)
    raise typer.Exit(1 if refusal is not None or summary.invalid else 0)


async def _import(
    url: str,
    settings: Settings,
    kind: str,
    program: str,
    source: str,
    rows: list[dict[str, Any]],
    dry_run: bool,
    all_or_nothing: bool,
    expect_rows: int | None,
    expect_points: int | None,
    progress: bool | None,
) -> tuple[Any, str | None] | None:
    from app.clock import SystemClock
    from app.db import Database
    from app.imports import service
    from app.programs.repository import program_id
    from app.rulesets.cache import RulesCache

    db = Database(url, settings)
    await db.connect()
    try:
        async with db.unit_of_work() as session:
            found = await program_id(session, program)
        if found is None:
            return None
        bar = _Bar(f"import {kind}", progress)
        options = service.Options(dry_run, all_or_nothing, expect_rows, expect_points)
        try:
            with bar.progress:
                summary = await service.run(
                    db,
                    RulesCache(),
                    program_id=found,
                    kind=kind,  # type: ignore[arg-type]
                    source=source,
                    rows=rows,
                    options=options,
                    now=SystemClock().now(),
                    progress=bar,
                )
        except service.ImportRefused as exc:
            return exc.summary, f"{exc.code}: {exc.detail}"
        return summary, None
    finally:
        await db.dispose()


@cli.command(cls=_Command)
def worker(
    interval: Annotated[
        float | None,
        typer.Option(
            metavar="SECONDS", help="Seconds between rounds (default: LEDGER_WORKER_INTERVAL_SECONDS)."
        ),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Run one round of every job, then exit.")] = False,
) -> None:
    """Run the jobs, the chainer and the webhook dispatcher until stopped.

    The chainer and the webhook dispatcher run continuously, and every job
    (lift-statuses, activate-pending, release-holds, expire, evaluate-tiers,
    notify-expiring) as of now, every `--interval` seconds (expire and evaluate-tiers
    hourly, or as LEDGER_WORKER_JOB_INTERVALS says), until SIGINT or SIGTERM.
    Several workers may run at once: each job runs in one of them at a time (a
    PostgreSQL advisory lock).
    """
    settings = _settings()
    url = database_url(settings)
    asyncio.run(_worker(url, settings, interval or settings.worker_interval_seconds, once))


async def _worker(url: str, settings: Settings, interval: float, once: bool) -> None:
    import signal

    from app.clock import SystemClock
    from app.db import Database
    from app.jobs.worker import Round, run_forever, run_round
    from app.ledger import chain
    from app.main import background
    from app.webhooks.dispatcher import Dispatcher

    def report(done: Round) -> None:
        for name, counts in done.ran.items():
            typer.echo(f"{name}: " + ", ".join(f"{value} {key}" for key, value in counts.items()))
        for name in done.skipped:
            typer.echo(f"{name}: skipped (another worker is running it)")

    db = Database(url, settings)
    await db.connect()
    try:
        clock = SystemClock()
        if once:
            report(await run_round(db, clock))
            typer.echo(f"chained: {await chain.chain_all(db, clock.now())} entries and events")
            dispatcher = Dispatcher(db, settings, clock)
            try:
                typer.echo(f"webhooks: {await dispatcher.run_once()} delivery attempts")
            finally:
                await dispatcher.close()
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        typer.echo(
            f"worker: running every job every {interval:g} s, the chainer and the webhook dispatcher; "
            "stop with SIGINT or SIGTERM",
            err=True,
        )
        tasks = background(db, settings, clock, db.direct_dsn, stop)
        try:
            await run_forever(
                db,
                clock,
                interval=interval,
                stop=stop,
                on_round=report,
                job_intervals=settings.worker_job_intervals,
            )
        finally:
            stop.set()
            await asyncio.gather(*tasks)
    finally:
        await db.dispose()


@cli.command(cls=_Command)
def openapi(
    output: Annotated[Path, typer.Option(metavar="PATH", help="Where to write the document.")] = Path(
        "openapi.yaml"
    ),
) -> None:
    """Write the OpenAPI document generated from the app."""
    from app.openapi import render_openapi

    output.write_text(render_openapi())
    typer.echo(f"wrote {output}")


def _version(show: bool) -> None:
    if show:
        from importlib.metadata import version

        typer.echo(f"points-ledger {version('points-ledger')}")
        raise typer.Exit()


@cli.callback()
def _options(
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="Also show the embedded server's, Alembic's and uvicorn's lines."
        ),
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """points-ledger: a loyalty-points service over a double-entry ledger."""
    from app.logs import configure

    level, fmt = "info", "text"
    try:
        settings = get_settings()
        level, fmt = settings.log_level, settings.log_format
    except ValueError:
        pass  # _settings() reports it when a command needs the settings
    configure(level, fmt, verbose=verbose)


def main() -> None:
    try:
        cli()
    except KeyboardInterrupt:  # Ctrl+C outside serve: one line, no traceback
        typer.echo("interrupted", err=True)
        raise SystemExit(130) from None
