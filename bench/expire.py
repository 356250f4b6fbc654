"""The `expire` job over 1,000,000 lots of 100,000 members: how fast, how much
memory, and whether it stalls earning.

In one run, on one fresh database:
- setup: every member gets `--lots-per-member` lots through ledger_post() (one
  award each, expiring 1..N days before the job's instant), and every tenth
  member one more lot that expires a year after it; server-side loops over a few
  connections, then VACUUM (ANALYZE), as autovacuum would have left the tables
  (this server runs without it). Its time is printed.
- a separate process keeps `--awarders` concurrent awards going through the
  service's own award path (app.ledger.service.award) on random members; their
  lots expire after the job's instant. It keeps each award's start and latency
  (time.monotonic(), which both processes share) and samples pg_stat_activity
  every 50 ms for awards and the job waiting on a row lock.
- awards alone for `--seconds`, then `expire` as of a fixed instant after every
  setup lot's expiry while the awards go on, then awards alone again. Printed:
  lots and members per second; the job's batch times (a batch keeps its members
  locked until it commits); awards per second during the job against without it
  (before and after pooled, and each) and their ratio; award latency p99 and max
  in both; how often, and how many, awards were waiting on a row lock;
- the job's peak Python memory (tracemalloc, in the job's own process, which
  does nothing else meanwhile), that process's peak RSS during the job and its
  max RSS (getrusage);
- a second run for the same instant, which must expire nothing;
- `verify` over everything the round wrote.

    python3 -m bench.expire [--members 100000] [--lots-per-member 10] [--rounds 1]

With `--rounds` above 1 every round starts from a fresh database and the summary
gives medians. Timings are printed, never asserted. Only the local PostgreSQL
(127.0.0.1) is used.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing
import random
import resource
import statistics
import time
import tracemalloc
from array import array
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection as Pipe
from multiprocessing.synchronize import Event

import asyncpg

from app.auth.service import Authenticator
from app.clock import SystemClock
from app.config import Environment, Settings
from app.context import AppContext
from app.db import Database, asyncpg_dsn
from app.idempotency import KeyedRequest, fingerprint
from app.ledger import expiry
from app.ledger import service as ledger
from app.ledger.schemas import AwardIn
from app.principal import Principal
from app.rulesets.cache import RulesCache
from bench import common
from bench.common import percentile

DATABASE = "points_ledger_bench_expire"
PROGRAM = Principal(program_id=1, program_code="default", key_id=None, scopes=frozenset({"admin"}))
MEMBERS_PER_STATEMENT = 1_000
KEEP_EVERY = 10  # every tenth member also has a lot that has not expired at the job's instant
SAMPLE_SECONDS = 0.05

# One award per lot, all in the database: the same ledger_post() call the service
# makes (entry, postings, balance, lot, idempotency record), without the Python
# side that the awards during the job measure anyway. Entry ids are UUIDv7 like
# the service's (PostgreSQL 15 has no uuidv7()): timestamp first, version 7.
CREATE_LOTS = """
SELECT count(*)
  FROM generate_series($2::bigint, $3::bigint) AS m
 CROSS JOIN LATERAL generate_series(1, $4 + (m % $6 = 0)::integer) AS k
 CROSS JOIN LATERAL (SELECT (m * 7 + k * 13) % 100 + 1 AS points) AS p
 CROSS JOIN LATERAL ledger_post(
       p_entry_id => encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) PLACING
              substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
              FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid,
       p_program_id => $1, p_kind => 'award', p_idempotency_key => 'bench-lot:' || m || ':' || k,
       p_request_fingerprint => 'bench:expire:setup', p_occurred_at => now(), p_recorded_at => now(),
       p_actor_key_id => NULL, p_reverses_entry_id => NULL, p_reason => 'bench: a lot for the expire job',
       p_order_id => NULL, p_rules_version => NULL,
       p_expires_at => CASE WHEN k > $4 THEN $5::timestamptz + interval '365 days'
            ELSE $5::timestamptz - make_interval(days => k, hours => (m % 24)::integer) END,
       p_pending_until => NULL, p_metadata => NULL, p_members => ARRAY['m-' || m, NULL],
       p_accounts => ARRAY['available', 'issuance'], p_amounts => ARRAY[p.points, -p.points]
       ) AS posted
"""

# Awarders waiting on a row lock, and the job waiting on one, as the server sees them.
LOCK_WAITS = """
SELECT count(*) FILTER (WHERE query LIKE '%ledger_post(%') AS awarders,
       count(*) FILTER (WHERE query LIKE '%ledger_expire(%') AS job
  FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'
