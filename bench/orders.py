"""The checkout's own call: `POST /v1/orders` against the awards endpoint and the bare
endpoint, in one run.

One fresh database, 2,000 members spread over two tiers (a third in none, a third
silver, a third gold), and a realistic rules document: four multipliers (weekend,
big order, shoes, gold), a first-order bonus, caps, rolling expiry, two tiers.
Then:
1. wrk at 16 connections drives three targets in turn, several rounds, rotating
   the order: the bare FastAPI+asyncpg earn of bench/bare_app.py, the service's
   awards, the service's orders (each order two lines and a channel). Medians of
   req/s and the ratios orders/awards, awards/bare, orders/bare.
2. A constant-rate run (bench/pace.py: open loop, latency from each request's due
   instant) at half the bare endpoint's median maximum (or --paced-rate), for each
   target: p50/p99.
3. `verify` over everything the run wrote.

With `--budget`, the rounds compare the same orders in two programs instead: one
with the rules above (`orders`), one whose `shoes` multiplier, which every order
meets, carries a campaign budget far larger than the run spends (`budgeted`): every
budgeted order takes its points from the budget's slices in its own statement. It
prints the ratio budgeted/orders and the CPU per request of each (no paced runs).

Beside each wrk round it reads the CPU time the serving processes and the
database's backends spent (from /proc), per request: unlike req/s, CPU per
request barely moves when another job shares the machine, so it says where a
change saved work.

    uv run python -m bench.orders               # needs wrk (apt-get install wrk); about 5 minutes
    uv run python -m bench.orders --quick       # about 2 minutes
    uv run python -m bench.orders --budget      # orders with and without a budgeted multiplier
    uv run python -m bench.orders --group-commit  # awards and orders with group commit off and on

Each server runs `--workers` uvicorn processes (default 2, as in the issue's
measurement). The chainer and the webhook dispatcher do not run meanwhile
(`--background serve` puts them inside the service; bench/events.py measures
their cost). Only 127.0.0.1 is ever targeted.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import shutil
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from app.db import asyncpg_dsn
from bench import awards, common, pace

DATABASE = "points_ledger_bench_orders"
PORTS = {"bare": 8711, "service": 8712, "grouped": 8713}
TARGETS = ("bare", "awards", "orders")
# --group-commit: awards and orders against a service with LEDGER_GROUP_COMMIT=false
# (`awards`, `orders`) and a second one with it true (`awards-gc`, `orders-gc`)
GROUPED_TARGETS = ("bare", "awards", "awards-gc", "orders", "orders-gc")
BUDGET_TARGETS = ("orders", "budgeted")
# Larger than any run spends: the bench measures taking from a budget, not skipping a rule.
BUDGET_POINTS = 10**12

RULES: dict[str, Any] = {
    "timezone": "Europe/Paris",
    "currency": "EUR",
    "earn": {
        "base": {"points": 1, "per": "1.00", "rounding": "floor"},
        "multipliers": [
            {"id": "weekend", "factor": "1.5", "when": {"weekday": [6, 7]}},
            {"id": "big-order", "factor": "2", "when": {"order_total_gte": "150.00"}},
            {"id": "shoes", "factor": "3", "when": {"category": ["shoes"]}},
            {"id": "gold", "factor": "1.5", "when": {"tier": ["gold"]}},
        ],
        "stacking": "multiply",
        "bonuses": [{"id": "first-order", "points": 100, "when": {"first_order": True}}],
        "caps": {"per_order": 5000, "per_member_per_day": 10000},
    },
    "expiry": {"policy": "rolling", "months": 12},
    "tiers": [
        {"code": "silver", "name": "Silver", "rank": 1, "qualify": {"orders": 5}, "retain": {"orders": 3}},
        {
            "code": "gold",
            "name": "Gold",
            "rank": 2,
            "qualify": {"orders": 20, "spend": "200.00"},
            "retain": {"orders": 12},
        },
    ],
    "tier_policy": {
        "window": "rolling_12_months",
        "term_months": 12,
        "downgrade": "one_down",
        "grace_days": 30,
    },
}

# A third of the members hold no tier, a third silver, a third gold (the top: an
# order of theirs needs no upgrade check), each since a day of the last month.
SEED_TIERS = """
INSERT INTO member_tier (member_id, program_id, tier_code, since, term_ends_at, rules_version, updated_at)
SELECT m.id, m.program_id, (ARRAY['silver', 'gold'])[m.id % 3], s.since, s.since + interval '12 months', $1,
       s.since
  FROM member m
 CROSS JOIN LATERAL (SELECT now() - (m.id % 30) * interval '1 day' AS since) s
 WHERE m.program_id = $2 AND m.id % 3 IN (1, 2)
