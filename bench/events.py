"""Events out under load: what chaining costs the checkout, how far the chain lags,
and how fast webhooks go out.

    uv run python -m bench.events            # needs wrk (apt-get install wrk)

In one run, on one fresh database, it prints:
1. awards per second through the service with the chainer and the webhook
   dispatcher running inside it (LEDGER_SERVE_BACKGROUND=true) and without them
   (false), each against the bare FastAPI+asyncpg endpoint of bench/awards.py, in
   alternating rounds; the medians, each mode's ratio to bare, and the drop from
   chaining. The ledger is chained before each round, so no round inherits a backlog.
2. the chain's lag during the rounds with chaining on: the age of the oldest
   committed entry not yet chained, sampled every 100 ms (max and p99), and how long
   after the load stopped the last entry was chained;
3. webhook deliveries of points.award events to a receiver on 127.0.0.1 (204 at
   once): events per second, and the time from each event's creation to its arrival
   (p50, p99);
then `verify` over everything the run wrote. Only 127.0.0.1 is ever targeted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import asyncpg
import httpx

from app.auth.service import mint_key
from app.config import Environment, Settings
from app.db import Database, asyncpg_dsn
from app.ledger import chain
from bench import common
from bench.awards import DATABASE, HERE, Round, database_url, drive, prepare, start, stop


async def webhook_key() -> str:
    key, prefix, digest = mint_key()
    connection = await asyncpg.connect(asyncpg_dsn(database_url()))
    try:
        await connection.execute(
            "INSERT INTO api_key (id, program_id, name, key_prefix, key_hash, scopes, created_at)"
            " VALUES (gen_random_uuid(), 1, 'bench-webhooks', $1, $2, ARRAY['webhooks:write'], now())",
            prefix,
            digest,
        )
    finally:
        await connection.close()
    return key


async def chain_everything() -> None:
    db = Database(database_url(), Settings(env=Environment.test, database_url=database_url()))
    await db.connect()
    try:
        await chain.chain_all(db, datetime.now(UTC))
    finally:
        await db.dispose()


async def lag_samples(stop_sampling: asyncio.Event) -> list[float]:
    """The chain's lag (s) every 100 ms until stopped."""
    samples: list[float] = []
    connection = await asyncpg.connect(asyncpg_dsn(database_url()))
    try:
        while not stop_sampling.is_set():
            found = await chain.state(connection, 1)
            now = await connection.fetchval("SELECT clock_timestamp()")
            samples.append(
                0.0
                if found.oldest_unchained_at is None
                else (now - found.oldest_unchained_at).total_seconds()
            )
            await asyncio.sleep(0.1)
    finally:
        await connection.close()
    return samples


async def drained_after(seconds: float) -> float:
    """Seconds until no entry waits for the chainer."""
    started = time.monotonic()
    connection = await asyncpg.connect(asyncpg_dsn(database_url()))
    try:
        while (await chain.state(connection, 1)).entries_unchained > 0:
            if time.monotonic() - started > seconds:
                return float("inf")
            await asyncio.sleep(0.05)
    finally:
        await connection.close()
    return time.monotonic() - started


def warm_up(port: int, env: dict[str, str], connections: int) -> None:
    """Two seconds of load whose figures are not kept (a fresh process warms its caches)."""
    command = [
        "wrk",
        "-t2",
        f"-c{connections}",
        "-d2s",
        "-s",
        str(HERE / "awards.lua"),
        f"http://127.0.0.1:{port}",
    ]
    subprocess.run(command, env={**os.environ, **env}, capture_output=True, check=False)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