"""


def max_rss_mib() -> float:
    """The process's max RSS over its whole life (imports, earlier rounds, verify)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# The RSS of one stretch of a process: Linux resets the peak (VmHWM) on writing 5
# to clear_refs. These touch only procfs, which never waits on a disk.
def reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


def rss_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


# ---------------------------------------------------------------- setup


async def create_lots(url: str, members: int, lots_per_member: int, as_of: datetime, connections: int) -> int:
    """All lots, by ranges of members spread over `connections` in parallel: each
    statement touches its own members only, so they never wait on each other."""
    ranges: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    for first in range(1, members + 1, MEMBERS_PER_STATEMENT):
        ranges.put_nowait((first, min(members, first + MEMBERS_PER_STATEMENT - 1)))
    created = 0

    async def worker() -> None:
        nonlocal created
        connection = await asyncpg.connect(asyncpg_dsn(url))
        try:
            while not ranges.empty():
                first, last = ranges.get_nowait()
                lots = await connection.fetchval(
                    CREATE_LOTS, PROGRAM.program_id, first, last, lots_per_member, as_of, KEEP_EVERY
                )
                created += int(lots)
        finally:
            await connection.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return created


async def setup(
    url: str, members: int, lots_per_member: int, as_of: datetime, connections: int
) -> tuple[int, float, float]:
    """Lots created, seconds creating them, seconds of VACUUM (ANALYZE) + CHECKPOINT."""
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await common.add_members(connection, PROGRAM.program_id, members)
    finally:
        await connection.close()
    began = time.perf_counter()
    created = await create_lots(url, members, lots_per_member, as_of, connections)
    creating = time.perf_counter() - began
    # This server runs with autovacuum off; a program that has been earning for a
    # year has vacuumed, analysed tables, and the checkpoint keeps the setup's
    # dirty pages from being written during the measurements.
    began = time.perf_counter()
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await connection.execute("VACUUM (ANALYZE)")
        await connection.execute("CHECKPOINT")
    finally:
        await connection.close()
    return created, creating, time.perf_counter() - began


# ---------------------------------------------------------------- awarders (their own process)


@dataclass(frozen=True, slots=True)
class LockSample:
    at: float  # time.monotonic()
    awarders: int  # awarders waiting on a lock
    job: int  # the job waiting on one


async def sample_lock_waits(url: str, samples: list[LockSample], done: asyncio.Event) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        while not done.is_set():
            row = await connection.fetchrow(LOCK_WAITS)
            assert row is not None
            samples.append(LockSample(time.monotonic(), row["awarders"], row["job"]))
            await asyncio.sleep(SAMPLE_SECONDS)
    finally:
        await connection.close()


@dataclass(frozen=True, slots=True)
class AwardLog:
    """Each award's start (time.monotonic(), system-wide) and latency, in seconds."""

    starts: array[float]
    latencies: array[float]
    errors: int
    first_error: str | None
    lock_samples: list[LockSample]  # taken here, so that the job's process does nothing but the job


async def award_until_stopped(
    url: str, members: int, awarders: int, expires_at: datetime, ready: Pipe, stop: Event
) -> AwardLog:
    settings = Settings(env=Environment.test, database_url=url, db_pool_size=awarders)
    db = Database(url, settings)
    await db.connect()
    context = AppContext(
        settings=settings,
        db=db,
        clock=SystemClock(),
        auth=Authenticator(db.pool, admin_key=None, cache_seconds=0),
        rules=RulesCache(),
    )
    starts: array[float] = array("d")
    latencies: array[float] = array("d")
    errors = 0
    first_error: str | None = None
    stopping = False
    numbers = iter(range(1, 2**62))
    samples: list[LockSample] = []
    sampled = asyncio.Event()

    async def awarder(seed: int) -> None:
        nonlocal errors, first_error
        rng = random.Random(seed)
        while not stopping:
            number = next(numbers)
            member = f"m-{rng.randint(1, members)}"
            body = AwardIn(
                points=rng.randint(1, 100), reason="bench: award during expiry", expires_at=expires_at
            )
            request = KeyedRequest(
                PROGRAM, f"bench-award-{number}", fingerprint("POST", f"/v1/members/{member}/awards", body)
            )
            began = time.monotonic()
            try:
                await ledger.award(context, request, member, body)
            except Exception as exc:  # counted and shown; the bench goes on
                errors += 1
                first_error = first_error or repr(exc)
                continue
            starts.append(began)
            latencies.append(time.monotonic() - began)

    async def watch() -> None:
        nonlocal stopping
        await asyncio.to_thread(stop.wait)
        stopping = True
        sampled.set()

    try:
        ready.send("ready")
        await asyncio.gather(
            watch(),
            sample_lock_waits(url, samples, sampled),
            *(awarder(20261125 + n) for n in range(awarders)),
        )
    finally:
        await db.dispose()
    return AwardLog(starts, latencies, errors, first_error, samples)


