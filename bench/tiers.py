"""The `evaluate-tiers` job over 100,000 members: how fast, and how much memory.

In one run, on one fresh database:
- setup (SQL, printed with its time): `--members` members; each gets 0 to 40
  paid orders spread over the last two years (recorded as orders that earned no
  points, so no ledger entries are needed and `verify` still holds), and 40% of
  them a tier reached at a random time in those two years, so that many terms
  have ended and wait to be judged; rules with three tiers, a rolling 12-month
  window, 12-month terms, 30 days of grace and one_down;
- each round restores that tier state and runs the job (app.tiers.service.
  evaluate_tiers, what `points-ledger jobs run evaluate-tiers` and `POST
  /v1/jobs/evaluate-tiers` call) as of now: members per second, with what it
  changed; then runs it again for the same instant (nothing left to change);
- for comparison, the job's own activity query alone over every member (one
  window each, same batches): the ratio says what deciding and writing cost
  beyond reading;
- the peak Python memory of one run (tracemalloc), and `verify`.

    python3 -m bench.tiers [--members 100000] [--rounds 3]

Only the local PostgreSQL (127.0.0.1) is used.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import tracemalloc
from datetime import UTC, datetime
from typing import Any

import asyncpg

from app.auth.service import Authenticator
from app.clock import SystemClock
from app.config import Environment, Settings
from app.context import AppContext
from app.db import Database, asyncpg_dsn
from app.principal import Principal
from app.rules.tiers import window_start
from app.rulesets import service as rulesets
from app.rulesets.cache import RulesCache
from app.tiers import repository as tiers_repository
from app.tiers.service import BATCH, evaluate_tiers
from bench import common

DATABASE = "points_ledger_bench_tiers"
PROGRAM = Principal(program_id=1, program_code="default", key_id=None, scopes=frozenset({"admin"}))

RULES: dict[str, Any] = {
    "currency": "EUR",
    "earn": {"base": {"points": 1, "per": "1.00"}},
    "tiers": [
        {"code": "silver", "name": "Silver", "rank": 1, "qualify": {"orders": 5}, "retain": {"orders": 3}},
        {
            "code": "gold",
            "name": "Gold",
            "rank": 2,
            "qualify": {"orders": 20, "spend": "200.00"},
            "retain": {"orders": 12},
        },
        {
            "code": "black",
            "name": "Black",
            "rank": 3,
            "qualify": {"orders": 35, "spend": "500.00"},
            "retain": {"orders": 25},
        },
    ],
    "tier_policy": {
        "window": "rolling_12_months",
        "term_months": 12,
        "downgrade": "one_down",
        "grace_days": 30,
    },
}

ORDERS = """
INSERT INTO paid_order (program_id, order_id, member_id, idempotency_key, request_fingerprint,
                        rules_version, paid_at, recorded_at, local_day, currency, total, channel, lines,
                        facts, points, segments)
SELECT 1, 'o-' || m.id || '-' || g, m.id, 'k-' || m.id || '-' || g, 'bench', $1, x.paid_at, x.paid_at,
       (x.paid_at AT TIME ZONE 'UTC')::date, 'EUR',
       round((5 + (hashtext(m.id || 't' || g) & 1023) / 1024.0 * 95)::numeric, 2), 'web',
       '[]'::jsonb, '{}'::jsonb, 0, '[]'::jsonb
  FROM member m
 CROSS JOIN LATERAL generate_series(1, (hashtext(m.external_id) & 1023) % 41) AS g
 CROSS JOIN LATERAL (
       SELECT $2::timestamptz - (hashtext(m.id || '-' || g) & 1048575) / 1048576.0 * interval '730 days'
              AS paid_at
       ) x
 WHERE m.program_id = 1
"""

SEED_TIERS = """
CREATE TABLE bench_tier_seed AS
SELECT m.id AS member_id, 1::bigint AS program_id,
       (ARRAY['silver', 'gold', 'black'])[1 + (hashtext(m.external_id || 't') & 1023) % 3] AS tier_code,
       s.since, s.since + interval '12 months' AS term_ends_at
  FROM member m
 CROSS JOIN LATERAL (
       SELECT $1::timestamptz - (hashtext(m.id || 's') & 1048575) / 1048576.0 * interval '730 days' AS since
       ) s
 WHERE m.program_id = 1 AND (hashtext(m.external_id) & 1023) % 10 < 4
