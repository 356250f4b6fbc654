"""Events out under load: what chaining costs the awards endpoint, how far the chain
lags behind, and how fast webhooks go out.

    uv run python -m bench.events            # needs wrk (apt-get install wrk)

In one run, on one fresh database (bench.awards' own), it prints:
1. awards per second through the service with the chainer and the webhook
   dispatcher running inside it (LEDGER_SERVE_BACKGROUND=true: "chained"), in a
   `points-ledger worker` of their own beside a service without them ("worker"),
   and nowhere (false, and no worker either: "unchained"), and through the bare
   FastAPI+asyncpg endpoint of bench/awards.py, in rounds that rotate the four (wrk,
   as bench.awards drives them); the medians, each mode's ratio service/bare, the
   drop from chaining in serve and in a worker (target: at most 5%), and each
   mode's CPU per award in the serving processes (serve, and the worker) and in
   PostgreSQL's backends. Only one service runs at a time, and every entry is
   chained before each round, so no round inherits a backlog: that backlog (the
   entries of an unchained or bare round) is chained in this process with nothing
   else running, which gives the chainer's own CPU per entry, here and in
   PostgreSQL, and its share of an unchained award's CPU (steadier than the drop
   in rates, which moves with the machine from round to round);
2. the chain's lag during the chained and worker rounds: the age of the oldest committed entry
   not yet chained, sampled every 100 ms (max and p99; target: at most 2 s), and
   how long after the load stopped the last entry was chained (the worst round);
3. webhooks: a receiver on 127.0.0.1 (bench/webhook_receiver.py, 204 at once)
   subscribed to points.* through POST /v1/webhooks, then about N awards
   (--webhook-awards) through the service (chainer and dispatcher in it), wrk
   driving it as in part 1 for as long as N takes at part 1's chained rate: the
   awards written and their rate, the events delivered (all of them, or as many as
   came within --delivery-timeout) and per second from the first award to the last
   arrival, how long after the last award the last event arrived, and each event's
   time from its created_at to its first arrival (p50, p99, max); then awards at a
   steady rate the service keeps up with (--paced-rate, bench/pace.py) and their
   events' time from created_at to arrival (target: within 2 s of the commit);
then `verify` over everything the run wrote. Only 127.0.0.1 is ever targeted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from app.config import Environment, Settings
from app.db import Database, asyncpg_dsn
from app.ledger import chain
from bench import common, pace
from bench.awards import (
    BARE_PATHS,
    DATABASE,
    SERVICE_PATHS,
    Round,
    bare_env,
    database_url,
    drive,
    prepare,
    report,
    service_env,
    start,
    stop,
)
from bench.pace import Paced

SERVICE_PORT, BARE_PORT, RECEIVER_PORT = 8711, 8713, 8714
# the chainer and the dispatcher: inside `serve` (chained), in a `points-ledger
# worker` of their own beside a `serve` without them (worker), nowhere (unchained)
BACKGROUND = {"chained": "true", "worker": "false", "unchained": "false"}
PROGRAM_ID = 1


@dataclass
class Backlog:
    """What chaining a backlog cost (chain_everything()): entries and events taken,
    this process's CPU and the database backends' (s), summed over backlogs."""

    taken: int = 0
    python: float = 0.0
    database: float = 0.0


async def chain_everything(backlog: Backlog | None = None) -> None:
    """Chain everything waiting, here, with nothing else running: with `backlog`,
    what it cost is added to it (the chainer's own cost per entry, free of the
    rounds' noise)."""
    db = Database(database_url(), Settings(env=Environment.test, database_url=database_url()))
    await db.connect()
    try:
        database_before = await common.backends_cpu(DATABASE)
        python_before = time.process_time()
        taken = await chain.chain_all(db, datetime.now(UTC))
        python = time.process_time() - python_before
        database = await common.backends_cpu(DATABASE) - database_before
        if backlog is not None and taken >= 1000:  # a round's backlog, not a few stragglers
            backlog.taken += taken
            backlog.python += python
            backlog.database += database
    finally:
        await db.dispose()


async def lag_samples(stop_sampling: asyncio.Event) -> list[float]:
    """The chain's lag (s) every 100 ms until stopped."""
    samples: list[float] = []
    connection = await asyncpg.connect(asyncpg_dsn(database_url()))
    try:
        while not stop_sampling.is_set():
            found = await chain.state(connection, PROGRAM_ID)
            now = await connection.fetchval("SELECT clock_timestamp()")
            oldest = found.oldest_unchained_at
            samples.append(0.0 if oldest is None else max(0.0, (now - oldest).total_seconds()))
            await asyncio.sleep(0.1)
    finally:
        await connection.close()
    return samples


async def drained_after(limit: float) -> float:
    """Seconds until no entry waits for the chainer (inf after `limit`)."""
    started = time.monotonic()
    connection = await asyncpg.connect(asyncpg_dsn(database_url()))
    try:
        while (await chain.state(connection, PROGRAM_ID)).entries_unchained > 0:
            if time.monotonic() - started > limit:
                return float("inf")
            await asyncio.sleep(0.05)
    finally:
        await connection.close()
    return time.monotonic() - started


async def chained_round(
    name: str, port: int, env: dict[str, str], seconds: int, connections: int
) -> tuple[Round, list[float], float]:
    """A measured round with the lag sampled all through it; then the time to drain."""
    stop_sampling = asyncio.Event()
    sampler = asyncio.create_task(lag_samples(stop_sampling))
    try:
        measured = await asyncio.to_thread(drive, name, port, env, seconds, connections)
    finally:
        stop_sampling.set()
        samples = await sampler
    return measured, samples, await drained_after(30)


@dataclass
class Lag:
    # by mode (chained, worker): the lag sampled every 100 ms, the time to drain after each round
    samples: dict[str, list[float]] = field(default_factory=dict)
    drains: dict[str, list[float]] = field(default_factory=dict)
    # CPU ms per award by mode: (the serving process, the database's backends; the
    # chained rounds' include the chainer's, and the lag sampler's queries)
    cpu: dict[str, list[tuple[float, float]]] = field(default_factory=dict)


def measured_cpu(lag: Lag, name: str, servers: list[int], seconds: int, run: Callable[[], Round]) -> Round:
    """`run()`'s round of `seconds`, with the CPU per request it cost recorded in
    `lag.cpu`: the processes `servers` (with their children) and the database's backends."""
    server_before = sum(common.server_cpu(server) for server in servers)
    database_before = asyncio.run(common.backends_cpu(DATABASE))
    result = run()
    served = result.requests_per_second * seconds
    lag.cpu.setdefault(name, []).append(
        (
            (sum(common.server_cpu(server) for server in servers) - server_before) * 1000 / served,
            (asyncio.run(common.backends_cpu(DATABASE)) - database_before) * 1000 / served,
        )
    )
    return result


def service_round(name: str, wrk_env: dict[str, str], args: argparse.Namespace, lag: Lag) -> Round:
    """Start the service in this mode, warm it up, measure a round, stop it: only one
    service runs at a time (an idle chainer in another would chain this one's entries)."""
    env = {**service_env(args.connections), "LEDGER_SERVE_BACKGROUND": BACKGROUND[name]}
    process = start("app.asgi:app", SERVICE_PORT, env)
    processes = [process.pid]
    worker = None
    try:
        if name == "worker":
            worker = start_worker(service_env(args.connections))
            processes.append(worker.pid)
        # a fresh process warms its caches; its figures are not kept (and may be none)
        with contextlib.suppress(SystemExit):
            drive(name, SERVICE_PORT, wrk_env, 2, args.connections)
        if name != "unchained" and asyncio.run(drained_after(60)) == float("inf"):
            # the chainer is up (a worker takes seconds to start) and has caught up
            raise SystemExit(f"{name}: the warm-up's entries were not chained within 60 s")
        if name == "unchained":
            return measured_cpu(
                lag,
                name,
                processes,
                args.seconds,
                lambda: drive(name, SERVICE_PORT, wrk_env, args.seconds, args.connections),
            )
        samples: list[float] = []
        drained: list[float] = []

        def chained() -> Round:
            measured, sampled, drain = asyncio.run(
                chained_round(name, SERVICE_PORT, wrk_env, args.seconds, args.connections)
            )
            samples.extend(sampled)
            drained.append(drain)
            return measured

        measured = measured_cpu(lag, name, processes, args.seconds, chained)
        lag.samples.setdefault(name, []).extend(samples)
        lag.drains.setdefault(name, []).extend(drained)
        return measured
    finally:
        if worker is not None:
            stop(worker)
        stop(process)


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`points-ledger worker` on the bench database (its chainer and dispatcher; its
    jobs change nothing), started after the service so that it runs no migration."""
    command = [sys.executable, "-c", "from app.cli import main; main()", "worker"]
    quiet = {**os.environ, **env, "LEDGER_LOG_LEVEL": "warning"}  # its warnings still show
    return subprocess.Popen(command, env=quiet, stdout=subprocess.DEVNULL)


@dataclass
class Deliveries:
    awards: Round  # wrk's figures for the awards written
    expected: int  # points.* events after the webhook was created (each award is one)
    started: float  # wall clock: wrk started, and finished
    written: float
    posts: int  # what the receiver saw: POSTs, distinct events, when each first came
    events: int
    arrivals: list[float]
    latencies: list[float]  # each event's created_at to its first arrival, s
    paced: Paced | None = None  # awards at a steady rate the service keeps up with, afterwards
    paced_latencies: list[float] = field(default_factory=list)  # their events' created_at to arrival, s


async def subscribe() -> uuid.UUID:
    """A webhook for points.* to the receiver, created through the API with a key of
    scope webhooks:write; its id."""
    connection = await asyncpg.connect(asyncpg_dsn(database_url()))
    try:
        key = await common.add_api_key(connection, PROGRAM_ID, "bench-webhooks", ["webhooks:write"])
    finally:
        await connection.close()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{SERVICE_PORT}", timeout=30) as client:
        created = await client.post(
            "/v1/webhooks",
            json={"url": f"http://127.0.0.1:{RECEIVER_PORT}/", "events": ["points.*"]},
            headers={"Authorization": f"Bearer {key}"},
        )
        created.raise_for_status()
    return uuid.UUID(created.json()["id"])


async def collect(webhook_id: uuid.UUID, patience: float) -> tuple[int, dict[str, Any]]:
    """Once the awards in flight have landed and the chain has caught up: how many
    events the webhook should get, and what the receiver got by the time it had
    them all (or `patience` seconds ran out)."""
    await asyncio.sleep(1)  # requests wrk left in flight still commit
    await drained_after(60)
    connection = await asyncpg.connect(asyncpg_dsn(database_url()))
    try:
        expected = int(
            await connection.fetchval(
                "SELECT count(*) FROM journal_entry e JOIN webhook_endpoint w ON w.id = $1"
                " WHERE e.program_id = w.program_id AND e.recorded_at >= w.created_at",
                webhook_id,
            )
        )
    finally:
        await connection.close()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{RECEIVER_PORT}", timeout=30) as receiver:
        deadline = time.monotonic() + patience
        # the receiver is another process: ask it every 100 ms
        while (await receiver.get("/stats")).json()["events"] < expected:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        return expected, (await receiver.get("/stats", params={"details": "1"})).json()


def webhook_part(wrk_env: dict[str, str], seconds: int, args: argparse.Namespace) -> Deliveries:
    """Awards for `seconds` through the service (chainer and dispatcher in it) with a
    webhook for points.* to the receiver."""
    asyncio.run(chain_everything())  # the chainer starts with nothing waiting
    receiver = start("bench.webhook_receiver:app", RECEIVER_PORT, {})
    try:
        # production refuses http and loopback receivers: development allows them
        env = {
            **service_env(args.connections),
            "LEDGER_SERVE_BACKGROUND": "true",
            "LEDGER_ENV": "development",
            "LEDGER_ACCESS_LOG": "false",
        }
        service = start("app.asgi:app", SERVICE_PORT, env)
        try:
            with contextlib.suppress(SystemExit):  # warm up, before the webhook exists
                drive("webhooks", SERVICE_PORT, wrk_env, 2, args.connections)
            asyncio.run(drained_after(30))
            webhook_id = asyncio.run(subscribe())
            started = time.time()
            awards = drive("webhooks", SERVICE_PORT, wrk_env, seconds, args.connections)
            written = time.time()
            expected, found = asyncio.run(collect(webhook_id, args.delivery_timeout))
            # then awards at a steady rate the service keeps up with: how soon each
            # event arrives when nothing queues (the target: within 2 s of the commit)
            paced_from = time.time()
            paced = asyncio.run(
                pace.run(SERVICE_PORT, args.paced_rate, args.paced_seconds, 4, paced_awards(wrk_env))
            )
            _, after = asyncio.run(collect(webhook_id, args.delivery_timeout))
        finally:
            stop(service)
    finally:
        stop(receiver)
    paced_latencies = [
        latency
        for arrived, latency in zip(after["arrivals"], after["latencies"], strict=True)
        if arrived >= paced_from
    ]
    return Deliveries(
        awards,
        expected,
        started,
        written,
        found["posts"],
        found["events"],
        found["arrivals"],
        found["latencies"],
        paced,
        paced_latencies,
    )


def paced_awards(wrk_env: dict[str, str]) -> Callable[[], bytes]:
    """Each next award for bench/pace.py: a random member, its own Idempotency-Key."""
    members = int(wrk_env["BENCH_MEMBERS"])
    headers = {
        "Authorization": f"Bearer {wrk_env['BENCH_API_KEY']}",
        "Content-Type": "application/json",
    }

    def make() -> bytes:
        member = random.randint(1, members)
        path = f"{SERVICE_PATHS['BENCH_PATH_PREFIX']}m-{member}{SERVICE_PATHS['BENCH_PATH_SUFFIX']}"
        keyed = {**headers, "Idempotency-Key": f"paced-{uuid.uuid4()}"}
        return pace.request_bytes("POST", path, SERVICE_PORT, keyed, b'{"points": 5, "reason": "paced"}')

    return make


def print_deliveries(found: Deliveries) -> None:
    print(
        f"\nwebhooks (points.*) to a receiver on 127.0.0.1: {found.expected} awards written in"
        f" {found.written - found.started:.1f} s ({found.awards.requests_per_second:.0f}/s,"
        f" {found.awards.errors} errors)"
    )
    print(f"events delivered: {found.events} of {found.expected} ({found.posts} POSTs)")
    if not found.arrivals:
        return
    last = max(found.arrivals)
    span = last - found.started
    after = sum(arrived > found.written for arrived in found.arrivals)
    print(
        f"delivery throughput: {found.events / span:.0f} events/s from the first award to the last arrival"
        f" ({span:.1f} s); the last arrived {last - found.written:.1f} s after the last award"
    )
    if after and last > found.written:
        during = (found.events - after) / (found.written - found.started)
        print(
            f"  while the awards ran: {during:.0f} events/s; after: {after} events in"
            f" {last - found.written:.1f} s, {after / (last - found.written):.0f} events/s"
        )
    latencies = found.latencies
    print(
        f"event creation to arrival: p50 {common.percentile(latencies, 0.5):.2f} s,"
        f" p99 {common.percentile(latencies, 0.99):.2f} s, max {max(latencies, default=0):.2f} s"
    )
    if found.paced is not None:
        paced = found.paced_latencies
        print(
            f"then {found.paced.rate:.0f} awards/s for {found.paced.seconds:.0f} s"
            f" ({len(found.paced.latencies_ms)} answered, {found.paced.errors} errors):"
            f" {len(paced)} events arrived, creation to arrival p50 {common.percentile(paced, 0.5):.2f} s,"
            f" p99 {common.percentile(paced, 0.99):.2f} s, max {max(paced, default=0):.2f} s"
            " (target: within 2 s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=10, help="length of one measured round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--webhook-awards",
        type=int,
        default=2_000,
        help="about how many awards part 3 writes (wrk runs as long as that takes at the chained rate"
        " of part 1, 2 to 60 s)",
    )
    parser.add_argument(
        "--delivery-timeout", type=float, default=120, help="how long to wait for every event to arrive"
    )
    parser.add_argument(
        "--paced-rate", type=float, default=20, help="awards a second in the steady-rate part of part 3"
    )
    parser.add_argument("--paced-seconds", type=float, default=10)
    args = parser.parse_args()
    if args.rounds < 1:
        raise SystemExit("--rounds must be at least 1")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")

    key = asyncio.run(prepare(args.members))
    wrk_env = {"BENCH_MEMBERS": str(args.members), "BENCH_API_KEY": key}
    targets = ["chained", "worker", "unchained", "bare"]
    rounds: list[Round] = []
    lag = Lag()
    backlog = Backlog()
    bare = start("bench.bare_app:app", BARE_PORT, bare_env(args.connections))
    try:
        drive("bare", BARE_PORT, {**wrk_env, **BARE_PATHS}, 3, args.connections)  # warm up
        for number in range(args.rounds):
            turn = number % len(targets)
            for name in targets[turn:] + targets[:turn]:
                asyncio.run(chain_everything(backlog))  # no round starts with a backlog
                # statistics as autovacuum keeps them (off on the shared server): the
                # chainer's plan for an entry's postings needs the accounts' statistics
                # (taken while `account` was empty, it reads every account of the
                # program for each posting, and chaining costs 10x what it should)
                common.settle(DATABASE)
                if name == "bare":
                    measured = measured_cpu(
                        lag,
                        name,
                        [bare.pid],
                        args.seconds,
                        lambda: drive(
                            "bare", BARE_PORT, {**wrk_env, **BARE_PATHS}, args.seconds, args.connections
                        ),
                    )
                else:
                    measured = service_round(name, {**wrk_env, **SERVICE_PATHS}, args, lag)
                rounds.append(measured)
                print(f"round {number + 1} {name:9s} {measured.requests_per_second:8.0f} req/s", flush=True)
    finally:
        stop(bare)
    chained_rate = statistics.median(r.requests_per_second for r in rounds if r.target == "chained")
    seconds = max(2, min(60, round(args.webhook_awards / chained_rate)))
    found = webhook_part({**wrk_env, **SERVICE_PATHS}, seconds, args)

    print(
        f"\n{args.members} members, {args.connections} connections, {args.rounds} rounds of {args.seconds}s"
    )
    medians = report(rounds, targets, width=9)
    off = medians["unchained"] / medians["bare"]
    for name, where in (("chained", "inside serve"), ("worker", "in a worker of their own")):
        on = medians[name] / medians["bare"]
        print(
            f"chainer and dispatcher {where}: ratio service/bare {on:.2f} (without them: {off:.2f});"
            f" drop {100 * (1 - on / off):.1f}% (target: at most 5%)"
        )
    total: dict[str, float] = {}
    for name in targets:
        service_ms = statistics.median(server for server, _ in lag.cpu[name])
        database_ms = statistics.median(database for _, database in lag.cpu[name])
        total[name] = service_ms + database_ms
        print(
            f"CPU per award, {name:9s}: service {service_ms:.3f} ms, PostgreSQL {database_ms:.3f} ms"
            f" (medians of {len(lag.cpu[name])} rounds; worker: serve and the worker together)"
        )
    # less noisy than the rates on a shared machine: what chaining adds to each award's CPU
    for name in ("chained", "worker"):
        print(
            f"CPU per award, {name} over unchained (service + PostgreSQL):"
            f" {100 * (total[name] / total['unchained'] - 1):+.1f}%"
        )
    if backlog.taken:
        python_us = backlog.python * 1e6 / backlog.taken
        database_us = backlog.database * 1e6 / backlog.taken
        share = (python_us + database_us) / (1000 * total["unchained"])
        print(
            f"chaining alone, the backlogs between rounds ({backlog.taken} entries, nothing else running):"
            f" Python {python_us:.1f} us, PostgreSQL {database_us:.1f} us per entry;"
            f" {100 * share:.1f}% of an unchained award's CPU (a drop of {100 * share / (1 + share):.1f}%"
            " where the CPU is the limit)"
        )
    for name in ("chained", "worker"):
        samples, drains = lag.samples.get(name, []), lag.drains.get(name, [])
        print(
            f"chain lag under load, {name}: ({len(samples)} samples every 100 ms):"
            f" max {max(samples, default=0):.2f} s, p99 {common.percentile(samples, 0.99):.2f} s"
            f" (target: at most 2 s); unchained entries reached 0 {max(drains, default=0):.2f} s"
            " after the load stopped (worst round)"
        )
    print_deliveries(found)
    print(
        "verify after the run:",
        "ledger is sound" if asyncio.run(common.sound(DATABASE)) else "MISMATCHES (run points-ledger verify)",
    )


if __name__ == "__main__":
    main()
