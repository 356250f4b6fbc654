"""`expire` and `evaluate-tiers` over 1,000,000 members: a run with nothing due and a
run with 1% due, against the same jobs reading every member as they did before.

In one run, on one fresh database (points_ledger_bench_due):
- setup, in bulk SQL (printed with its time): `--members` members
  (bench.common.add_members); each one lot (an award, written set-wise as
  ledger_post() writes it, as bench.partners loads entries) expiring in one of 100
  two-hour slots after the run's base instant (slot = member id % 100 + 1); the
  members of the first 40 slots a tier (silver, gold or black; terms ending 30 to
  365 days after the base instant) and 3 paid orders in the last 300 days (orders
  that earned nothing: no entries, as in bench.tiers), enough to keep any tier at
  its term's end; rules with three tiers, 12-month terms and a rolling window;
  VACUUM (ANALYZE) and CHECKPOINT.
- evaluate-tiers' first run, with no watermark, reads every member as the job always
  did (nothing is due then): the "before" of a run with nothing due.
- `--rounds` rounds at instants two hours apart, each job run as the worker runs it
  (as of now, the clock at that instant): evaluate-tiers with 1% due (the terms of
  one slot's members end a minute before), the run after it (which reads the
  members the first one changed, once), and one with nothing due; expire with 1%
  due (one slot's lots), and with nothing due.
- evaluate-tiers reading every member (its watermark deleted) with 1% due.
- the rules switched to an inactivity policy (12 months): expire's first run
  (every member with points), then `--rounds` rounds two minutes apart: 1% due (one
  slot of members who never ordered, their enrolment moved back to twelve months
  and a minute before), and nothing due.
- the expire job as it was (ledger_expire() of revision 20261128_0001, installed
  under another name, with its loop over every member with lots; the new lots
  index dropped): under inactivity with nothing due and with 1% due; with dated
  lots only, nothing due at each round's instant and 1% due.
- medians, ratios of the old to the new, and `verify`.

    python3 -m bench.due [--members 1000000] [--rounds 5]

Only the local PostgreSQL (127.0.0.1) is used.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from uuid_utils.compat import uuid7

from app.auth.service import Authenticator
from app.clock import SystemClock
from app.config import Environment, Settings
from app.context import AppContext
from app.db import Connection, Database, asyncpg_dsn
from app.ledger import expiry
from app.principal import Principal
from app.rulesets import service as rulesets
from app.rulesets.cache import RulesCache
from app.sql import frozen
from app.tiers.service import evaluate_tiers
from bench import common

DATABASE = "points_ledger_bench_due"
PROGRAM = Principal(program_id=1, program_code="default", key_id=None, scopes=frozenset({"admin"}))
MEMBERS_PER_STATEMENT = 50_000
SLOT = timedelta(hours=2)
TIERED_SLOTS = 40  # members of slots 1..40 hold a tier: 40%

RULES: dict[str, Any] = {
    "currency": "EUR",
    "earn": {"base": {"points": 1, "per": "1.00"}},
    "tiers": [
        {"code": "silver", "name": "Silver", "rank": 1, "qualify": {"orders": 5}, "retain": {"orders": 1}},
        {"code": "gold", "name": "Gold", "rank": 2, "qualify": {"orders": 20}, "retain": {"orders": 2}},
        {"code": "black", "name": "Black", "rank": 3, "qualify": {"orders": 35}, "retain": {"orders": 3}},
    ],
    "tier_policy": {"window": "rolling_12_months", "term_months": 12, "grace_days": 30},
}

# One award per member, written set-wise, for members $3..$4: what ledger_post()
# writes for it (the entry, the member's posting with the balances after it, the
# issuance posting, the balance, the lot), without the idempotency record (verify
# holds without it; bench.partners loads the same way). Slot s (1..100, from the
# member id) expires half an hour before base + s slots. Entry ids are UUIDv7 like
# the service's (PostgreSQL 15 has no uuidv7()): timestamp first, version 7.
CREATE_LOTS = """
WITH award AS MATERIALIZED (
    SELECT m.id AS member_id, a.id AS account_id, (10 + m.id % 90)::bigint AS points,
           $2::timestamptz + (m.id % 100 + 1) * interval '2 hours' - interval '30 minutes' AS expires_at,
           encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) PLACING
               substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
               FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid AS entry_id
      FROM member m
      JOIN account a ON a.program_id = m.program_id AND a.member_id = m.id AND a.kind = 'available'
     WHERE m.program_id = 1 AND m.id BETWEEN $3 AND $4
), entry AS (
    INSERT INTO journal_entry (id, program_id, kind, occurred_at, recorded_at, idempotency_key,
                               request_fingerprint, reason, expires_at)
    SELECT entry_id, 1, 'award', now(), now(), 'bench-due:' || member_id, 'bench:due:setup',
           'bench: a lot for the expire job', expires_at
      FROM award ORDER BY member_id
), member_leg AS (
    INSERT INTO posting (program_id, entry_id, account_id, member_id, amount, available_after, pending_after,
                         held_after, recorded_at)
    SELECT 1, entry_id, account_id, member_id, points, points, 0, 0, now() FROM award ORDER BY member_id
), issuance_leg AS (
    INSERT INTO posting (program_id, entry_id, account_id, amount, recorded_at)
    SELECT 1, entry_id, $1, -points, now() FROM award ORDER BY member_id
), balance AS (
    UPDATE member_balance b
       SET available = b.available + a.points, version = b.version + 1, updated_at = now()
      FROM award a WHERE b.program_id = 1 AND b.member_id = a.member_id
)
INSERT INTO point_lot (program_id, member_id, entry_id, points, remaining, expires_at)
SELECT 1, member_id, entry_id, points, points, expires_at FROM award ORDER BY member_id
"""

ISSUANCE = """
SELECT id FROM account WHERE program_id = 1 AND member_id IS NULL AND partner_id IS NULL AND kind = 'issuance'
"""

TIERS = """
INSERT INTO member_tier (member_id, program_id, tier_code, since, term_ends_at, rules_version, updated_at)
SELECT m.id, 1, (ARRAY['silver', 'gold', 'black'])[1 + (hashtext(m.external_id) & 1023) % 3],
       e.ends - interval '12 months', e.ends, $2, $1
  FROM member m
 CROSS JOIN LATERAL (
       SELECT $1::timestamptz + interval '30 days'
              + (hashtext(m.external_id || 'e') & 1048575) / 1048576.0 * interval '335 days' AS ends
       ) e
 WHERE m.program_id = 1 AND m.id % 100 < $3