def awarders_process(
    url: str, members: int, awarders: int, expires_at: datetime, out: Pipe, stop: Event
) -> None:
    out.send(asyncio.run(award_until_stopped(url, members, awarders, expires_at, out, stop)))


# ---------------------------------------------------------------- figures


@dataclass(frozen=True, slots=True)
class Window:
    seconds: float
    awards: int
    latencies: list[float]  # of awards started in the window

    @property
    def per_second(self) -> float:
        return self.awards / self.seconds

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 0.99) * 1000

    @property
    def max_ms(self) -> float:
        return max(self.latencies, default=float("nan")) * 1000


def window(log: AwardLog, spans: list[tuple[float, float]]) -> Window:
    """Awards finished within the spans (throughput), latencies of those started in them."""
    finished = 0
    latencies: list[float] = []
    for start, latency in zip(log.starts, log.latencies, strict=True):
        for begin, end in spans:
            if begin <= start + latency < end:
                finished += 1
            if begin <= start < end:
                latencies.append(latency)
    return Window(sum(end - begin for begin, end in spans), finished, latencies)


@dataclass(frozen=True, slots=True)
class LockWaits:
    awarder_share: float  # share of samples with an awarder waiting on a row lock
    awarders_mean: float  # awarders waiting, on average
    job_share: float  # share of samples with the job waiting on one


def lock_waits(samples: list[LockSample], spans: list[tuple[float, float]]) -> LockWaits:
    inside = [s for s in samples if any(begin <= s.at < end for begin, end in spans)]
    if not inside:
        return LockWaits(float("nan"), float("nan"), float("nan"))
    return LockWaits(
        sum(s.awarders > 0 for s in inside) / len(inside),
        sum(s.awarders for s in inside) / len(inside),
        sum(s.job > 0 for s in inside) / len(inside),
    )


# ---------------------------------------------------------------- one round


@dataclass(frozen=True, slots=True)
class JobRun:
    expired: expiry.Expired
    seconds: float
    batch_seconds: list[float]  # each batch's wall time: its members stay locked at most that long
    peak_bytes: int  # tracemalloc
    rss_before_mib: float
    peak_rss_mib: float | None  # during the job; None where the peak cannot be reset
    max_rss_mib: float


@dataclass(frozen=True, slots=True)
class Measured:
    job: JobRun
    without: list[tuple[float, float]]  # before and after the job
    during: list[tuple[float, float]]
    log: AwardLog


async def run_job(db: Database, as_of: datetime, batch: int) -> JobRun:
    """The job as the CLI runs it (with its up-front count), traced by tracemalloc:
    this process does nothing else meanwhile."""
    marks: list[float] = []
    rss_before = rss_mib("VmRSS")
    resettable = reset_peak_rss()
    tracemalloc.start()
    began = time.monotonic()
    expired = await expiry.expire(
        db,
        program_ids=[PROGRAM.program_id],
        as_of=as_of,
        now=datetime.now(UTC),
        batch=batch,
        on_total=lambda _: marks.append(time.monotonic()),
        on_progress=lambda _: marks.append(time.monotonic()),
    )
    seconds = time.monotonic() - began
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    batches = [end - begin for begin, end in itertools.pairwise(marks)]
    peak_rss = rss_mib("VmHWM") if resettable else None
    return JobRun(expired, seconds, batches, peak, rss_before, peak_rss, max_rss_mib())


