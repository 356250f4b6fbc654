"""Two states of the database's own code, taking turns under one running service:
the CPU PostgreSQL spends per award or per order in each.

A change to a function in app/sql/ moves PostgreSQL's CPU per request by a few
percent, below what two separate `bench.orders` runs on a shared machine can
tell apart (their CPU per request has moved 44% between runs). Here one service
and one database serve every round; before each round the bench applies the
state's SQL (an `ALTER FUNCTION`, a `CREATE OR REPLACE`: PostgreSQL then drops
every connection's cached plans of what changed), then VACUUM (ANALYZE), then
drives wrk. The states take turns, their order reversed every other round, and
the medians are printed with their ratio.

    uv run python -m bench.sql_ab --target awards \\
        --a "ALTER FUNCTION ledger_rfc3339(timestamptz) IMMUTABLE" \\
        --b "ALTER FUNCTION ledger_rfc3339(timestamptz) STABLE"

`--a` and `--b` take statements separated by `;;` (or `@file.sql`, run as one
statement). The database is dropped and made anew (2,000 members and the rules of
bench/orders.py); leave it as the migrations do by making the last state the
current definition. Only 127.0.0.1 is targeted. Needs wrk.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import uuid
from pathlib import Path

import asyncpg

from app.db import asyncpg_dsn
from bench import awards, common, orders

PORT = 8751  # bench.reports has 8741


def statements(spec: str) -> list[str]:
    if spec.startswith("@"):
        return [Path(spec[1:]).read_text()]
    return [part for part in (piece.strip() for piece in spec.split(";;")) if part]


async def apply(database: str, sql: list[str]) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(common.database_url(database)))
    try:
        for statement in sql:
            await connection.execute(statement)
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", choices=["awards", "orders"], default="awards")
    parser.add_argument("--a", required=True, help="SQL giving state A (';;' between statements, or @file)")
    parser.add_argument("--b", required=True, help="SQL giving state B (applied last: leave it current)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each state")
    parser.add_argument("--seconds", type=int, default=8, help="length of one wrk round")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--database", default="points_ledger_bench_sql_ab", help="dropped and made anew at the start"
    )
    parser.add_argument("--port", type=int, default=PORT)
    args = parser.parse_args()
    if not args.database.startswith("points_ledger_bench_"):
        raise SystemExit("--database must start with points_ledger_bench_ (it is dropped and made anew)")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")

    orders.DATABASE = args.database
    orders.PORTS.update(service=args.port)
    states = {"A": statements(args.a), "B": statements(args.b)}
    admin, checkout = asyncio.run(orders.prepare(2_000))
    env = {
        "LEDGER_DATABASE_URL": common.database_url(args.database),
        "LEDGER_ENV": "production",
        "LEDGER_DB_POOL_SIZE": str(max(4, args.connections // 2)),
        "LEDGER_SERVE_BACKGROUND": "false",
    }
    script = orders.script(args.target)
    service = awards.start("app.asgi:app", args.port, env, 2)
    measured: dict[str, list[tuple[float, float, float]]] = {name: [] for name in states}
    errors = 0
    try:
        asyncio.run(orders.activate_rules(admin))
        warm = orders.wrk_env(args.target, 2_000, checkout, f"w{uuid.uuid4().hex[:6]}")
        awards.drive(args.target, args.port, warm, 5, args.connections, script)
        for number in range(args.rounds):
            turn = ["A", "B"] if number % 2 == 0 else ["B", "A"]
            for name in turn:
                asyncio.run(apply(args.database, states[name]))
                common.settle(args.database)
                env_round = orders.wrk_env(args.target, 2_000, checkout, f"r{uuid.uuid4().hex[:6]}")
                result, service_ms, database_ms = orders.cpu_round(
                    args.target,
                    args.port,
                    env_round,
                    args.seconds,
                    args.connections,
                    service.pid,
                    args.database,
                )
                measured[name].append((result.requests_per_second, service_ms, database_ms))
                errors += result.errors
                print(
                    f"round {number + 1} {name}: {result.requests_per_second:7.0f} req/s, CPU per request "
                    f"service {service_ms:.3f} ms, PostgreSQL {database_ms:.3f} ms, errors {result.errors}",
                    flush=True,
                )
    finally:
        awards.stop(service)
        asyncio.run(apply(args.database, states["B"]))  # left as the last state says, whatever happened
    sound = asyncio.run(common.sound(args.database))

    medians = {
        name: tuple(statistics.median(row[column] for row in rows) for column in range(3))
        for name, rows in measured.items()
    }
    print(
        f"\n{args.target}, {args.rounds} rounds of {args.seconds}s each state, {args.connections} connections"
    )
    print(f"{'state':6s} {'req/s':>8s} {'service ms':>11s} {'PostgreSQL ms':>14s}")
    for name, (rps, service_ms, database_ms) in medians.items():
        print(f"{name:6s} {rps:8.0f} {service_ms:11.3f} {database_ms:14.3f}")
    if errors:
        # a state whose requests fail would pass for a cheaper one
        raise SystemExit(f"{errors} requests failed (non-2xx or socket errors): no ratio")
    print(
        f"B/A: req/s {medians['B'][0] / medians['A'][0]:.2f}, "
        f"PostgreSQL CPU per request {medians['B'][2] / medians['A'][2]:.2f}"
    )
    print("verify after the run:", "ledger is sound" if sound else "MISMATCHES (run points-ledger verify)")


if __name__ == "__main__":
    main()