"""

ORDERS = """
INSERT INTO paid_order (program_id, order_id, member_id, idempotency_key, request_fingerprint,
                        rules_version, paid_at, recorded_at, local_day, currency, total, channel, lines,
                        facts, points, segments)
SELECT 1, 'o-' || m.id || '-' || g, m.id, 'k-' || m.id || '-' || g, 'bench', $2, x.paid_at, x.paid_at,
       (x.paid_at AT TIME ZONE 'UTC')::date, 'EUR',
       round((5 + (hashtext(m.id || 't' || g) & 1023) / 1024.0 * 95)::numeric, 2), 'web',
       '[]'::jsonb, '{}'::jsonb, 0, '[]'::jsonb
  FROM member m
 CROSS JOIN generate_series(1, 3) AS g
 CROSS JOIN LATERAL (
       SELECT $1::timestamptz - interval '1 day'
              - (hashtext(m.id || '-' || g) & 1048575) / 1048576.0 * interval '300 days' AS paid_at
       ) x
 WHERE m.program_id = 1 AND m.id % 100 < $3
"""

# The terms of one slot's members end a minute before the instant the job runs as of.
MAKE_TERMS_DUE = """
UPDATE member_tier SET term_ends_at = $1::timestamptz - interval '1 minute' WHERE member_id % 100 = $2 - 1
"""

OLD_EXPIRE = """
SELECT last_member_id, candidates, members, lots, points
  FROM bench_ledger_expire_before(p_program_id => $1, p_after_member_id => $2, p_limit => $3, p_as_of => $4,
                                  p_recorded_at => $5, p_rules_version => $6, p_inactivity_months => $7,
                                  p_timezone => 'UTC', p_entry_ids => $8)
