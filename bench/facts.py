"""What the segment lookup costs an order's facts read, in PostgreSQL.

One fresh database (`--database`): `--members` members of the default program, and
`--snapshots` daily RFM snapshots before now (every member in each, as
snapshot-segments keeps them), the way a program that snapshots every day looks
after that many days. Then, on one connection, the facts query every order makes
(app/orders/repository.py) in its two forms, taking turns round by round: with the
segment lookup (rules that name `when: {segment}`, or rules this process does not
know yet) and without it (every other program). Each round runs `--queries`
queries for random members; it prints the medians over the rounds of the
microseconds per query, wall clock and the backend's CPU (from /proc).

    uv run python -m bench.facts                        # a few minutes
    uv run python -m bench.facts --snapshots 0          # a program that never snapshots
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from datetime import UTC, date, datetime, timedelta

import asyncpg

from app.db import asyncpg_dsn
from app.orders.repository import facts_query
from bench import common

DATABASE = "points_ledger_bench_facts"

SNAPSHOTS = """
WITH s AS (
    INSERT INTO segment_snapshot (program_id, as_of, window_days, chain_sequence, members, taken_at)
    SELECT 1, $1::timestamptz - g * interval '1 day', 365, 0, $2, $1::timestamptz - g * interval '1 day'
      FROM generate_series(1, $3) AS g
    RETURNING as_of
)
INSERT INTO member_segment (program_id, as_of, member_id, segment, recency_days, frequency, monetary, r, f, m)
SELECT 1, s.as_of, m.id,
       (ARRAY['core', 'potential', 'regular', 'basic', 'lapsed'])
           [1 + (m.id + extract(doy FROM s.as_of)::int) % 5],
       m.id % 365, m.id % 7, (m.id % 500)::numeric, 1 + m.id % 5, 1 + m.id % 5, 1 + m.id % 5
  FROM s CROSS JOIN member m
 WHERE m.program_id = 1
"""


async def prepare(members: int, snapshots: int) -> None:
    await common.fresh_database(DATABASE)
    connection = await asyncpg.connect(asyncpg_dsn(common.database_url(DATABASE)))
    try:
        await common.add_members(connection, 1, members)
        if snapshots:
            await connection.execute(SNAPSHOTS, datetime.now(UTC), members, snapshots)
        await connection.execute("VACUUM (ANALYZE)")
    finally:
        await connection.close()


async def measure(members: int, queries: int, rounds: int) -> dict[bool, list[tuple[float, float]]]:
    connection = await asyncpg.connect(asyncpg_dsn(common.database_url(DATABASE)))
    found: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    try:
        pid = await connection.fetchval("SELECT pg_backend_pid()")
        paid_at = datetime.now(UTC) - timedelta(minutes=1)
        day = paid_at.date()
        first, last = day - timedelta(days=1), day + timedelta(days=1)

        async def run(segment: bool, count: int) -> tuple[float, float]:
            query = facts_query(partner=False, referrals=False, segment=segment)
            tail: list[datetime] = [paid_at] if segment else []
            cpu, started = common.cpu_seconds(pid), time.perf_counter()
            for _ in range(count):
                member = f"m-{random.randint(1, members)}"
                row = await connection.fetchrow(query, 1, member, first, last, None, None, None, None, *tail)
                assert row is not None
            elapsed = time.perf_counter() - started
            return elapsed * 1e6 / count, (common.cpu_seconds(pid) - cpu) * 1e6 / count

        for segment in (True, False):  # warm up: plans, caches
            await run(segment, max(100, queries // 10))
        for number in range(rounds):
            for segment in (True, False) if number % 2 == 0 else (False, True):
                found[segment].append(await run(segment, queries))
    finally:
        await connection.close()
    return found


def main() -> None:
    global DATABASE
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", default=DATABASE, help=f"dropped and made anew (default {DATABASE})")
    parser.add_argument("--members", type=int, default=2_000)
    parser.add_argument("--snapshots", type=int, default=90, help="daily snapshots before now")
    parser.add_argument("--queries", type=int, default=5_000, help="facts reads per round and form")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    DATABASE = args.database
    asyncio.run(prepare(args.members, args.snapshots))
    found = asyncio.run(measure(args.members, args.queries, args.rounds))
    print(
        f"{args.members} members, {args.snapshots} daily snapshots, {args.rounds} rounds of "
        f"{args.queries} facts reads per form, one connection ({date.today()})"
    )
    print(f"{'facts read':28s} {'us/query (median)':>18s} {'backend CPU us/query':>21s}")
    medians = {}
    for segment, label in ((True, "with the segment lookup"), (False, "without it")):
        wall = statistics.median(w for w, _ in found[segment])
        cpu = statistics.median(c for _, c in found[segment])
        medians[segment] = (wall, cpu)
        print(f"{label:28s} {wall:18.1f} {cpu:21.1f}")
    print(
        f"without / with: wall {medians[False][0] / medians[True][0]:.2f}, "
        f"backend CPU {medians[False][1] / medians[True][1]:.2f}"
    )


if __name__ == "__main__":
    main()
