"""What LEDGER_DB_TRANSACTION_POOLING costs: the awards benchmark three ways.

In one run, on one fresh database with many members, wrk drives the same award
load (bench/awards.lua, 16 connections) at three `points-ledger` services,
alternating between them for several rounds:

- `direct`: straight to PostgreSQL, the setting off (as bench.awards runs it);
- `setting`: straight to PostgreSQL, the setting on: no statement cache (two round
  trips a statement), no statement_timeout at connect (the database has it);
- `pgbouncer`: through a PgBouncer in transaction mode that the script starts on a
  free port of 127.0.0.1 (as many server connections as the service has client
  ones, so nothing queues in it), the setting on.

It prints each round, each target's medians, the ratios to `direct`, and `verify`.

    uv run python -m bench.pooler      # needs wrk and pgbouncer (apt-get install wrk pgbouncer)

Only 127.0.0.1 is ever targeted.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil

import asyncpg

from app.db import asyncpg_dsn
from bench import common
from bench.awards import SERVICE_PATHS, Round, drive, report, start, stop
from tests.pgbouncer import INSTALL, PgBouncer, binary

DATABASE = "points_ledger_bench_pooler"
STATEMENT_TIMEOUT_MS = 15_000


async def prepare(members: int) -> str:
    """A fresh database whose sessions get the service's statement timeout (what an
    operator sets for a transaction-mode pooler), with members and a key."""
    await common.fresh_database(DATABASE)
    connection = await asyncpg.connect(asyncpg_dsn(common.database_url(DATABASE)))
    try:
        await connection.execute(f"ALTER DATABASE {DATABASE} SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
        key = await common.add_api_key(connection, 1, "bench", ["points:adjust"])
        await common.add_members(connection, 1, members)
    finally:
        await connection.close()
    return key


def service_env(url: str, connections: int, *, pooling: bool) -> dict[str, str]:
    env = {
        "LEDGER_DATABASE_URL": url,
        "LEDGER_ENV": "production",
        "LEDGER_DB_POOL_SIZE": str(connections),
        "LEDGER_DB_STATEMENT_TIMEOUT_MS": str(STATEMENT_TIMEOUT_MS),
    }
    if pooling:
        env["LEDGER_DB_TRANSACTION_POOLING"] = "true"
        env["LEDGER_DIRECT_DATABASE_URL"] = common.database_url(DATABASE)
    return env


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=10, help="length of one measured round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    if binary() is None:
        raise SystemExit(f"pgbouncer is needed: {INSTALL}")

    key = asyncio.run(prepare(args.members))
    bouncer = PgBouncer(pool_size=args.connections)
    bouncer.start()
    direct = common.database_url(DATABASE)
    targets = {
        "direct": (8711, service_env(direct, args.connections, pooling=False)),
        "setting": (8712, service_env(direct, args.connections, pooling=True)),
        "pgbouncer": (8713, service_env(bouncer.url(DATABASE), args.connections, pooling=True)),
    }
    wrk_env = {"BENCH_MEMBERS": str(args.members), "BENCH_API_KEY": key, **SERVICE_PATHS}
    processes = {}
    rounds: list[Round] = []
    try:
        for name, (port, env) in targets.items():
            processes[name] = start("app.asgi:app", port, env)
        for name, (port, _) in targets.items():  # warm up each
            drive(name, port, wrk_env, 3, args.connections)
        for number in range(args.rounds):
            # each round starts with another target, so none always runs first
            order = list(targets)[number % 3 :] + list(targets)[: number % 3]
            for name in order:
                common.settle(DATABASE)
                port, _ = targets[name]
                rounds.append(drive(name, port, wrk_env, args.seconds, args.connections))
                print(f"round {number + 1} {name:9s} {rounds[-1].requests_per_second:8.0f} req/s", flush=True)
    finally:
        for process in processes.values():
            stop(process)
        bouncer.stop()

    print(
        f"\n{args.members} members, {args.connections} connections (and PgBouncer server connections), "
        f"{args.rounds} rounds of {args.seconds}s"
    )
    medians = report(rounds, list(targets), width=9)
    print(f"ratio setting/direct:   {medians['setting'] / medians['direct']:.2f}")
    print(f"ratio pgbouncer/direct: {medians['pgbouncer'] / medians['direct']:.2f}")
    spread = {name: [round(r.requests_per_second) for r in rounds if r.target == name] for name in targets}
    print("rounds (req/s):", ", ".join(f"{name} {values}" for name, values in spread.items()))
    print(
        "verify after the run:",
        "ledger is sound" if asyncio.run(common.sound(DATABASE)) else "MISMATCHES (run points-ledger verify)",
    )


if __name__ == "__main__":
    main()