"""


def old_expire_function() -> str:
    """ledger_expire() as revision 20261128_0001 installed it, under another name."""
    text = (frozen("20261128_0001") / "functions" / "ledger_expire.sql").read_text()
    return text.replace("FUNCTION ledger_expire(", "FUNCTION bench_ledger_expire_before(")


async def create_lots(url: str, members: int, base: datetime) -> int:
    """The members' lots, a range of members per transaction, on one connection."""
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        issuance = await connection.fetchval(ISSUANCE)
        for first in range(1, members + 1, MEMBERS_PER_STATEMENT):
            last = min(members, first + MEMBERS_PER_STATEMENT - 1)
            await connection.execute(CREATE_LOTS, issuance, base, first, last)
        return int(await connection.fetchval("SELECT count(*) FROM point_lot"))
    finally:
        await connection.close()


async def setup(context: AppContext, members: int, base: datetime) -> int:
    """The rules version the tiers were given."""
    began = time.perf_counter()
    url = context.db.url
    plain = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await common.add_members(plain, PROGRAM.program_id, members)
        await plain.execute(old_expire_function())
    finally:
        await plain.close()
    lots = await create_lots(url, members, base)
    version = (await rulesets.create(context, PROGRAM, RULES)).version
    await rulesets.activate(context, PROGRAM, version)
    async with context.db.pool.acquire() as connection:
        await connection.execute(TIERS, base, version, TIERED_SLOTS)
        await connection.execute(ORDERS, base, version, TIERED_SLOTS)
        await connection.execute("VACUUM (ANALYZE)")
        await connection.execute("CHECKPOINT")
        tiers = await connection.fetchval("SELECT count(*) FROM member_tier")
        orders = await connection.fetchval("SELECT count(*) FROM paid_order")
    print(
        f"setup: {members:,} members, {lots:,} lots (one award each), {tiers:,} tiers, "
        f"{orders:,} orders, in {time.perf_counter() - began:.0f} s",
        flush=True,
    )
    return version


@dataclass(frozen=True, slots=True)
class Timed:
    seconds: float
    read: int  # members the run looked at
    changed: int  # tiers changed, or members whose points expired


async def tiers_run(db: Database, instant: datetime) -> Timed:
    read: list[int] = []
    began = time.perf_counter()
    done = await evaluate_tiers(
        db, program_ids=[PROGRAM.program_id], as_of=instant, now=instant, on_total=read.append
    )
    return Timed(time.perf_counter() - began, read[0], done.changes)


async def expire_run(db: Database, instant: datetime) -> Timed:
    read: list[int] = []
    began = time.perf_counter()
    done = await expiry.expire(
        db, program_ids=[PROGRAM.program_id], as_of=instant, now=instant, on_total=read.append
    )
    return Timed(time.perf_counter() - began, read[0], done.members)


async def old_expire_run(db: Database, instant: datetime, rules_version: int, months: int | None) -> Timed:
    """The expire job as it was: batches of 200 members with lots, after the last
    member id, each looked for by ledger_expire() among all the program's lots."""
    after = read = members = 0
    began = time.perf_counter()
    while True:
        row = await db.call(_old_batch(after, instant, rules_version, months))
        if row["last_member_id"] is None:
            break
        after = row["last_member_id"]
        read += row["candidates"]
        members += row["members"]
    return Timed(time.perf_counter() - began, read, members)


