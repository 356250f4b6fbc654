"""Partners under load: a partner's checkout against the program's own, and a
month's settlement over 1,000,000 partner entries.

    uv run python -m bench.partners            # needs wrk (apt-get install wrk); about 10 minutes
    uv run python -m bench.partners --quick    # a few minutes: short rounds, 50,000 entries

Part 1, orders, on a fresh database (points_ledger_bench_partners) with --members
members, one service (uvicorn, one worker, its chainer on, as bench/awards.py
starts it): a postpaid partner with no credit limit, an earn rate and a
`partner_earn` section shaped like the program's `earn` (1 point per 1 EUR), and
a prepaid partner with the same section, funded with far more points than the run
gives out, set up through the API (each partner's key, like the program's keys,
is written in SQL as bench.common.add_api_key() writes them). wrk
(bench/partner_orders.lua: 25.00 EUR orders of random members, each with its own
order_id and Idempotency-Key) drives `POST /v1/partner/orders` with the postpaid
partner's key and `POST /v1/orders` with a checkout key (points:earn), same
connections and duration, in alternating rounds (partner first in odd rounds,
orders first in even ones). Printed: each one's req/s, p50/p99 latency and
errors (medians over its rounds, errors summed), the ratio partner/orders of the
medians (target: at least 0.9) and of each round's pair; then --prepaid-rounds
rounds of the prepaid partner (each earn checks its funding: on one of its balance
slots, or on all of them when that slot runs short), reported apart; the orders
written, and `verify` (the ledger's checks and the partners' ones, as
`points-ledger verify` runs them).

Part 2, settlement, on another fresh database (points_ledger_bench_settle) with
--settle-members members and one postpaid partner (earn rate 0.0125 EUR a point,
created the day before the month): --entries partner earn entries recorded over
the previous calendar month (UTC), each one journal entry, two postings (the
member's available +p, the partner's partner_funding -p), a point lot and a
partner line (section earn, the rate's price per point), with member and partner
balances to match. Most are bulk-loaded in SQL (generate_series, --batch entries
per transaction, the database's deferred balance triggers on); the last
--post-sample go through ledger_post() itself, the function every posting uses,
so its rate is measured too and extrapolated to --entries (labelled as such).
Then VACUUM (ANALYZE), as autovacuum would leave the tables. With the service
started on that database (its chainer off, so nothing runs behind the
measurements), it times, through HTTP:
- `GET /v1/partners/{code}/settlement?from=&to=` over the month (median of
  --settlement-runs), checking its lines, points and money against SQL;
- `GET .../settlement/lines?format=csv` over the month, streamed (every line);
- chaining every entry (app.ledger.chain.chain_all, in this process, as the
  chainer would), since a statement claims only lines whose entries are chained;
- `POST /v1/partners/{code}/statements` closing the month over every line;
and for each, the service process's peak RSS growth (VmHWM reset through
/proc/<pid>/clear_refs before, minus VmRSS before). It also calls
app.partners.settlement.settlement() in this process once under tracemalloc (peak
Python memory of the derivation). `verify` runs over that database twice, timed:
before the chain (every entry unchained; --no-verify-before-chain skips it) and
at the end.

Only 127.0.0.1 is ever targeted; every process the script starts, it stops.
Timings are printed, never asserted. The machine is shared and noisy: compare
ratios from one run, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import shutil
import statistics
import subprocess
import threading
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx

from app.auth.service import Authenticator, mint_key
from app.clock import SystemClock
from app.config import Environment, Settings
from app.context import AppContext
from app.db import Database, asyncpg_dsn
from app.ledger import chain
from app.ledger.verify import verify
from app.partners import repository, settlement
from app.partners.settlement import VERIFY_CHECKS
from app.rulesets.cache import RulesCache
from bench import common
from bench.awards import start, stop

HERE = Path(__file__).resolve().parent
DATABASE = "points_ledger_bench_partners"
SETTLE_DATABASE = "points_ledger_bench_settle"
ORDERS_PORT, SETTLE_PORT = 8721, 8722
PROGRAM_ID = 1
POSTPAID, PREPAID, SETTLED = "bench-postpaid", "bench-prepaid", "bench-settled"
PRICE_PER_POINT = Decimal("0.0125")
PREPAID_FUNDING = 100_000_000  # points: 25 per order, far more than any run gives out
EARN_SECTION = {"base": {"points": 1, "per": "1", "rounding": "floor"}}
TARGETS = {"orders": "/v1/orders", "partner": "/v1/partner/orders", "prepaid": "/v1/partner/orders"}

T = TypeVar("T")


# ---------------------------------------------------------------- shared


def service_env(database: str, connections: int, background: bool) -> dict[str, str]:
    """The service's environment, as bench/awards.py gives it, on `database`."""
    return {
        "LEDGER_DATABASE_URL": common.database_url(database),
        "LEDGER_ENV": "production",
        "LEDGER_DB_POOL_SIZE": str(connections),
        "LEDGER_SERVE_BACKGROUND": "true" if background else "false",
    }


async def connect(database: str) -> asyncpg.Connection:
    return await asyncpg.connect(asyncpg_dsn(common.database_url(database)))


def headers(key: str, idempotency_key: str | None = None) -> dict[str, str]:
    found = {"Authorization": f"Bearer {key}"}
    if idempotency_key is not None:
        found["Idempotency-Key"] = idempotency_key
    return found


async def call(client: httpx.AsyncClient, method: str, path: str, key: str, **kwargs: Any) -> Any:
    """One API call that must succeed; its JSON body."""
    idempotency_key = kwargs.pop("idempotency_key", None)
    response = await client.request(method, path, headers=headers(key, idempotency_key), **kwargs)
    if response.status_code >= 300:
        raise SystemExit(f"{method} {path}: {response.status_code} {response.text}")
    return response.json()


