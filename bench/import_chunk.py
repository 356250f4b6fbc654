"""Where an import's time goes: one chunk of `--lots` lots through
ledger_import_lots() (or `--writers` chunks at once, each on its own connection
for its own members, as an import's writers run), each round in a transaction
that is rolled back (nothing stays written), timed in two parts: the function's
statement (its inserts, index upkeep and checks) and the deferred checks left for
commit (SET CONSTRAINTS ALL IMMEDIATE: with the per-row triggers, one balanced-entry
check per entry and one per posting). Variants, in turn each round (the order
alternates):

- `row-checks`: the per-row triggers (p_row_checks): each posting's and lot's
  entry and each lot's member checked by a foreign-key trigger, row by row, and
  each entry's balance at commit: what a role that may not set
  session_replication_role gets;
- `set-wise`: the function's own set-wise checks instead (the members locked
  FOR KEY SHARE in one statement, entries balanced and postings' and lots' entries
  checked over the rows the statement wrote), as the default for a role that may
  set session_replication_role (this bench connects as a superuser);
- `no-checks`: session_replication_role = replica around the call and
  p_row_checks: no trigger and no member lock, only what the inserts cost. Not a
  way to import, only the floor.

On one fresh database (`--database`, default points_ledger_bench_import_chunk)
with `--members` members:

    python3 -m bench.import_chunk [--lots 5000] [--members 10000] [--rounds 5] [--writers 1]
        [--variants row-checks,set-wise,no-checks]

Only the local PostgreSQL (127.0.0.1) is used.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

import asyncpg
from uuid_utils.compat import uuid7

from app.db import asyncpg_dsn
from app.imports.repository import IMPORT_LOTS
from app.ledger import accounts
from bench.common import add_members, database_url, fresh_database, settle

NAME = "points_ledger_bench_import_chunk"
VARIANTS = ("row-checks", "set-wise", "no-checks")


async def one_chunk(
    connection: asyncpg.Connection,
    variant: str,
    program: int,
    members: list[int],
    lots: int,
    round_: int,
    start: asyncio.Event,
) -> tuple[float, float]:
    rng = random.Random(round_)
    now = datetime.now(UTC)
    rows = sorted(
        (
            (
                rng.choice(members),
                f"R{round_}-{members[0]}-{n}",
                rng.randint(1, 500),
                now - timedelta(days=rng.randint(1, 700)),
                now + timedelta(days=rng.randint(1, 700)),
            )
            for n in range(lots)
        ),
        key=lambda lot: lot[3],
    )
    arrays = (
        [uuid7() for _ in rows],
        [row[0] for row in rows],
        [row[1] for row in rows],
        [row[2] for row in rows],
        [row[3] for row in rows],
        [row[4] for row in rows],
    )
    transaction = connection.transaction()
    await transaction.start()
    try:
        if variant == "no-checks":
            await connection.execute("SET LOCAL session_replication_role = replica")
        await start.wait()
        started = time.perf_counter()
        row = await connection.fetchrow(
            IMPORT_LOTS, program, "bench", now, None, *arrays, variant != "set-wise"
        )
        assert row is not None
        assert row["row_checks"] == (variant != "set-wise")
        written = time.perf_counter()
        await connection.execute("SET CONSTRAINTS ALL IMMEDIATE")
        checked = time.perf_counter()
    finally:
        await transaction.rollback()
    return written - started, checked - started


async def one_round(
    connections: list[asyncpg.Connection],
    variant: str,
    program: int,
    shares: list[list[int]],
    lots: int,
    round_: int,
) -> tuple[float, float]:
    """The round's chunks at once; (the longest statement, the wall time to the last
    chunk's checks)."""
    start = asyncio.Event()
    tasks = [
        asyncio.create_task(one_chunk(connection, variant, program, share, lots, round_, start))
        for connection, share in zip(connections, shares, strict=True)
    ]
    await asyncio.sleep(0.05)  # every chunk's arrays built and its transaction open
    start.set()
    times = await asyncio.gather(*tasks)
    return max(t[0] for t in times), max(t[1] for t in times)


async def main(
    lots: int, members: int, rounds: int, name: str, writers: int, variants: tuple[str, ...] = VARIANTS
) -> None:
    await fresh_database(name)
    connections = [await asyncpg.connect(asyncpg_dsn(database_url(name))) for _ in range(writers)]
    connection = connections[0]
    try:
        program = await connection.fetchval("SELECT id FROM program WHERE code = 'default'")
        await add_members(connection, program, members)
        await accounts.open_migration_account(connection, program)
        ids = [
            row["id"]
            for row in await connection.fetch(
                "SELECT id FROM member WHERE program_id = $1 ORDER BY id", program
            )
        ]
        # each writer its own members, as the import's writers split them
        shares = [[member for member in ids if member % writers == k] for k in range(writers)]
        await asyncio.to_thread(settle, name)
        times: dict[str, list[tuple[float, float]]] = {variant: [] for variant in variants}
        for round_ in range(rounds):
            order = variants if round_ % 2 == 0 else variants[::-1]
            for variant in order:
                times[variant].append(await one_round(connections, variant, program, shares, lots, round_))
    finally:
        for each in connections:
            await each.close()
    what = f"{writers} chunks at once" if writers > 1 else "one chunk"
    print(f"{what} of {lots:,} lots for {members:,} members, median of {rounds} rounds:")
    for variant, rows in times.items():
        statement = statistics.median(row[0] for row in rows)
        total = statistics.median(row[1] for row in rows)
        print(
            f"  {variant:<10} {writers * lots / total:>8,.0f} lots/s: statement {statement * 1000:,.0f} ms, "
            f"checks at commit {max(total - statement, 0) * 1000:,.0f} ms "
            f"({total / (writers * lots) * 1e6:,.0f} us a lot)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lots", type=int, default=5_000)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--writers", type=int, default=1, help="chunks written at once (default 1)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="which to time, comma-separated")
    parser.add_argument("--database", default=NAME, help="the database to use (dropped and created again)")
    args = parser.parse_args()
    chosen = tuple(args.variants.split(","))
    if not set(chosen) <= set(VARIANTS):
        parser.error(f"--variants: some of {', '.join(VARIANTS)}")
    asyncio.run(main(args.lots, args.members, args.rounds, args.database, args.writers, chosen))