def _old_batch(
    after: int, instant: datetime, rules_version: int, months: int | None
) -> Callable[[Connection], Awaitable[Any]]:
    async def work(connection: Connection) -> Any:
        ids = [uuid7() for _ in range(expiry.BATCH)]
        return await connection.fetchrow(
            OLD_EXPIRE, PROGRAM.program_id, after, expiry.BATCH, instant, instant, rules_version, months, ids
        )

    return work


NAMES = (
    "evaluate-tiers, nothing due",
    "evaluate-tiers, 1% due",
    "evaluate-tiers, the run after",
    "expire, nothing due",
    "expire, 1% due",
    "expire as before, nothing due",
    "expire (inactivity), nothing due",
    "expire (inactivity), 1% due",
)

# One slot's members (none of them has ordered) enrolled twelve months and a minute
# before the instant: inactive as of it.
MAKE_INACTIVE = """
UPDATE member SET enrolled_at = $1::timestamptz - interval '12 months 1 minute'
 WHERE program_id = 1 AND id % 100 = $2 - 1
"""


async def make_inactive(db: Database, instant: datetime, slot: int) -> None:
    async with db.pool.acquire() as connection:
        await connection.execute(MAKE_INACTIVE, instant, slot)


def line(name: str, timed: Timed, what: str) -> str:
    return f"  {name}: {timed.seconds:.3f} s, {timed.read:,} members looked at, {timed.changed:,} {what}"


def median(values: list[Timed]) -> float:
    return statistics.median(timed.seconds for timed in values)


def spread(values: list[Timed]) -> str:
    seconds = [timed.seconds for timed in values]
    return f"{statistics.median(seconds):.3f} s (rounds {', '.join(f'{s:.3f}' for s in seconds)})"


