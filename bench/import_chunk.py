"""Where an import's time goes: one chunk of `--lots` lots through
ledger_import_lots(), each round in a transaction that is rolled back (nothing
stays written), timed in two parts: the function's statement (its inserts, index
upkeep and foreign-key checks) and the deferred balanced-entry checks left for
commit (SET CONSTRAINTS ALL IMMEDIATE: one per entry and one per posting).
Variants, in turn each round:

- `now`: the schema as migrated;
- `no-fk`: `now` with session_replication_role = replica, so no foreign-key check
  and no trigger runs: not a way to import (it needs a superuser and skips the
  checks), only what those checks cost.

On one fresh database (`--database`, default points_ledger_bench_import_chunk)
with `--members` members:

    python3 -m bench.import_chunk [--lots 5000] [--members 10000] [--rounds 5]

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
from bench.common import add_members, database_url, fresh_database, settle

NAME = "points_ledger_bench_import_chunk"
VARIANTS = ("now", "no-fk")


async def one_chunk(
    connection: asyncpg.Connection, variant: str, program: int, members: list[int], lots: int, round_: int
) -> tuple[float, float]:
    rng = random.Random(round_)
    now = datetime.now(UTC)
    rows = sorted(
        (
            (
                rng.choice(members),
                f"R{round_}-{n}",
                rng.randint(1, 500),
                now - timedelta(days=rng.randint(1, 700)),
                now + timedelta(days=rng.randint(1, 700)),
            )
            for n in range(lots)
        ),
        key=lambda lot: lot[3],
    )
    transaction = connection.transaction()
    await transaction.start()
    try:
        if variant == "no-fk":
            await connection.execute("SET LOCAL session_replication_role = replica")
        started = time.perf_counter()
        await connection.fetchrow(
            IMPORT_LOTS,
            program,
            "bench",
            now,
            None,
            [uuid7() for _ in rows],
            [row[0] for row in rows],
            [row[1] for row in rows],
            [row[2] for row in rows],
            [row[3] for row in rows],
            [row[4] for row in rows],
        )
        written = time.perf_counter()
        await connection.execute("SET CONSTRAINTS ALL IMMEDIATE")
        checked = time.perf_counter()
    finally:
        await transaction.rollback()
    return written - started, checked - written


async def main(lots: int, members: int, rounds: int, name: str) -> None:
    await fresh_database(name)
    connection = await asyncpg.connect(asyncpg_dsn(database_url(name)))
    try:
        program = await connection.fetchval("SELECT id FROM program WHERE code = 'default'")
        await add_members(connection, program, members)
        await connection.execute(
            "INSERT INTO account (program_id, kind) VALUES ($1, 'migration')"
            " ON CONFLICT (program_id, kind, partner_id) WHERE member_id IS NULL DO NOTHING",
            program,
        )
        ids = [
            row["id"]
            for row in await connection.fetch("SELECT id FROM member WHERE program_id = $1", program)
        ]
        await asyncio.to_thread(settle, name)
        times: dict[str, list[tuple[float, float]]] = {variant: [] for variant in VARIANTS}
        for round_ in range(rounds):
            order = VARIANTS if round_ % 2 == 0 else VARIANTS[::-1]
            for variant in order:
                times[variant].append(await one_chunk(connection, variant, program, ids, lots, round_))
    finally:
        await connection.close()
    print(f"one chunk of {lots:,} lots for {members:,} members, median of {rounds} rounds:")
    for variant, rows in times.items():
        statement = statistics.median(row[0] for row in rows)
        deferred = statistics.median(row[1] for row in rows)
        total = statistics.median(row[0] + row[1] for row in rows)
        print(
            f"  {variant:<10} {lots / total:>8,.0f} lots/s: statement {statement * 1000:,.0f} ms, "
            f"checks at commit {deferred * 1000:,.0f} ms ({total / lots * 1e6:,.0f} us a lot)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lots", type=int, default=5_000)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database", default=NAME, help="the database to use (dropped and created again)")
    args = parser.parse_args()
    asyncio.run(main(args.lots, args.members, args.rounds, args.database))