@dataclass
class Verified:
    sound: bool
    failures: list[str]
    seconds: float


async def verify_all(database: str) -> Verified:
    """`verify` as `points-ledger verify` runs it: bench.common.sound()'s ledger
    checks and the partners' (settlement lines against postings, partner balances,
    closed statements)."""
    connection = await connect(database)
    try:
        began = time.monotonic()
        outcomes = await verify(connection, VERIFY_CHECKS)
        seconds = time.monotonic() - began
    finally:
        await connection.close()
    failures = [f"{o.name}: {o.mismatches} ({'; '.join(o.examples[:2])})" for o in outcomes if o.mismatches]
    return Verified(not failures, failures, seconds)


def verdict(found: Verified) -> str:
    return "ledger is sound" if found.sound else "MISMATCHES: " + " | ".join(found.failures)


# ---------------------------------------------------------------- part 1: orders


@dataclass
class WrkRound:
    target: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int
    load: float = float("nan")  # the 1-minute load average right after the round
    waiting: float = float("nan")  # backends waiting on a lock, mean over the samples
    waited: float = float("nan")  # share of the samples with any backend waiting on a lock


def _ms(value: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if found is None:
        raise SystemExit(f"wrk printed a latency this script cannot read: {value}")
    number, unit = found.groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def _search(pattern: str, output: str) -> str:
    found = re.search(pattern, output, re.MULTILINE)
    if found is None:
        raise SystemExit(f"wrk's output lacks {pattern!r}:\n{output}")
    return found.group(1)


_runs = iter(range(1, 1_000_000))

# The service's backends as the server sees them: how many wait on a lock (a row
# lock: a member's balance row, or the partner's balance slot an earn updates and
# holds until its transaction commits).
LOCK_WAITS = """
SELECT count(*) FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'
"""


def lock_samples(stop_sampling: threading.Event) -> list[int]:
    """Backends waiting on a lock, every 100 ms until stopped (in its own thread)."""

    async def sample() -> list[int]:
        found: list[int] = []
        connection = await connect(DATABASE)
        try:
            while not stop_sampling.is_set():
                found.append(int(await connection.fetchval(LOCK_WAITS)))
                await asyncio.sleep(0.1)
        finally:
            await connection.close()
        return found

    return asyncio.run(sample())


def drive(target: str, key: str, seconds: int, args: argparse.Namespace, paid_at: str) -> WrkRound:
    """One wrk run of `seconds` against `target`'s endpoint with `key`."""
    env = {
        "BENCH_MEMBERS": str(args.members),
        "BENCH_PATH": TARGETS[target],
        "BENCH_API_KEY": key,
        "BENCH_PAID_AT": paid_at,
        "BENCH_RUN": f"{target[:2]}{int(time.time())}r{next(_runs)}",
    }
    command = ["wrk", "-t2", f"-c{args.connections}", f"-d{seconds}s", "--latency"]
    command += ["-s", str(HERE / "partner_orders.lua"), f"http://127.0.0.1:{ORDERS_PORT}"]
    stop_sampling = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        sampler = pool.submit(lock_samples, stop_sampling)
        try:
            output = subprocess.run(
                command, env={**os.environ, **env}, capture_output=True, text=True, check=True
            ).stdout
        finally:
            stop_sampling.set()
        samples = sampler.result() or [0]
    if re.search(r"^\s+99%\s+(\S+)$", output, re.MULTILINE) is None:
        raise SystemExit(f"wrk against {target} completed no request:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return WrkRound(
        target,
        float(_search(r"Requests/sec:\s+([\d.]+)", output)),
        _ms(_search(r"^\s+50%\s+(\S+)$", output)),
        _ms(_search(r"^\s+99%\s+(\S+)$", output)),
        int(_search(r"(\d+) requests in", output)),
        int(non_2xx.group(1)) if non_2xx else 0,
        sum(map(int, socket.groups())) if socket else 0,
        os.getloadavg()[0],
        statistics.mean(samples),
        sum(1 for n in samples if n) / len(samples),
    )


@dataclass
class OrdersSetup:
    admin: str
    checkout: str
    partner_keys: dict[str, str] = field(default_factory=dict)


async def prepare_orders(members: int) -> OrdersSetup:
    """A fresh database with the members, an admin key and a checkout key."""
    await common.fresh_database(DATABASE)
    connection = await connect(DATABASE)
    try:
        admin = await common.add_api_key(connection, PROGRAM_ID, "bench-admin", ["admin"])
        checkout = await common.add_api_key(connection, PROGRAM_ID, "bench-checkout", ["points:earn"])
        await common.add_members(connection, PROGRAM_ID, members)
    finally:
        await connection.close()
    return OrdersSetup(admin, checkout)


async def add_partner_key(code: str) -> str:
    """A key of partner `code` with scope partner:earn, written in SQL like
    bench.common.add_api_key() (POST /v1/api-keys would do the same)."""
    key, prefix, digest = mint_key()
    connection = await connect(DATABASE)
    try:
        await connection.execute(
            "WITH lookup AS (INSERT INTO api_key_lookup (key_hash, program_id) VALUES ($4, $1))"
            " INSERT INTO api_key (id, program_id, name, key_prefix, key_hash, scopes, partner_code,"
            " created_at) VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, $6, now())",
            PROGRAM_ID,
            f"{code} till",
            prefix,
            digest,
            ["partner:earn"],
            code,
        )
    finally:
        await connection.close()
    return key


async def onboard_partners(setup: OrdersSetup) -> None:
    """Through the API: both partners and their earn rates, rules with a
    `partner_earn` section for each (the program's `earn` shape), the prepaid
    partner's funding; and each partner's key."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ORDERS_PORT}", timeout=60) as client:
        for code, billing in ((POSTPAID, "postpaid"), (PREPAID, "prepaid")):
            body: dict[str, Any] = {
                "code": code,
                "name": f"Bench {billing} partner",
                "roles": ["earn"],
                "billing": billing,
                "currency": "EUR",
            }
            await call(client, "POST", "/v1/partners", setup.admin, json=body)
            rate = {"kind": "earn", "price_per_point": str(PRICE_PER_POINT)}
            await call(client, "POST", f"/v1/partners/{code}/rates", setup.admin, json=rate)
            setup.partner_keys[code] = await add_partner_key(code)
        rules = {"earn": EARN_SECTION, "partner_earn": {POSTPAID: EARN_SECTION, PREPAID: EARN_SECTION}}
        version = (await call(client, "POST", "/v1/rules", setup.admin, json=rules))["version"]
        await call(client, "POST", f"/v1/rules/{version}/activate", setup.admin, json={})
        funding = {
            "points": PREPAID_FUNDING,
            "price": {"amount": str(PREPAID_FUNDING * PRICE_PER_POINT), "currency": "EUR"},
            "reference": "bench",
        }
        await call(
            client,
            "POST",
            f"/v1/partners/{PREPAID}/funding",
            setup.admin,
            json=funding,
            idempotency_key="bench-funding",
        )


async def probe(key: str, target: str, paid_at: str) -> str:
    """One order like wrk's, to show what a refused one answers."""
    order_id = f"probe-{time.time_ns()}"
    body = {
        "order_id": order_id,
        "member": "m-1",
        "total": {"amount": "25.00", "currency": "EUR"},
        "paid_at": paid_at,
    }
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ORDERS_PORT}", timeout=30) as client:
        response = await client.post(TARGETS[target], json=body, headers=headers(key, order_id))
    return f"{response.status_code} {response.text[:300]}"