async def measure(
    url: str, members: int, awarders: int, seconds: float, batch: int, as_of: datetime
) -> Measured:
    """Awards alone, then with the job, then alone again."""
    spawn = multiprocessing.get_context("spawn")
    receive, send = spawn.Pipe(duplex=False)
    stop = spawn.Event()
    # The awards' lots outlive the job's instant: the job's work is the setup's lots.
    award_expiry = as_of + timedelta(days=365)
    process = spawn.Process(
        target=awarders_process, args=(url, members, awarders, award_expiry, send, stop), daemon=True
    )
    process.start()
    send.close()
    db = Database(url, Settings(env=Environment.test, database_url=url, db_pool_size=2))
    try:
        await db.connect()
        if await asyncio.to_thread(receive.recv) != "ready":
            raise SystemExit("the awarders did not start")
        await asyncio.sleep(3)  # warm-up: pools filled, statements prepared
        start = time.monotonic()
        before = (start, start + seconds)
        await asyncio.sleep(seconds)
        began = time.monotonic()
        job = await run_job(db, as_of, batch)
        ended = time.monotonic()
        after = (ended, ended + seconds)
        await asyncio.sleep(seconds)
        stop.set()
        log: AwardLog = await asyncio.to_thread(receive.recv)
    finally:
        stop.set()
        await asyncio.to_thread(process.join, 30)
        if process.is_alive():
            process.terminate()
            await asyncio.to_thread(process.join, 10)
        receive.close()
        await db.dispose()
    return Measured(job, [before, after], [(began, ended)], log)


async def second_run(url: str, as_of: datetime) -> tuple[expiry.Expired, float]:
    db = Database(url, Settings(env=Environment.test, database_url=url, db_pool_size=2))
    await db.connect()
    try:
        began = time.perf_counter()
        done = await expiry.expire(db, program_ids=[PROGRAM.program_id], as_of=as_of, now=datetime.now(UTC))
        return done, time.perf_counter() - began
    finally:
        await db.dispose()


@dataclass(frozen=True, slots=True)
class Outcome:
    job: JobRun
    without: Window
    during: Window
    waits_without: LockWaits
    waits_during: LockWaits

    @property
    def lots_per_second(self) -> float:
        return self.job.expired.lots / self.job.seconds

    @property
    def members_per_second(self) -> float:
        return self.job.expired.members / self.job.seconds

    @property
    def ratio(self) -> float:
        return self.during.per_second / self.without.per_second


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


async def run_round(
    number: int,
    members: int,
    lots_per_member: int,
    awarders: int,
    seconds: float,
    batch: int,
    setup_connections: int,
) -> Outcome:
    await common.fresh_database(DATABASE)
    url = common.database_url(DATABASE)
    # A fixed instant after every setup lot's expiry (they expire 1..N days before it).
    as_of = (datetime.now(UTC) + timedelta(days=30)).replace(hour=0, minute=0, second=0, microsecond=0)
    created, creating, vacuum = await setup(url, members, lots_per_member, as_of, setup_connections)
    print(
        f"round {number}: setup {created:,} lots of {members:,} members through ledger_post() in "
        f"{creating:.1f} s ({created / creating:,.0f} lots/s, {setup_connections} connections), "
        f"VACUUM (ANALYZE) + CHECKPOINT {vacuum:.1f} s",
        flush=True,
    )

    measured = await measure(url, members, awarders, seconds, batch, as_of)
    job, log = measured.job, measured.log
    before = window(log, measured.without[:1])
    after = window(log, measured.without[1:])
    outcome = Outcome(
        job,
        window(log, measured.without),
        window(log, measured.during),
        lock_waits(log.lock_samples, measured.without),
        lock_waits(log.lock_samples, measured.during),
    )
    batches = job.batch_seconds
    print(
        f"  job as of {as_of.isoformat()}: {job.expired.lots:,} lots of {job.expired.members:,} members "
        f"({job.expired.points:,} points) in {job.seconds:.1f} s: {outcome.lots_per_second:,.0f} lots/s, "
        f"{outcome.members_per_second:,.0f} members/s",
        flush=True,
    )
    print(
        f"  batches of {batch} members: {len(batches)}, time median {ms(statistics.median(batches))}, "
        f"p99 {ms(percentile(batches, 0.99))}, max {ms(max(batches))}"
    )
    print(
        f"  awards/s without the job: {outcome.without.per_second:,.0f} "
        f"(before {before.per_second:,.0f}, after {after.per_second:,.0f}); "
        f"during: {outcome.during.per_second:,.0f}; ratio during/without {outcome.ratio:.2f} "
        f"(during/before {outcome.during.per_second / before.per_second:.2f}, "
        f"during/after {outcome.during.per_second / after.per_second:.2f})"
    )
    print(
        f"  award latency without: p99 {outcome.without.p99_ms:.1f} ms, max {outcome.without.max_ms:.1f} ms; "
        f"during: p99 {outcome.during.p99_ms:.1f} ms, max {outcome.during.max_ms:.1f} ms"
    )
    slow = sum(latency * 1000 > outcome.without.max_ms for latency in outcome.during.latencies)
    print(
        f"  awards during the job slower than the slowest without it: {slow:,} of "
        f"{len(outcome.during.latencies):,}"
    )
    print(
        "  pg_stat_activity samples with an award waiting on a row lock: "
        f"without {outcome.waits_without.awarder_share:.1%}, during {outcome.waits_during.awarder_share:.1%} "
        f"(awarders waiting, mean: {outcome.waits_without.awarders_mean:.2f} and "
        f"{outcome.waits_during.awarders_mean:.2f} of {awarders}); "
        f"with the job waiting on one: {outcome.waits_during.job_share:.1%}"
    )
    print(
        f"  job process: peak Python memory (tracemalloc) {job.peak_bytes / 2**20:.1f} MiB; RSS "
        f"{job.rss_before_mib:.0f} MiB before the job, peak during it "
        + ("n/a" if job.peak_rss_mib is None else f"{job.peak_rss_mib:.0f} MiB")
        + f"; max RSS so far (getrusage) {job.max_rss_mib:.0f} MiB"
    )
    if log.errors:
        print(f"  award errors: {log.errors} (first: {log.first_error})")

    again, took = await second_run(url, as_of)
    print(
        f"  second run for the same instant: {again.lots} lots, {again.members} members, "
        f"{again.points} points expired ({took:.1f} s)"
    )
    began = time.perf_counter()
    sound = await common.sound(DATABASE)
    print(
        "  verify after the round:",
        "ledger is sound" if sound else "MISMATCHES",
        f"({time.perf_counter() - began:.0f} s)",
        flush=True,
    )
    return outcome