async def run(members: int, rounds: int) -> None:
    if not 1 <= rounds < TIERED_SLOTS:
        raise SystemExit(f"--rounds: 1 to {TIERED_SLOTS - 1}")
    await common.fresh_database(DATABASE)
    url = common.database_url(DATABASE)
    # Setup writes millions of rows in one statement: no 15-second cap on it.
    settings = Settings(
        env=Environment.test, database_url=url, db_pool_size=4, db_statement_timeout_ms=3_600_000
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
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    results: dict[str, list[Timed]] = {name: [] for name in NAMES}
    once: dict[str, Timed] = {}

    def record(name: str, timed: Timed, what: str, rounds: bool = True) -> None:
        if rounds:
            results[name].append(timed)
        else:
            once[name] = timed
        print(line(name, timed, what), flush=True)

    try:
        version = await setup(context, members, base)
        record(
            "evaluate-tiers, first run (no watermark): every member",
            await tiers_run(db, base),
            "changes",
            False,
        )
        for number in range(1, rounds + 1):
            due_at = base + number * SLOT
            nothing_at = due_at + timedelta(hours=1)
            print(
                f"round {number}: 1% due as of {due_at.isoformat()}, nothing as of {nothing_at.isoformat()}"
            )
            async with db.pool.acquire() as connection:
                await connection.execute(MAKE_TERMS_DUE, due_at, number)
            record("evaluate-tiers, 1% due", await tiers_run(db, due_at), "changes")
            record(
                "evaluate-tiers, the run after",
                await tiers_run(db, due_at + timedelta(minutes=30)),
                "changes",
            )
            record("evaluate-tiers, nothing due", await tiers_run(db, nothing_at), "changes")
            record("expire, 1% due", await expire_run(db, due_at), "members expired")
            record("expire, nothing due", await expire_run(db, nothing_at), "members expired")

        later = base + (rounds + 1) * SLOT  # slot rounds + 1's terms and lots are due then
        async with db.pool.acquire() as connection:
            await connection.execute("DELETE FROM job_watermark WHERE job = 'evaluate-tiers'")
            await connection.execute(MAKE_TERMS_DUE, later, rounds + 1)
        record(
            "evaluate-tiers, every member (watermark deleted), 1% due",
            await tiers_run(db, later),
            "changes",
            False,
        )

        # Under an inactivity policy of 12 months, between the last round's instant and
        # the next slot's lots: members of slots 41... (no orders) are made inactive
        # one slot at a time by moving their enrolment back.
        inactive = {**RULES, "expiry": {"policy": "inactivity", "months": 12}}
        inactive_version = (await rulesets.create(context, PROGRAM, inactive)).version
        await rulesets.activate(context, PROGRAM, inactive_version)
        step = timedelta(minutes=2)
        start = base + rounds * SLOT + timedelta(hours=1) + step
        print(f"inactivity, 12 months, from {start.isoformat()}")
        record(
            "expire (inactivity), first run (no watermark): every member with points",
            await expire_run(db, start),
            "members expired",
            False,
        )
        for number in range(1, rounds + 1):
            due_at = start + (2 * number - 1) * step
            await make_inactive(db, due_at, TIERED_SLOTS + number)
            record("expire (inactivity), 1% due", await expire_run(db, due_at), "members expired")
            record("expire (inactivity), nothing due", await expire_run(db, due_at + step), "members expired")

        # The expire job as it was, on the schema as it was: without the lots' due index.
        async with db.pool.acquire() as connection:
            await connection.execute("DROP INDEX ix_point_lot_program_due")
        old_inactive_at = start + (2 * rounds + 1) * step
        record(
            "expire (inactivity) as before, nothing due",
            await old_expire_run(db, old_inactive_at, inactive_version, 12),
            "members expired",
            False,
        )
        await make_inactive(db, old_inactive_at + step, TIERED_SLOTS + rounds + 1)
        record(
            "expire (inactivity) as before, 1% due",
            await old_expire_run(db, old_inactive_at + step, inactive_version, 12),
            "members expired",
            False,
        )
        for number in range(1, rounds + 1):
            # As of each round's instant with nothing due, lots dated as they are.
            nothing_at = base + number * SLOT + timedelta(hours=1)
            record(
                "expire as before, nothing due",
                await old_expire_run(db, nothing_at, version, None),
                "members expired",
            )
        record(
            "expire as before, 1% due",
            await old_expire_run(db, later, version, None),
            "members expired",
            False,
        )
    finally:
        await db.dispose()

    print(f"\n{members:,} members, {rounds} rounds (medians)")
    for name in NAMES:
        print(f"{name}: {spread(results[name])}")
    for name, timed in once.items():
        print(f"{name}: {timed.seconds:.3f} s (one run)")
    ratios = [
        (
            "evaluate-tiers, nothing due",
            once["evaluate-tiers, first run (no watermark): every member"].seconds,
            "evaluate-tiers, nothing due",
        ),
        (
            "evaluate-tiers, 1% due",
            once["evaluate-tiers, every member (watermark deleted), 1% due"].seconds,
            "evaluate-tiers, 1% due",
        ),
        ("expire, nothing due", median(results["expire as before, nothing due"]), "expire, nothing due"),
        ("expire, 1% due", once["expire as before, 1% due"].seconds, "expire, 1% due"),
        (
            "expire (inactivity), nothing due",
            once["expire (inactivity) as before, nothing due"].seconds,
            "expire (inactivity), nothing due",
        ),
        (
            "expire (inactivity), 1% due",
            once["expire (inactivity) as before, 1% due"].seconds,
            "expire (inactivity), 1% due",
        ),
    ]
    for label, before, now_name in ratios:
        print(f"before / now, {label}: {before / median(results[now_name]):,.1f}x")
    began = time.perf_counter()
    sound = await common.sound(DATABASE)
    print(
        "verify:",
        "ledger is sound" if sound else "MISMATCHES",
        f"({time.perf_counter() - began:.0f} s)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(run(args.members, args.rounds))


if __name__ == "__main__":
    main()