@dataclass
class OrdersResult:
    rounds: list[WrkRound]
    medians: dict[str, WrkRound]
    written: dict[str, int]
    prepaid_funding: int
    verified: Verified
    probes: list[str]


def median_round(rounds: list[WrkRound], target: str) -> WrkRound:
    mine = [r for r in rounds if r.target == target]
    return WrkRound(
        target,
        statistics.median(r.requests_per_second for r in mine),
        statistics.median(r.p50_ms for r in mine),
        statistics.median(r.p99_ms for r in mine),
        sum(r.requests for r in mine),
        sum(r.non_2xx for r in mine),
        sum(r.socket_errors for r in mine),
        max(r.load for r in mine),
        statistics.mean(r.waiting for r in mine),
        statistics.mean(r.waited for r in mine),
    )


async def written_orders() -> tuple[dict[str, int], int]:
    connection = await connect(DATABASE)
    try:
        rows = await connection.fetch(
            "SELECT coalesce(pa.code, '(program)') AS who, count(*) AS orders"
            " FROM paid_order o LEFT JOIN partner pa ON pa.program_id = o.program_id AND pa.id = o.partner_id"
            " GROUP BY 1 ORDER BY 1"
        )
        funding = await connection.fetchval(
            "SELECT sum(b.funding) FROM partner_balance b"
            " JOIN partner pa ON pa.program_id = b.program_id AND pa.id = b.partner_id"
            " WHERE pa.program_id = $2 AND pa.code = $1",
            PREPAID,
            PROGRAM_ID,
        )
    finally:
        await connection.close()
    return {row["who"]: row["orders"] for row in rows}, int(funding)


