"""The lot replay's reads over a large ledger: what ledger_lot_changes() costs for
each of its callers.

    uv run python -m bench.lot_changes --database NAME            # a ledger bench.reports built
    uv run python -m bench.lot_changes --database NAME --build 1000000

Reads, with the service's own queries (so a checkout of another version measures
that version's SQL against the same ledger, after `alembic upgrade`/`downgrade`;
the reports' through app/reports/repository.py, `verify`'s query fetched whole
where `verify` streams it):
1. a day's lot changes: yesterday, and the same day a year back (what the rollup
   job's next-day run and a report inside an earlier rolled day replay; at
   1,000,000 members a day's postings are a few thousand of many members);
2. the program's whole history before now (the rollup job's first run and
   `verify`'s rollup check);
3. every program's whole history (`verify`'s lot replay and `rebuild-lots`).

Each read --rounds times in turn; the median and the spread in seconds and the
rows are printed, with the machine's load. Nothing is written; the database is
kept (bench.reports --drop, or dropdb, removes it).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from app.db import asyncpg_dsn
from app.ledger import lots
from app.reports import repository
from app.reports.rollups import day_start
from bench import common, growth
from bench.reports import build, load

PROGRAM_ID = growth.PROGRAM_ID
ZONE = "UTC"

Read = Callable[[asyncpg.Connection], Awaitable[int]]


def reads(now: datetime) -> list[tuple[str, Read]]:
    zone = ZoneInfo(ZONE)
    today = now.astimezone(zone).date()

    def day(back: int) -> Read:
        first = today - timedelta(days=back)
        start, end = day_start(first, zone), day_start(first + timedelta(days=1), zone)

        async def read(connection: asyncpg.Connection) -> int:
            return len(await repository.lot_changes_since(connection, PROGRAM_ID, start, end, ZONE))

        return read

    async def program(connection: asyncpg.Connection) -> int:
        return len(await repository.lot_changes_before(connection, PROGRAM_ID, now, ZONE))

    async def everything(connection: asyncpg.Connection) -> int:
        return len(await connection.fetch(lots.ENTRIES))

    return [
        ("a day: yesterday", day(1)),
        ("a day: a year back", day(366)),
        ("the program's history", program),
        ("every program's history", everything),
    ]


async def measure(database: str, rounds: int) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(common.database_url(database)))
    try:
        await connection.execute("SET jit = off")  # as the reports' transactions run
        version = await connection.fetchval("SELECT version_num FROM alembic_version")
        postings = await connection.fetchval("SELECT count(*) FROM posting")
        print(f"database {database} at revision {version}, {postings:,} postings; load {load()}")
        timings: dict[str, list[float]] = {}
        rows: dict[str, int] = {}
        chosen = reads(datetime.now(UTC))
        for _ in range(rounds):
            for name, read in chosen:
                began = time.monotonic()
                rows[name] = await read(connection)
                timings.setdefault(name, []).append(time.monotonic() - began)
        print(f"{'read':26s} {'rows':>10s} {'median s':>9s} {'min s':>7s} {'max s':>7s}")
        for name, seconds in timings.items():
            print(
                f"{name:26s} {rows[name]:10,d} {statistics.median(seconds):9.3f} "
                f"{min(seconds):7.3f} {max(seconds):7.3f}"
            )
        print(f"load after: {load()}")
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", required=True, help="a ledger built by bench.reports (or --build)")
    parser.add_argument(
        "--build", type=int, metavar="POSTINGS", help="build the ledger first (the database is dropped first)"
    )
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.build:
        if not args.database.startswith("points_ledger_bench_"):
            raise SystemExit("--database must start with points_ledger_bench_ to be built (it is dropped)")
        asyncio.run(build(args.database, args.build, 5))
        common.settle(args.database)
    asyncio.run(measure(args.database, args.rounds))


if __name__ == "__main__":
    main()