"""


def budgeted_rules() -> dict[str, Any]:
    """RULES with a campaign budget on the shoes multiplier (every bench order has shoes)."""
    rules: dict[str, Any] = json.loads(json.dumps(RULES))
    for multiplier in rules["earn"]["multipliers"]:
        if multiplier["id"] == "shoes":
            multiplier["budget"] = {"points": BUDGET_POINTS}
    return rules


async def prepare(members: int) -> tuple[str, str]:
    """A fresh database with the members; an admin key and a checkout's key."""
    await common.fresh_database(DATABASE)
    connection = await asyncpg.connect(asyncpg_dsn(common.database_url(DATABASE)))
    try:
        admin = await common.add_api_key(connection, 1, "bench-admin", ["admin"])
        checkout = await common.add_api_key(connection, 1, "bench-checkout", ["points:earn", "points:adjust"])
        await common.add_members(connection, 1, members)
    finally:
        await connection.close()
    return admin, checkout


async def budgeted_program(admin: str, members: int) -> str:
    """A second program, with the same members, whose rules budget the shoes
    multiplier; its checkout's key."""
    headers = {"Authorization": f"Bearer {admin}", "Idempotency-Key": str(uuid.uuid4())}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{PORTS['service']}", timeout=30) as client:
        created = await client.post(
            "/v1/programs", json={"code": "budgeted", "name": "Budgeted"}, headers=headers
        )
        created.raise_for_status()
        program_admin = created.json()["admin_key"]
    connection = await asyncpg.connect(asyncpg_dsn(common.database_url(DATABASE)))
    try:
        program_id = await connection.fetchval("SELECT id FROM program WHERE code = 'budgeted'")
        checkout = await common.add_api_key(
            connection, program_id, "bench-checkout", ["points:earn", "points:adjust"]
        )
        await common.add_members(connection, program_id, members)
    finally:
        await connection.close()
    await activate_rules(program_admin, budgeted_rules(), program_id)
    return str(checkout)


async def activate_rules(admin: str, rules: dict[str, Any] | None = None, program_id: int = 1) -> None:
    """The rules through the API, then the tiers seeded under that version."""
    headers = {"Authorization": f"Bearer {admin}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{PORTS['service']}", timeout=30) as client:
        created = await client.post(
            "/v1/rules", json=rules or RULES, headers={**headers, "Idempotency-Key": str(uuid.uuid4())}
        )
        created.raise_for_status()
        version = created.json()["version"]
        activated = await client.post(
            f"/v1/rules/{version}/activate",
            json={},
            headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
        )
        activated.raise_for_status()
    connection = await asyncpg.connect(asyncpg_dsn(common.database_url(DATABASE)))
    try:
        await connection.execute(SEED_TIERS, version, program_id)
        await connection.execute("VACUUM (ANALYZE)")
    finally:
        await connection.close()


def paid_at() -> str:
    # A weekday's order most of the time would depend on the day the bench runs;
    # an instant a minute ago is what a checkout sends.
    return (datetime.now(UTC) - timedelta(minutes=1)).isoformat(timespec="seconds")