async def run(
    members: int,
    lots_per_member: int,
    awarders: int,
    seconds: float,
    batch: int,
    setup_connections: int,
    rounds: int,
) -> None:
    outcomes = [
        await run_round(number, members, lots_per_member, awarders, seconds, batch, setup_connections)
        for number in range(1, rounds + 1)
    ]

    def median(values: list[float]) -> float:
        return statistics.median(values)

    peaks = [o.job.peak_rss_mib for o in outcomes]
    label = f"median of {rounds} rounds" if rounds > 1 else "one round"
    print(f"\n{members:,} members x {lots_per_member} lots, {awarders} awarders, {label}")
    print(
        f"expire: {median([o.lots_per_second for o in outcomes]):,.0f} lots/s, "
        f"{median([o.members_per_second for o in outcomes]):,.0f} members/s, "
        f"{median([o.job.seconds for o in outcomes]):.1f} s"
    )
    print(
        f"awards/s without the job {median([o.without.per_second for o in outcomes]):,.0f}, during it "
        f"{median([o.during.per_second for o in outcomes]):,.0f}: "
        f"ratio during/without {median([o.ratio for o in outcomes]):.2f}"
    )
    print(
        f"award latency max without {median([o.without.max_ms for o in outcomes]):.1f} ms, during "
        f"{median([o.during.max_ms for o in outcomes]):.1f} ms; p99 without "
        f"{median([o.without.p99_ms for o in outcomes]):.1f} ms, "
        f"during {median([o.during.p99_ms for o in outcomes]):.1f} ms"
    )
    print(
        f"peak Python memory of the job: {median([o.job.peak_bytes / 2**20 for o in outcomes]):.1f} MiB "
        "(process RSS peak during the job "
        + ("n/a" if None in peaks else f"{median([p for p in peaks if p is not None]):.0f} MiB")
        + f", max RSS of the process {median([o.job.max_rss_mib for o in outcomes]):.0f} MiB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--lots-per-member", type=int, default=10, help="lots that expire, per member")
    parser.add_argument("--awarders", type=int, default=8, help="concurrent awards during the measurements")
    parser.add_argument(
        "--seconds", type=float, default=10, help="awards without the job: before and after it"
    )
    parser.add_argument("--batch", type=int, default=expiry.BATCH, help="members per batch of the job")
    parser.add_argument("--setup-connections", type=int, default=4, help="parallel connections of the setup")
    parser.add_argument("--rounds", type=int, default=1, help="rounds, each on a fresh database")
    args = parser.parse_args()
    asyncio.run(
        run(
            args.members,
            args.lots_per_member,
            args.awarders,
            args.seconds,
            args.batch,
            args.setup_connections,
            args.rounds,
        )
    )


if __name__ == "__main__":
    main()
