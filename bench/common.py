"""What the benchmarks share: a fresh, migrated database, members and API keys to
work on, a percentile, and the CPU time a server and PostgreSQL's backends spent."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from datetime import datetime

import asyncpg

from app.auth.service import mint_key
from app.cli import run_migrations
from app.db import asyncpg_dsn
from app.ledger.entries import MEMBER_ACCOUNT_KINDS
from app.ledger.verify import verify
from app.reports.rollups import VERIFY_CHECKS
from tests.pgcluster import PrivateCluster

SERVER = os.environ.get("BENCH_SERVER_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")

# A private server configured as one would be for this machine's memory (24 GB):
# shared buffers of 2 GB instead of Debian's 128 MB, checkpoints every 8 GB of WAL
# instead of 1 GB; fsync and synchronous commit on, as on 5432.
TUNED = {"fsync": "on", "shared_buffers": "2GB", "max_wal_size": "8GB", "max_connections": "100"}


@contextlib.contextmanager
def private_server(settings: dict[str, str]) -> Iterator[None]:
    """A private PostgreSQL (initdb and pg_ctl on a free port of 127.0.0.1) with
    `settings`, which SERVER (and so every database_url()) names until it is
    stopped and removed on leaving."""
    global SERVER
    cluster = PrivateCluster(settings=settings)
    before = SERVER
    try:
        cluster.initdb()
        cluster.start()
        SERVER = cluster.url()
        print(f"on a private PostgreSQL at 127.0.0.1:{cluster.port} with {settings}", flush=True)
        yield
    finally:
        SERVER = before
        cluster.remove()


def database_url(name: str) -> str:
    return SERVER.rpartition("/")[0] + "/" + name


async def fresh_database(name: str) -> None:
    """Drop and recreate `name`, then migrate it to the latest revision."""
    await drop_database(name)
    admin = await asyncpg.connect(asyncpg_dsn(SERVER))
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    await asyncio.to_thread(run_migrations, database_url(name))


async def drop_database(name: str) -> None:
    """Drop a bench database (the benches drop only the ones they make)."""
    admin = await asyncpg.connect(asyncpg_dsn(SERVER))
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


async def add_members(
    connection: asyncpg.Connection, program_id: int, count: int, enrolled_at: datetime | None = None
) -> None:
    """Members m-1 .. m-count with their accounts and empty balances, enrolled at
    `enrolled_at` (default: now)."""
    await connection.execute(
        """
        WITH m AS (
            INSERT INTO member (program_id, external_id, enrolled_at, created_at)
            SELECT $1, 'm-' || g, coalesce($4, now()), coalesce($4, now()) FROM generate_series(1, $2) AS g
            RETURNING id
        ), a AS (
            INSERT INTO account (program_id, member_id, kind)
            SELECT $1, m.id, k FROM m, unnest($3::text[]) AS k
        )
        INSERT INTO member_balance (program_id, member_id, updated_at)
        SELECT $1, id, coalesce($4, now()) FROM m
        """,
        program_id,
        count,
        list(MEMBER_ACCOUNT_KINDS),
        enrolled_at,
    )


async def add_api_key(connection: asyncpg.Connection, program_id: int, name: str, scopes: list[str]) -> str:
    """A new API key of the program with these scopes; the key itself."""
    key, prefix, digest = mint_key()
    await connection.execute(
        "WITH lookup AS (INSERT INTO api_key_lookup (key_hash, program_id) VALUES ($4, $1))"
        " INSERT INTO api_key (id, program_id, name, key_prefix, key_hash, scopes, created_at)"
        " VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, now())",
        program_id,
        name,
        prefix,
        digest,
        scopes,
    )
    return key


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """The user and system CPU seconds process `pid` has spent (from /proc; 0 once
    it has gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def server_cpu(pid: int) -> float:
    """CPU seconds of a server process and its worker processes."""
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rpartition(")")[2].split()[1]) == pid:
                        children.append(int(entry))
            except (FileNotFoundError, ProcessLookupError):
                continue
    return cpu_seconds(pid) + sum(cpu_seconds(child) for child in children)


async def backends_cpu(name: str) -> float:
    """CPU seconds of the client backends connected to the bench database `name`
    (the same machine's PostgreSQL; autovacuum's are not the requests'), but the
    one that asks."""
    connection = await asyncpg.connect(asyncpg_dsn(database_url(name)))
    try:
        pids = await connection.fetch(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = $1 AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
            name,
        )
    finally:
        await connection.close()
    return sum(cpu_seconds(row["pid"]) for row in pids)


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (share 0.99: p99); nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def settle(name: str) -> None:
    """VACUUM (ANALYZE) the bench database between measured rounds, outside the
    measured time: what autovacuum does on its own on a production server (its
    analyze threshold is a tenth of a table changed, which every round passes).
    The shared server here runs with autovacuum off; without this, statistics
    taken when the tables were empty stay, and a connection's cached plan for a
    table that then grew by 100,000 rows scans all of it on every request (a
    round's req/s then fell by half from one round to the next)."""

    async def run() -> None:
        connection = await asyncpg.connect(asyncpg_dsn(database_url(name)))
        try:
            await connection.execute("VACUUM (ANALYZE)")
        finally:
            await connection.close()

    asyncio.run(run())


async def sound(name: str) -> bool:
    connection = await asyncpg.connect(asyncpg_dsn(database_url(name)))
    try:
        return all(outcome.mismatches == 0 for outcome in await verify(connection, VERIFY_CHECKS))
    finally:
        await connection.close()