def wrk_env(target: str, members: int, key: str, run: str) -> dict[str, str]:
    env = {"BENCH_MEMBERS": str(members), "BENCH_API_KEY": key, "BENCH_RUN": run, "BENCH_PAID_AT": paid_at()}
    if target == "bare":
        return {**env, **awards.BARE_PATHS}
    if target in ("awards", "awards-gc"):
        return {**env, **awards.SERVICE_PATHS}
    return env


def target_port(target: str) -> int:
    if target == "bare":
        return PORTS["bare"]
    return PORTS["grouped"] if target.endswith("-gc") else PORTS["service"]


def script(target: str) -> str:
    return "orders.lua" if target.startswith(("orders", "budgeted")) else "awards.lua"


def paced_requests(target: str, members: int, key: str) -> Any:
    """A function making each next request of `target` (unique ids) for bench/pace.py."""
    port = target_port(target)
    counter = itertools.count()
    run = uuid.uuid4().hex[:8]
    when = paid_at()

    def make() -> bytes:
        number = next(counter)
        member = f"m-{random.randint(1, members)}"
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {key}",
            "Idempotency-Key": f"pace-{run}-{number}",
        }
        if target.startswith("orders"):
            shoes, shirt = random.randint(20, 180), random.randint(5, 40)
            body: dict[str, Any] = {
                "order_id": f"pace-{run}-{number}",
                "member": member,
                "total": {"amount": f"{shoes + 2 * shirt}.00", "currency": "EUR"},
                "lines": [
                    {
                        "sku": "SHOE-1",
                        "category": "shoes",
                        "quantity": 1,
                        "unit_price": {"amount": f"{shoes}.00", "currency": "EUR"},
                    },
                    {
                        "sku": "TEE-2",
                        "category": "apparel",
                        "quantity": 2,
                        "unit_price": {"amount": f"{shirt}.00", "currency": "EUR"},
                    },
                ],
                "channel": random.choice(["app", "web"]),
                "paid_at": when,
            }
            path = "/v1/orders"
        else:
            body = {"points": 10, "reason": "bench"}
            path = f"/awards/{member}" if target == "bare" else f"/v1/members/{member}/awards"
        return pace.request_bytes("POST", path, port, headers, json.dumps(body).encode())

    return make


def cpu_round(
    target: str, port: int, env: dict[str, str], seconds: int, connections: int, server: int, database: str
) -> tuple[awards.Round, float, float]:
    """One wrk round of `target` and the CPU milliseconds per request the serving
    processes (`server` and its workers) and the database's backends spent on it."""
    server_before = common.server_cpu(server)
    database_before = asyncio.run(common.backends_cpu(database))
    result = awards.drive(target, port, env, seconds, connections, script(target))
    served = result.requests_per_second * seconds
    return (
        result,
        (common.server_cpu(server) - server_before) * 1000 / served,
        (asyncio.run(common.backends_cpu(database)) - database_before) * 1000 / served,
    )