def run_orders(args: argparse.Namespace) -> OrdersResult:
    setup = asyncio.run(prepare_orders(args.members))
    # every order is paid a minute before the run: never in the future, the same day for all
    paid_at = (datetime.now(UTC) - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    service = start("app.asgi:app", ORDERS_PORT, service_env(DATABASE, args.connections, True))
    rounds: list[WrkRound] = []
    probes: list[str] = []
    try:
        asyncio.run(onboard_partners(setup))
        keys = {
            "orders": setup.checkout,
            "partner": setup.partner_keys[POSTPAID],
            "prepaid": setup.partner_keys[PREPAID],
        }
        for target in ("orders", "partner", "prepaid"):  # warm up; not kept
            warm = drive(target, keys[target], args.warmup, args, paid_at)
            print(f"warm-up  {target:8s} {warm.requests_per_second:8.0f} req/s", flush=True)
        for number in range(args.rounds):
            order = ["partner", "orders"] if number % 2 == 0 else ["orders", "partner"]
            for target in order:
                rounds.append(drive(target, keys[target], args.seconds, args, paid_at))
                found = rounds[-1]
                print(
                    f"round {number + 1}  {target:8s} {found.requests_per_second:8.0f} req/s"
                    f"  p50 {found.p50_ms:6.2f} ms  p99 {found.p99_ms:6.2f} ms"
                    f"  errors {found.non_2xx + found.socket_errors}  load {found.load:.1f}"
                    f"  lock-waits {found.waiting:.2f}",
                    flush=True,
                )
        for number in range(args.prepaid_rounds):
            rounds.append(drive("prepaid", keys["prepaid"], args.seconds, args, paid_at))
            found = rounds[-1]
            print(
                f"prepaid {number + 1} {found.requests_per_second:8.0f} req/s"
                f"  p50 {found.p50_ms:6.2f} ms  p99 {found.p99_ms:6.2f} ms"
                f"  errors {found.non_2xx + found.socket_errors}  load {found.load:.1f}"
                f"  lock-waits {found.waiting:.2f}",
                flush=True,
            )
        for target in ("orders", "partner", "prepaid"):
            if any(r.non_2xx for r in rounds if r.target == target):
                probes.append(f"{target}: {asyncio.run(probe(keys[target], target, paid_at))}")
    finally:
        stop(service)
    medians = {target: median_round(rounds, target) for target in ("orders", "partner", "prepaid")}
    written, funding = asyncio.run(written_orders())
    print("verifying the orders database...", flush=True)
    verified = asyncio.run(verify_all(DATABASE))
    return OrdersResult(rounds, medians, written, funding, verified, probes)


def orders_report(result: OrdersResult, args: argparse.Namespace) -> list[str]:
    lines = [
        f"{args.members} members, {args.connections} connections, wrk -t2, {args.rounds} alternating rounds"
        f" of {args.seconds}s per target (+ {args.prepaid_rounds} prepaid), warm-up {args.warmup}s each",
        f"{'target':28s} {'req/s (median)':>14s} {'p50 ms':>8s} {'p99 ms':>8s}"
        f" {'non-2xx':>8s} {'socket':>7s} {'lock-waits':>10s}",
    ]
    names = {
        "partner": "POST /v1/partner/orders",
        "orders": "POST /v1/orders",
        "prepaid": "partner orders, prepaid",
    }
    for target in ("partner", "orders", "prepaid"):
        m = result.medians[target]
        lines.append(
            f"{names[target]:28s} {m.requests_per_second:14.0f} {m.p50_ms:8.2f} {m.p99_ms:8.2f}"
            f" {m.non_2xx:8d} {m.socket_errors:7d} {m.waiting:5.2f} {100 * m.waited:3.0f}%"
        )
    partner, orders = result.medians["partner"], result.medians["orders"]
    pairs = [
        p.requests_per_second / o.requests_per_second
        for p, o in zip(
            [r for r in result.rounds if r.target == "partner"],
            [r for r in result.rounds if r.target == "orders"],
            strict=True,
        )
    ]
    lines.append(
        f"ratio partner/orders (medians): {partner.requests_per_second / orders.requests_per_second:.2f}"
        f" (target >= 0.9); per round: {', '.join(f'{x:.2f}' for x in pairs)}"
    )
    lines.append(
        f"ratio prepaid/orders (prepaid's median against the orders median, not alternated):"
        f" {result.medians['prepaid'].requests_per_second / orders.requests_per_second:.2f}"
    )
    lines.append(
        "orders written (warm-ups included): "
        + ", ".join(f"{who} {count}" for who, count in result.written.items())
        + f"; prepaid partner's funding left {result.prepaid_funding} of {PREPAID_FUNDING}"
    )
    lines.append(
        "(lock-waits: backends waiting on a lock, sampled every 100 ms: mean, and share of samples with any)"
    )
    loads = [r.load for r in result.rounds]
    lines.append(f"1-minute load average after each measured round: {min(loads):.1f} .. {max(loads):.1f}")
    lines.extend(f"a refused request ({probe})" for probe in result.probes)
    lines.append(
        f"verify ({DATABASE}, ledger + partner checks, {result.verified.seconds:.1f} s):"
        f" {verdict(result.verified)}"
    )
    return lines


# ---------------------------------------------------------------- part 2: settlement

# One row per entry g: its member (by index), points and recorded_at, spread evenly
# over the month. $1..$3 are shared by every statement that uses it: the month's
# start, seconds between two entries, the number of members.
BATCH_ROWS = """
SELECT g, b.member_id, b.external_id, b.account_id, (1 + (g * 7919) % 200)::bigint AS points,
       $1::timestamptz + (g - 1) * $2::float8 * interval '1 second' AS recorded_at
  FROM generate_series($4::bigint, $5::bigint) AS g
  JOIN bench_member b ON b.idx = g % $3
"""

# Entry ids are UUIDv7 of their recorded_at like the service's (bench/expire.py's form).
UUID7 = """encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) PLACING
       substring(int8send((extract(epoch FROM recorded_at) * 1000)::bigint) FROM 3)
       FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid"""

MEMBERS = """
CREATE TEMP TABLE bench_member AS
SELECT (row_number() OVER (ORDER BY m.id) - 1)::bigint AS idx, m.id AS member_id, m.external_id,
       a.id AS account_id
  FROM member m JOIN account a ON a.program_id = m.program_id AND a.member_id = m.id AND a.kind = 'available'
 WHERE m.program_id = $1;
CREATE UNIQUE INDEX ON bench_member (idx);
CREATE TEMP TABLE bench_batch (g bigint, member_id bigint, external_id text, account_id bigint,
                               points bigint, recorded_at timestamptz, id uuid) ON COMMIT DELETE ROWS;
"""

# The bulk load of one batch, in one transaction: what ledger_post() would write
# for each entry, set-wise (no idempotency record, no paid_order row: neither is
# part of a settlement, and verify holds without them).
BULK = [
    f"INSERT INTO bench_batch SELECT r.*, {UUID7} FROM ({BATCH_ROWS}) r",
    "ANALYZE bench_batch",
    """INSERT INTO journal_entry (id, program_id, kind, occurred_at, recorded_at, idempotency_key,
                           request_fingerprint, reason, order_id, rules_version)
SELECT id, 1, 'earn', recorded_at, recorded_at, 'bench-settle-' || g, 'bench', 'bench partner order',
       'bench-' || g, $1
  FROM bench_batch ORDER BY g""",
    # the member's posting records their balances right after the entry: what they
    # had before the batch plus their entries of the batch so far
    """INSERT INTO posting (program_id, entry_id, account_id, member_id, amount,
                     available_after, pending_after, held_after, recorded_at)
SELECT 1, x.id, x.account_id, x.member_id, x.amount, x.available_after, x.pending_after, x.held_after,
       x.recorded_at
  FROM (SELECT b.g, 1 AS leg, b.id, b.account_id, b.member_id, b.points AS amount,
               mb.available + sum(b.points) OVER (PARTITION BY b.member_id ORDER BY b.g) AS available_after,
               mb.pending AS pending_after, mb.held AS held_after, b.recorded_at
          FROM bench_batch b JOIN member_balance mb ON mb.program_id = 1 AND mb.member_id = b.member_id
        UNION ALL
        SELECT b.g, 2, b.id, $1, NULL, -b.points, NULL, NULL, NULL, b.recorded_at FROM bench_batch b) x
 ORDER BY x.g, x.leg""",
    """UPDATE member_balance mb
   SET available = mb.available + s.points, version = mb.version + s.entries, updated_at = s.last
  FROM (SELECT member_id, sum(points) AS points, count(*) AS entries, max(recorded_at) AS last
          FROM bench_batch GROUP BY member_id) s
 WHERE mb.program_id = 1 AND mb.member_id = s.member_id""",
    """INSERT INTO point_lot (program_id, member_id, entry_id, points, remaining, expires_at)
SELECT 1, member_id, id, points, points, NULL FROM bench_batch ORDER BY g""",
    """INSERT INTO partner_line (program_id, entry_id, partner_id, section, points, rate_id, price_per_point,
                          recorded_at)
SELECT 1, id, $1, 'earn', points, $2, $3, recorded_at FROM bench_batch ORDER BY g""",
    """UPDATE partner_balance
   SET funding = funding - (SELECT sum(points) FROM bench_batch),
       version = version + (SELECT count(*) FROM bench_batch), updated_at = now()
 WHERE program_id = 1 AND partner_id = $1 AND slot = 0""",
]

# The same entries through ledger_post() itself, one call per entry (as a partner
# order's ledger_post_order() makes it, without the paid_order row), in one
# statement: $6 the partner, $7 its rate, $8 the price per point, $9 the rules version.
POSTED = f"""
SELECT count(*) FROM ({BATCH_ROWS}) r
 CROSS JOIN LATERAL ledger_post(
       p_entry_id => {UUID7}, p_program_id => 1, p_kind => 'earn',
       p_idempotency_key => 'bench-settle-' || r.g, p_request_fingerprint => 'bench',
       p_occurred_at => r.recorded_at, p_recorded_at => r.recorded_at, p_actor_key_id => NULL,
       p_reverses_entry_id => NULL, p_reason => 'bench partner order', p_order_id => 'bench-' || r.g,
       p_rules_version => $9, p_expires_at => NULL, p_pending_until => NULL, p_metadata => NULL,
       p_members => ARRAY[r.external_id, NULL], p_accounts => ARRAY['available', 'partner_funding'],
       p_amounts => ARRAY[r.points, -r.points], p_partners => ARRAY[NULL, $6]::bigint[],
       p_partner_line => jsonb_build_object('partner_id', $6::bigint, 'section', 'earn', 'points', r.points,
                                            'rate_id', $7::bigint, 'price_per_point', $8::text)
       ) AS posted
 WHERE NOT posted.replayed
"""

EXPECTED = """
SELECT count(*) AS lines, coalesce(sum(points), 0) AS points,
       coalesce(sum(round(points * price_per_point, 2)), 0) AS money
  FROM partner_line WHERE program_id = 1 AND partner_id = $1 AND recorded_at >= $2 AND recorded_at < $3
"""


@dataclass
class Month:
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def params(self) -> dict[str, str]:
        return {"from": iso(self.start), "to": iso(self.end)}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def previous_month(now: datetime) -> Month:
    end = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return Month((end - timedelta(days=1)).replace(day=1), end)


@dataclass
class Partner:
    id: int
    rate_id: int
    funding_account: int
    rules_version: int


async def prepare_settlement(members: int, month: Month) -> tuple[str, Partner]:
    """A fresh database: members, an admin key, the partner (created the day before
    the month) and its earn rate (in force from then), written with the partners'
    own repository functions."""
    await common.fresh_database(SETTLE_DATABASE)
    connection = await connect(SETTLE_DATABASE)
    try:
        admin = await common.add_api_key(connection, PROGRAM_ID, "bench-admin", ["admin"])
        await common.add_members(connection, PROGRAM_ID, members)
        before = month.start - timedelta(days=1)
        partner_id = await repository.insert_partner(
            connection,
            PROGRAM_ID,
            {
                "code": SETTLED,
                "name": "Bench settled partner",
                "roles": ["earn"],
                "billing": "postpaid",
                "currency": "EUR",
                "credit_limit_points": None,
                "timezone": "UTC",
                "settlement_period": "month",
            },
            before,
        )
        assert partner_id is not None
        rate = await repository.insert_rate(
            connection,
            PROGRAM_ID,
            partner_id,
            {
                "kind": "earn",
                "effective_from": before,
                "price_per_point": PRICE_PER_POINT,
                "partner_units_per_point": None,
                "min_points": None,
                "increment": None,
                "rounding": "floor",
            },
            before,
        )
        assert rate is not None
        funding_account = await connection.fetchval(
            "SELECT id FROM account WHERE partner_id = $1 AND kind = 'partner_funding'", partner_id
        )
        rules_version = await connection.fetchval(
            "SELECT version FROM rules_version WHERE program_id = $1 AND active", PROGRAM_ID
        )
    finally:
        await connection.close()
    return admin, Partner(partner_id, rate["id"], funding_account, rules_version)


@dataclass
class Load:
    bulk_entries: int
    bulk_seconds: float
    posted_entries: int
    posted_seconds: float
    vacuum_seconds: float
    database_mib: float


async def load(args: argparse.Namespace, month: Month, partner: Partner) -> Load:
    bulk_count = args.entries - args.post_sample
    step = month.seconds / args.entries
    connection = await connect(SETTLE_DATABASE)
    try:
        await connection.execute(MEMBERS.replace("$1", str(PROGRAM_ID)))
        shared = (month.start, step, args.settle_members)
        began = time.monotonic()
        for first in range(1, bulk_count + 1, args.batch):
            last = min(bulk_count, first + args.batch - 1)
            async with connection.transaction():
                await connection.execute(BULK[0], *shared, first, last)
                await connection.execute(BULK[1])
                await connection.execute(BULK[2], partner.rules_version)
                await connection.execute(BULK[3], partner.funding_account)
                await connection.execute(BULK[4])
                await connection.execute(BULK[5])
                await connection.execute(BULK[6], partner.id, partner.rate_id, PRICE_PER_POINT)
                await connection.execute(BULK[7], partner.id)
            print(f"  bulk-loaded entries {first}..{last} ({time.monotonic() - began:.1f} s)", flush=True)
        bulk_seconds = time.monotonic() - began
        began = time.monotonic()
        for first in range(bulk_count + 1, args.entries + 1, args.post_batch):
            last = min(args.entries, first + args.post_batch - 1)
            async with connection.transaction():
                posted = await connection.fetchval(
                    POSTED,
                    *shared,
                    first,
                    last,
                    partner.id,
                    partner.rate_id,
                    str(PRICE_PER_POINT),
                    partner.rules_version,
                )
            assert posted == last - first + 1, posted
        posted_seconds = time.monotonic() - began
        if args.post_sample:
            print(f"  posted {args.post_sample} entries through ledger_post() ({posted_seconds:.1f} s)")
        began = time.monotonic()
        for table in ("journal_entry", "posting", "point_lot", "partner_line", "member_balance"):
            await connection.execute(f"VACUUM (ANALYZE) {table}")
        vacuum_seconds = time.monotonic() - began
        size = await connection.fetchval("SELECT pg_database_size(current_database())")
    finally:
        await connection.close()
    return Load(bulk_count, bulk_seconds, args.post_sample, posted_seconds, vacuum_seconds, size / 2**20)


def status_mib(pid: int, field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of process `pid`, MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak(pid: int) -> bool:
    """Linux resets a process's VmHWM on writing 5 to its clear_refs."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


@dataclass
class Timed:
    seconds: float
    rss_before: float  # MiB, the service's VmRSS before
    peak: float  # its VmHWM after (peak since the reset before), MiB
    resettable: bool
    outcome: Any = None

    @property
    def growth(self) -> float:
        return self.peak - self.rss_before


async def timed(pid: int, work: Callable[[], Awaitable[T]]) -> Timed:
    resettable = reset_peak(pid)
    rss_before = status_mib(pid, "VmRSS")
    began = time.monotonic()
    outcome = await work()
    seconds = time.monotonic() - began
    return Timed(seconds, rss_before, status_mib(pid, "VmHWM"), resettable, outcome)


@dataclass
class Settled:
    expected: dict[str, Any]
    settlements: list[Timed]
    in_process_seconds: float
    in_process_peak_mib: float
    csv: Timed
    csv_rows: int
    csv_mib: float
    chain_seconds: float
    chained: int
    unchained: Verified | None
    # closing the month's statement: each attempt (the statement timeout it ran
    # with, its time and memory, and its answer or error), then verify
    closes: list[tuple[str, Timed]] = field(default_factory=list)
    verified: Verified | None = None


async def derive_in_process(month: Month) -> tuple[float, float, int]:
    """settlement.settlement() called in this process under tracemalloc: its time
    (slowed by the tracing), the peak Python memory, the lines it read."""
    url = common.database_url(SETTLE_DATABASE)
    settings = Settings(env=Environment.test, database_url=url, db_pool_size=2)
    db = Database(url, settings)
    await db.connect()
    try:
        context = AppContext(
            settings=settings,
            db=db,
            clock=SystemClock(),
            auth=Authenticator(db.pool, admin_key=None, cache_seconds=0),
            rules=RulesCache(),
        )
        async with db.pool.acquire() as connection:
            partner = await repository.partner(connection, PROGRAM_ID, SETTLED)
        assert partner is not None
        tracemalloc.start()
        began = time.monotonic()
        derived = await settlement.settlement(context, PROGRAM_ID, partner, month.start, month.end)
        seconds = time.monotonic() - began
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        await db.dispose()
    return seconds, peak / 2**20, derived.lines_count


async def chain_everything() -> tuple[int, float]:
    url = common.database_url(SETTLE_DATABASE)
    db = Database(url, Settings(env=Environment.test, database_url=url, db_pool_size=2))
    await db.connect()
    try:
        began = time.monotonic()
        chained = await chain.chain_all(db, datetime.now(UTC))
        return chained, time.monotonic() - began
    finally:
        await db.dispose()


async def settle(args: argparse.Namespace, month: Month, admin: str, pid: int) -> Settled:
    connection = await connect(SETTLE_DATABASE)
    try:
        row = await connection.fetchrow(
            EXPECTED,
            await connection.fetchval("SELECT id FROM partner WHERE code = $1", SETTLED),
            month.start,
            month.end,
        )
        assert row is not None
        expected = dict(row.items())
    finally:
        await connection.close()
    base = f"/v1/partners/{SETTLED}"
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{SETTLE_PORT}", timeout=httpx.Timeout(1800)
    ) as client:
        # warm up: a day's settlement (imports, caches, the key)
        day = {"from": iso(month.start), "to": iso(month.start + timedelta(days=1))}
        await call(client, "GET", f"{base}/settlement", admin, params=day)

        async def derive() -> Any:
            return await call(client, "GET", f"{base}/settlement", admin, params=month.params())

        settlements: list[Timed] = []
        for number in range(args.settlement_runs):
            found = await timed(pid, derive)
            body = found.outcome
            earn = body["sections"]["earn"]
            got = (body["lines_count"], earn["points"], Decimal(earn["money"]["amount"]))
            wanted = (expected["lines"], expected["points"], expected["money"])
            if got != wanted:
                raise SystemExit(f"the settlement says {got}, the lines in SQL {wanted}")
            settlements.append(found)
            print(
                f"  settlement {number + 1}: {found.seconds:.2f} s, peak RSS growth {found.growth:.1f} MiB",
                flush=True,
            )

        seconds, peak, lines = await derive_in_process(month)
        assert lines == expected["lines"]
        print(f"  in-process settlement() under tracemalloc: {seconds:.2f} s, peak {peak:.1f} MiB")

        async def export() -> tuple[int, int]:
            rows = size = 0
            async with client.stream(
                "GET",
                f"{base}/settlement/lines",
                params={**month.params(), "format": "csv"},
                headers=headers(admin),
            ) as response:
                if response.status_code != 200:
                    raise SystemExit(f"CSV export: {response.status_code} {(await response.aread())[:300]!r}")
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    rows += chunk.count(b"\n")
            return rows - 1, size  # less the header

        csv = await timed(pid, export)
        csv_rows, csv_bytes = csv.outcome
        if csv_rows != expected["lines"]:
            raise SystemExit(f"the CSV has {csv_rows} lines, SQL {expected['lines']}")
        print(f"  CSV export: {csv.seconds:.1f} s, {csv_rows} lines, {csv_bytes / 2**20:.0f} MiB", flush=True)

        unchained = None
        if args.verify_before_chain:
            print("  verifying before the chain has taken any entry...", flush=True)
            unchained = await verify_all(SETTLE_DATABASE)
            print(f"  {verdict(unchained)} ({unchained.seconds:.1f} s)", flush=True)
        chained, chain_seconds = await chain_everything()
        print(f"  chained {chained} entries in {chain_seconds:.1f} s", flush=True)

    return Settled(
        expected,
        settlements,
        seconds,
        peak,
        csv,
        csv_rows,
        csv_bytes / 2**20,
        chain_seconds,
        chained,
        unchained,
    )


def run_settlement(args: argparse.Namespace) -> tuple[Load, Settled, Month]:
    month = previous_month(datetime.now(UTC))
    admin, partner = asyncio.run(prepare_settlement(args.settle_members, month))
    print(
        f"loading {args.entries} partner entries over {iso(month.start)} .. {iso(month.end)}"
        f" ({args.entries - args.post_sample} in bulk, {args.post_sample} through ledger_post())",
        flush=True,
    )
    loaded = asyncio.run(load(args, month, partner))
    env = service_env(SETTLE_DATABASE, args.connections, background=False)
    service = start("app.asgi:app", SETTLE_PORT, env)
    try:
        settled = asyncio.run(settle(args, month, admin, service.pid))
        closed = asyncio.run(timed(service.pid, lambda: close_statement(admin, month)))
        default = Settings.model_fields["db_statement_timeout_ms"].default
        timeout_ms = os.environ.get("LEDGER_DB_STATEMENT_TIMEOUT_MS", default)
        settled.closes.append((f"statement timeout {timeout_ms} ms", closed))
    finally:
        stop(service)
    if closed.outcome[0] >= 300 and args.retry_timeout_ms:
        # refused, most likely by the statement timeout: again with a longer one, labelled
        print(f"  closing failed ({closed.outcome[1][:200]}); again with a longer statement timeout")
        env["LEDGER_DB_STATEMENT_TIMEOUT_MS"] = str(args.retry_timeout_ms)
        service = start("app.asgi:app", SETTLE_PORT, env)
        try:
            closed = asyncio.run(timed(service.pid, lambda: close_statement(admin, month)))
            settled.closes.append((f"LEDGER_DB_STATEMENT_TIMEOUT_MS={args.retry_timeout_ms}", closed))
        finally:
            stop(service)
    status, body = closed.outcome
    if status < 300 and body["lines_count"] != settled.expected["lines"]:
        raise SystemExit(f"the statement claimed {body['lines_count']} lines")
    print("verifying the settlement database...", flush=True)
    settled.verified = asyncio.run(verify_all(SETTLE_DATABASE))
    return loaded, settled, month


async def close_statement(admin: str, month: Month) -> tuple[int, Any]:
    """POST .../statements closing the month: (status, JSON body or the error's text)."""
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{SETTLE_PORT}", timeout=httpx.Timeout(1800)
    ) as client:
        response = await client.post(
            f"/v1/partners/{SETTLED}/statements",
            json={"period_end": iso(month.end)},
            headers=headers(admin),
        )
    if response.status_code >= 300:
        return response.status_code, f"{response.status_code} {response.text[:160]}"
    print(f"  statement closed ({response.json()['lines_count']} lines)", flush=True)
    return response.status_code, response.json()


def settlement_report(loaded: Load, settled: Settled, month: Month, args: argparse.Namespace) -> list[str]:
    n = args.entries
    lines = [
        f"{n} partner earn entries of one postpaid partner, {args.settle_members} members,"
        f" recorded {iso(month.start)} .. {iso(month.end)}; database {loaded.database_mib:.0f} MiB",
        f"load: {loaded.bulk_entries} in bulk SQL in {loaded.bulk_seconds:.1f} s"
        f" ({loaded.bulk_entries / loaded.bulk_seconds:.0f} entries/s, batches of {args.batch})",
    ]
    if loaded.posted_entries:
        rate = loaded.posted_entries / loaded.posted_seconds
        lines.append(
            f"      {loaded.posted_entries} through ledger_post() in {loaded.posted_seconds:.1f} s"
            f" ({rate:.0f} entries/s); EXTRAPOLATED, not measured: all {n} through ledger_post()"
            f" ~{n / rate / 60:.1f} min"
        )
    lines.append(f"      VACUUM (ANALYZE) afterwards: {loaded.vacuum_seconds:.1f} s")
    times = [t.seconds for t in settled.settlements]
    growth = [t.growth for t in settled.settlements]
    e = settled.expected
    lines += [
        f"GET settlement, whole month ({e['lines']} lines, {int(e['points'])} points, {e['money']} EUR,"
        f" checked against SQL): median {statistics.median(times):.2f} s of {len(times)}"
        f" ({', '.join(f'{t:.2f}' for t in times)});"
        f" service peak RSS growth max {max(growth):.1f} MiB",
        f"settlement() in this process under tracemalloc: {settled.in_process_seconds:.2f} s (slowed by"
        f" tracing), peak Python memory {settled.in_process_peak_mib:.1f} MiB",
        f"GET settlement/lines?format=csv, streamed: {settled.csv.seconds:.1f} s for {settled.csv_rows} lines"
        f" ({settled.csv_mib:.0f} MiB, {settled.csv_rows / settled.csv.seconds:.0f} lines/s);"
        f" service peak RSS growth {settled.csv.growth:.1f} MiB",
        f"chain_all over the {settled.chained} entries (needed before a statement claims them):"
        f" {settled.chain_seconds:.1f} s"
        f" ({settled.chained / max(settled.chain_seconds, 1e-9):.0f} entries/s)",
    ]
    for how, closed in settled.closes:
        status, body = closed.outcome
        what = f"claimed {body['lines_count']} lines" if status < 300 else f"FAILED: {body}"
        lines.append(
            f"POST statements over the month ({how}): {closed.seconds:.1f} s, {what};"
            f" service peak RSS growth {closed.growth:.1f} MiB"
        )
    if settled.verified is not None:
        lines.append(
            f"verify ({SETTLE_DATABASE}, ledger + partner checks) after the statement:"
            f" {settled.verified.seconds:.1f} s, {verdict(settled.verified)}"
        )
    if settled.unchained is not None:
        lines.append(
            f"verify before chaining (every entry unchained): {settled.unchained.seconds:.1f} s,"
            f" {verdict(settled.unchained)}"
        )
    if not all(t.resettable for t in [*settled.settlements, settled.csv] + [c for _, c in settled.closes]):
        lines.append("(VmHWM could not be reset: peak growth is against the process's earlier peak)")
    return lines


# ---------------------------------------------------------------- main


def machine_notes(started: float, load_before: tuple[float, float, float]) -> list[str]:
    return [
        f"machine: {os.cpu_count()} cores ({platform.machine()}), load average before {load_before[0]:.2f},"
        f" after {os.getloadavg()[0]:.2f}; service, PostgreSQL 15 and wrk share it; the machine is shared"
        " and noisy: compare ratios from one run, not absolute figures across runs",
        f"whole run: {(time.monotonic() - started) / 60:.1f} min",
    ]


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a short run to try the script")
    parser.add_argument("--part", choices=("both", "orders", "settlement"), default="both")
    group = parser.add_argument_group("part 1, orders")
    group.add_argument("--members", type=int, default=2_000)
    group.add_argument("--connections", type=int, default=16, help="wrk connections (and service pool)")
    group.add_argument("--seconds", type=int, default=10, help="length of one measured round")
    group.add_argument("--rounds", type=int, default=3, help="alternating rounds per target")
    group.add_argument("--prepaid-rounds", type=int, default=1)
    group.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per target")
    group = parser.add_argument_group("part 2, settlement")
    group.add_argument("--entries", type=int, default=1_000_000)
    group.add_argument("--settle-members", type=int, default=10_000)
    group.add_argument("--batch", type=int, default=100_000, help="bulk-loaded entries per transaction")
    group.add_argument(
        "--post-sample", type=int, default=20_000, help="entries (of --entries) posted by ledger_post()"
    )
    group.add_argument("--post-batch", type=int, default=5_000, help="ledger_post() calls per transaction")
    group.add_argument("--settlement-runs", type=int, default=3)
    group.add_argument(
        "--retry-timeout-ms",
        type=int,
        default=600_000,
        help="if closing the statement fails, retry once with this LEDGER_DB_STATEMENT_TIMEOUT_MS (0: no)",
    )
    group.add_argument(
        "--no-verify-before-chain",
        dest="verify_before_chain",
        action="store_false",
        help="skip verify between the load and the chain (it shows unchained entries pass)",
    )
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds, args.warmup = 4, 3, 2
        args.entries, args.post_sample, args.batch = 50_000, 2_000, 25_000
    args.post_sample = min(args.post_sample, args.entries)
    if args.rounds < 1 or args.settlement_runs < 1 or args.entries < 1:
        raise SystemExit("--rounds, --settlement-runs and --entries must be at least 1")
    return args


def main() -> None:
    args = parse()
    if args.part != "settlement" and shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    started, load_before = time.monotonic(), os.getloadavg()
    summary: list[str] = []
    if args.part != "settlement":
        print("== part 1: partner orders against the program's orders", flush=True)
        summary += ["-- orders --", *orders_report(run_orders(args), args)]
    if args.part != "orders":
        print("== part 2: settlement", flush=True)
        loaded, settled, month = run_settlement(args)
        summary += ["-- settlement --", *settlement_report(loaded, settled, month, args)]
    summary += machine_notes(started, load_before)
    print("\n==== bench.partners summary" + (" (--quick)" if args.quick else "") + " ====")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