"""

RESTORE_TIERS = """
DELETE FROM member_tier;
INSERT INTO member_tier (member_id, program_id, tier_code, since, term_ends_at, updated_at)
SELECT member_id, program_id, tier_code, since, term_ends_at, since FROM bench_tier_seed;
"""


async def setup(context: AppContext, members: int, now: datetime) -> int:
    began = time.perf_counter()
    plain = await asyncpg.connect(asyncpg_dsn(context.db.url))
    try:
        await common.add_members(plain, 1, members)
    finally:
        await plain.close()
    version = await rulesets.create(context, PROGRAM, RULES)
    await rulesets.activate(context, PROGRAM, version.version)
    async with context.db.pool.acquire() as connection:
        await connection.execute(ORDERS, version.version, now)
        await connection.execute(SEED_TIERS, now)
        await connection.execute("VACUUM (ANALYZE)")
        orders = await connection.fetchval("SELECT count(*) FROM paid_order")
        tiered = await connection.fetchval("SELECT count(*) FROM bench_tier_seed")
    print(
        f"setup: {members:,} members, {orders:,} orders, {tiered:,} with a tier, "
        f"in {time.perf_counter() - began:.1f} s",
        flush=True,
    )
    return version.version


async def read_activity_only(context: AppContext, now: datetime) -> float:
    """Seconds to read every member's activity in the window ending now, in the job's batches."""
    rules = (await rulesets.active(context, PROGRAM)).document
    start = window_start(rules, now)
    began = time.perf_counter()
    async with context.db.pool.acquire() as connection:
        after = 0
        while True:
            ids = [
                row["id"]
                for row in await connection.fetch(
                    "SELECT id FROM member WHERE program_id = 1 AND id > $1 ORDER BY id LIMIT $2",
                    after,
                    BATCH,
                )
            ]
            if not ids:
                break
            await tiers_repository.activity(connection, 1, [(member, start, now) for member in ids])
            after = ids[-1]
    return time.perf_counter() - began


async def run(members: int, rounds: int) -> None:
    await common.fresh_database(DATABASE)
    url = common.database_url(DATABASE)
    # Setup writes millions of rows in one statement: no 15-second cap on it.
    settings = Settings(
        env=Environment.test, database_url=url, db_pool_size=8, db_statement_timeout_ms=3_600_000
    )
    db = Database(url, settings)
    await db.connect()
    context = AppContext(
        settings=settings,
        db=db,
        clock=SystemClock(),
        auth=Authenticator(db.pool, admin_key=None, cache_seconds=0),
        rules=RulesCache(),
    )
    now = datetime.now(UTC).replace(microsecond=0)
    evaluated: list[float] = []
    again: list[float] = []
    read: list[float] = []
    try:
        await setup(context, members, now)
        for number in range(rounds):
            async with db.pool.acquire() as connection:
                await connection.execute(RESTORE_TIERS)
            began = time.perf_counter()
            done = await evaluate_tiers(db, program_ids=[1], as_of=now, now=now)
            evaluated.append(time.perf_counter() - began)
            began = time.perf_counter()
            second = await evaluate_tiers(db, program_ids=[1], as_of=now, now=now)
            again.append(time.perf_counter() - began)
            read.append(await read_activity_only(context, now))
            print(
                f"round {number + 1}: {done.members:,} members in {evaluated[-1]:.2f} s "
                f"({done.upgraded:,} upgraded, {done.retained:,} retained, {done.downgraded:,} downgraded); "
                f"again: {again[-1]:.2f} s, {second.changes} changes; activity read only: {read[-1]:.2f} s",
                flush=True,
            )
        async with db.pool.acquire() as connection:
            await connection.execute(RESTORE_TIERS)
        tracemalloc.start()
        await evaluate_tiers(db, program_ids=[1], as_of=now, now=now)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        await db.dispose()

    seconds, rerun, reading = statistics.median(evaluated), statistics.median(again), statistics.median(read)
    print(f"\n{members:,} members, {rounds} rounds (medians)")
    print(f"evaluate-tiers: {seconds:.2f} s, {members / seconds:,.0f} members/s")
    print(f"evaluate-tiers again, same instant: {rerun:.2f} s, {members / rerun:,.0f} members/s")
    print(f"activity query alone: {reading:.2f} s, {members / reading:,.0f} members/s")
    print(f"ratio evaluate/activity-only throughput: {reading / seconds:.2f}")
    print(f"peak Python memory during one run: {peak / 2**20:.1f} MiB")
    print("verify after the run:", "ledger is sound" if await common.sound(DATABASE) else "MISMATCHES")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.members, args.rounds))


if __name__ == "__main__":
    main()