def main() -> None:
    # several people may benchmark on one machine and one PostgreSQL server: --database, --port
    global DATABASE
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=2_000)
    parser.add_argument(
        "--database", default=DATABASE, help=f"the bench database, dropped and made anew (default {DATABASE})"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=PORTS["bare"],
        help=f"the bare endpoint's port; the service listens on the next one (default {PORTS['bare']})",
    )
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes per server")
    parser.add_argument("--seconds", type=int, default=10, help="length of one wrk round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--paced-seconds", type=int, default=15, help="length of each constant-rate run")
    parser.add_argument(
        "--background",
        choices=["serve", "off"],
        default="off",
        help="off (default): no chainer or webhook dispatcher while measuring (bench/events.py measures "
        "what they cost; inside serve they would also chain the bare endpoint's entries during its "
        "rounds); serve: inside the service, as LEDGER_SERVE_BACKGROUND=true runs them",
    )
    parser.add_argument(
        "--paced-rate",
        type=float,
        help="requests per second of the constant-rate runs (default: half the bare median), "
        "to compare two runs at one rate",
    )
    parser.add_argument("--quick", action="store_true", help="5-second rounds, 2 rounds, 8-second paced runs")
    parser.add_argument(
        "--budget",
        action="store_true",
        help="compare orders without and with a budgeted multiplier (two programs), not bare/awards/orders",
    )
    parser.add_argument(
        "--group-commit",
        action="store_true",
        help="also awards and orders against a second service with group commit on "
        "(targets awards-gc, orders-gc)",
    )
    args = parser.parse_args()
    DATABASE = args.database
    PORTS.update(bare=args.port, service=args.port + 1, grouped=args.port + 2)
    if args.quick:
        args.seconds, args.rounds, args.paced_seconds = 5, 2, 8
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")

    admin, checkout = asyncio.run(prepare(args.members))
    pool = str(max(4, args.connections // args.workers))
    service_env = {
        "LEDGER_DATABASE_URL": common.database_url(DATABASE),
        "LEDGER_ENV": "production",
        "LEDGER_DB_POOL_SIZE": pool,
        "LEDGER_SERVE_BACKGROUND": "true" if args.background == "serve" else "false",
    }
    if args.group_commit:
        service_env["LEDGER_GROUP_COMMIT"] = "false"
    bare_env = {"BENCH_DSN": asyncpg_dsn(common.database_url(DATABASE)), "BENCH_POOL": pool}
    processes = [awards.start("bench.bare_app:app", PORTS["bare"], bare_env, args.workers)]
    try:
        processes.append(awards.start("app.asgi:app", PORTS["service"], service_env, args.workers))
        if args.group_commit:
            grouped_env = {**service_env, "LEDGER_GROUP_COMMIT": "true"}
            processes.append(awards.start("app.asgi:app", PORTS["grouped"], grouped_env, args.workers))
    except BaseException:
        for process in processes:  # not left running, holding its port, for the next run to meet
            awards.stop(process)
        raise
    targets = BUDGET_TARGETS if args.budget else GROUPED_TARGETS if args.group_commit else TARGETS
    server_of = {"bare": 0, "awards-gc": 2, "orders-gc": 2}
    rounds: list[awards.Round] = []
    cpu: dict[str, list[tuple[float, float]]] = {target: [] for target in targets}  # ms/request
    paced: dict[str, pace.Paced] = {}
    run_ids = (f"r{number}-{uuid.uuid4().hex[:6]}" for number in itertools.count())
    keys = dict.fromkeys(targets, checkout)
    try:
        asyncio.run(activate_rules(admin))
        if args.budget:
            keys["budgeted"] = asyncio.run(budgeted_program(admin, args.members))
        for target in targets:  # warm up each
            env = wrk_env(target, args.members, keys[target], next(run_ids))
            awards.drive(target, target_port(target), env, 3, args.connections, script(target))
        for number in range(args.rounds):
            turn = number % len(targets)
            order = targets[turn:] + targets[:turn]
            for target in order:
                common.settle(DATABASE)
                env = wrk_env(target, args.members, keys[target], next(run_ids))
                server = processes[server_of.get(target, 1)].pid
                wrk_round, service_ms, database_ms = cpu_round(
                    target, target_port(target), env, args.seconds, args.connections, server, DATABASE
                )
                rounds.append(wrk_round)
                cpu[target].append((service_ms, database_ms))
                print(
                    f"round {number + 1} {target:9s} {rounds[-1].requests_per_second:8.0f} req/s", flush=True
                )
        if args.budget:
            budget_report(args, rounds, cpu)
            return
        bare_max = statistics.median(r.requests_per_second for r in rounds if r.target == "bare")
        rate = args.paced_rate or bare_max / 2
        for target in targets:
            common.settle(DATABASE)
            make = paced_requests(target, args.members, checkout)
            paced[target] = asyncio.run(
                pace.run(target_port(target), rate, args.paced_seconds, args.connections, make)
            )
            print(f"paced {target:9s} at {rate:.0f} req/s done", flush=True)
            time.sleep(1)
    finally:
        for process in processes:
            awards.stop(process)

    print(
        f"\n{args.members} members, {args.connections} connections, {args.workers} workers per server, "
        f"{args.rounds} rounds of {args.seconds}s, chainer {args.background}"
    )
    medians = awards.report(rounds, list(targets), width=9)
    print(f"ratio orders/awards: {medians['orders'] / medians['awards']:.2f}")
    print(f"ratio awards/bare:   {medians['awards'] / medians['bare']:.2f}")
    print(f"ratio orders/bare:   {medians['orders'] / medians['bare']:.2f}")
    if "awards-gc" in medians:
        print("with group commit (awards-gc, orders-gc):")
        print(f"ratio orders/awards: {medians['orders-gc'] / medians['awards-gc']:.2f}")
        print(f"ratio awards/bare:   {medians['awards-gc'] / medians['bare']:.2f}")
        print(f"ratio orders/bare:   {medians['orders-gc'] / medians['bare']:.2f}")
        print(f"awards-gc/awards {medians['awards-gc'] / medians['awards']:.2f}, ", end="")
        print(f"orders-gc/orders {medians['orders-gc'] / medians['orders']:.2f}")
    print("\nCPU per request, ms (medians of the rounds): the serving processes, PostgreSQL's backends")
    for target in targets:
        service_ms = statistics.median([server for server, _ in cpu[target]])
        database_ms = statistics.median([database for _, database in cpu[target]])
        print(f"{target:9s} {service_ms:6.3f} {database_ms:6.3f}  total {service_ms + database_ms:6.3f}")
    chosen = "as asked" if args.paced_rate else "half the bare median"
    print(f"\nconstant rate {rate:.0f} req/s ({chosen}) for {args.paced_seconds}s each:")
    print(f"{'target':9s} {'sent/s':>7s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s} {'errors':>7s}")
    for target, result in paced.items():
        latencies = result.latencies_ms
        print(
            f"{target:9s} {result.achieved:7.0f} {common.percentile(latencies, 0.5):8.2f} "
            f"{common.percentile(latencies, 0.99):8.2f} {max(latencies, default=float('nan')):8.2f} "
            f"{result.errors:7d}"
        )
    print(
        "verify after the run:",
        "ledger is sound" if asyncio.run(common.sound(DATABASE)) else "MISMATCHES (run points-ledger verify)",
    )


def budget_report(
    args: argparse.Namespace, rounds: list[awards.Round], cpu: dict[str, list[tuple[float, float]]]
) -> None:
    print(
        f"\n{args.members} members, {args.connections} connections, {args.workers} workers per server, "
        f"{args.rounds} rounds of {args.seconds}s, budgeted: the shoes multiplier, {BUDGET_POINTS} points"
    )
    medians = awards.report(rounds, list(BUDGET_TARGETS), width=9)
    print(f"ratio budgeted/orders: {medians['budgeted'] / medians['orders']:.2f}")
    print(
        "  round by round:",
        " ".join(
            f"{b.requests_per_second / o.requests_per_second:.2f}"
            for o, b in zip(
                [r for r in rounds if r.target == "orders"],
                [r for r in rounds if r.target == "budgeted"],
                strict=True,
            )
        ),
    )
    print("\nCPU per request, ms (medians of the rounds): the serving processes, PostgreSQL's backends")
    totals = {}
    for target in BUDGET_TARGETS:
        service_ms = statistics.median([server for server, _ in cpu[target]])
        database_ms = statistics.median([database for _, database in cpu[target]])
        totals[target] = service_ms + database_ms
        print(f"{target:9s} {service_ms:6.3f} {database_ms:6.3f}  total {totals[target]:6.3f}")
    print(f"CPU per request, orders/budgeted: {totals['orders'] / totals['budgeted']:.2f}")


if __name__ == "__main__":
    main()