class Receiver:
    """Counts deliveries and when each arrived, against the event's created_at."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.arrivals: list[float] = []
        self.ids: set[str] = set()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                arrived = datetime.now(UTC)
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()
                created = datetime.fromisoformat(json.loads(body)["created_at"])
                with receiver.lock:
                    receiver.ids.add(self.headers["webhook-id"])
                    receiver.arrivals.append(time.monotonic())
                    receiver.latencies.append((arrived - created).total_seconds())

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"


async def measured_round(
    name: str, port: int, env: dict[str, str], seconds: int, connections: int
) -> tuple[Round, list[float], float]:
    stop_sampling = asyncio.Event()
    sampler = asyncio.create_task(lag_samples(stop_sampling))
    measured = await asyncio.to_thread(drive, name, port, env, seconds, connections)
    stop_sampling.set()
    samples = await sampler
    drained = await drained_after(30) if name == "chained" else 0.0
    return measured, samples, drained


async def deliveries(port: int, wrk_env: dict[str, str], seconds: int, connections: int) -> None:
    receiver = Receiver()
    key = await webhook_key()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        created = await client.post(
            "/v1/webhooks",
            json={"url": receiver.url, "events": ["points.award"]},
            headers={"Authorization": f"Bearer {key}"},
        )
        created.raise_for_status()
    since = datetime.now(UTC)
    await asyncio.to_thread(drive, "chained", port, wrk_env, seconds, connections)
    connection = await asyncpg.connect(asyncpg_dsn(database_url()))
    try:
        expected = await connection.fetchval(
            "SELECT count(*) FROM journal_entry WHERE kind = 'award' AND recorded_at >= $1", since
        )
        deadline = time.monotonic() + 300
        while len(receiver.ids) < expected and time.monotonic() < deadline:  # noqa: ASYNC110  # a thread fills it
            await asyncio.sleep(0.1)
    finally:
        await connection.close()
    receiver.server.shutdown()
    with receiver.lock:
        arrivals, latencies, received = list(receiver.arrivals), list(receiver.latencies), len(receiver.ids)
    span = max(arrivals) - min(arrivals) if len(arrivals) > 1 else float("nan")
    print(f"\nwebhooks: {received} of {expected} points.award events delivered (each once or more)")
    print(
        f"delivery throughput: {len(arrivals) / span:.0f} events/s over {span:.1f} s"
        " (arrivals while and after the awards ran)"
    )
    print(
        f"event creation to arrival: p50 {percentile(latencies, 0.5):.2f} s,"
        f" p99 {percentile(latencies, 0.99):.2f} s, max {max(latencies, default=0):.2f} s"
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
        "--webhook-seconds", type=int, default=5, help="how long awards run for the webhook part"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")

    key = asyncio.run(prepare(args.members))
    pool = str(args.connections)
    service_env = {
        "LEDGER_DATABASE_URL": database_url(),
        "LEDGER_ENV": "production",
        "LEDGER_DB_POOL_SIZE": pool,
    }
    modes = {
        "chained": ("app.asgi:app", 8711, {**service_env, "LEDGER_SERVE_BACKGROUND": "true"}),
        "unchained": ("app.asgi:app", 8712, {**service_env, "LEDGER_SERVE_BACKGROUND": "false"}),
    }
    service_paths = {"BENCH_PATH_PREFIX": "/v1/members/", "BENCH_PATH_SUFFIX": "/awards"}
    bare_paths = {"BENCH_PATH_PREFIX": "/awards/", "BENCH_PATH_SUFFIX": ""}
    wrk_env = {"BENCH_MEMBERS": str(args.members), "BENCH_API_KEY": key}
    bare = start("bench.bare_app:app", 8713, {"BENCH_DSN": asyncpg_dsn(database_url()), "BENCH_POOL": pool})
    rounds: list[Round] = []
    lags: list[float] = []
    drains: list[float] = []
    try:
        drive("bare", 8713, {**wrk_env, **bare_paths}, 3, args.connections)
        for number in range(args.rounds):
            order = list(modes) if number % 2 == 0 else list(reversed(modes))
            for name in [*order, "bare"]:
                asyncio.run(chain_everything())  # no round starts with a backlog
                if name == "bare":
                    rounds.append(
                        drive("bare", 8713, {**wrk_env, **bare_paths}, args.seconds, args.connections)
                    )
                else:
                    module, port, env = modes[name]
                    # only one service runs at a time: an idle chainer in the other
                    # would chain this one's entries
                    process = start(module, port, env)
                    try:
                        warm_up(port, {**wrk_env, **service_paths}, args.connections)
                        measured, samples, drained = asyncio.run(
                            measured_round(
                                name, port, {**wrk_env, **service_paths}, args.seconds, args.connections
                            )
                        )
                    finally:
                        stop(process)
                    rounds.append(measured)
                    if name == "chained":
                        lags += samples
                        drains.append(drained)
                print(f"round {number + 1} {name:9s} {rounds[-1].requests_per_second:8.0f} req/s", flush=True)
        module, port, env = modes["chained"]
        # production refuses http and loopback receivers: development allows them
        process = start(module, port, {**env, "LEDGER_ENV": "development", "LEDGER_ACCESS_LOG": "false"})
        try:
            asyncio.run(
                deliveries(port, {**wrk_env, **service_paths}, args.webhook_seconds, args.connections)
            )
        finally:
            stop(process)
    finally:
        stop(bare)

    print(
        f"\n{args.members} members, {args.connections} connections, {args.rounds} rounds of {args.seconds}s"
    )
    print(f"{'target':9s} {'req/s (median)':>15s} {'p50 ms':>8s} {'p99 ms':>8s} {'errors':>7s}")
    medians = {}
    for name in (*modes, "bare"):
        mine = [r for r in rounds if r.target == name]
        medians[name] = statistics.median(r.requests_per_second for r in mine)
        print(
            f"{name:9s} {medians[name]:15.0f} {statistics.median(r.p50_ms for r in mine):8.2f}"
            f" {statistics.median(r.p99_ms for r in mine):8.2f} {sum(r.errors for r in mine):7d}"
        )
    on, off = medians["chained"] / medians["bare"], medians["unchained"] / medians["bare"]
    print(
        f"ratio service/bare with chaining: {on:.2f}; without: {off:.2f}; drop: {100 * (1 - on / off):.1f}%"
    )
    print(
        f"chain lag under load ({len(lags)} samples): max {max(lags, default=0):.2f} s,"
        f" p99 {percentile(lags, 0.99):.2f} s;"
        f" last entry chained {max(drains, default=0):.2f} s after the load stopped (worst round)"
    )
    print(
        "verify after the run:",
        "ledger is sound" if asyncio.run(common.sound(DATABASE)) else "MISMATCHES (run points-ledger verify)",
    )


if __name__ == "__main__":
    main()
