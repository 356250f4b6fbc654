"""What-if simulation over 100,000 orders: how fast, and how much memory.

In one run, on one fresh database: 100,000 orders of 10,000 members are placed
through the service's own order path (app.orders.service.place) under an "actual"
rules version; then a draft version with other multipliers, bonuses and caps is
simulated over the whole period several times. The script prints, as medians:
- simulated orders per second, and the same rows merely read from the database
  (the replay's own query through a cursor): their ratio is what replaying costs
  beyond reading;
- the replay's peak Python memory (tracemalloc, in a separate pass);
and `verify` over everything the run wrote.

    python3 -m bench.simulate [--orders 100000] [--members 10000] [--rounds 3]

Only the local PostgreSQL (127.0.0.1) is used.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from app.auth.service import Authenticator
from app.clock import SystemClock
from app.config import Environment, Settings
from app.context import AppContext
from app.db import Database, asyncpg_dsn
from app.idempotency import KeyedRequest, fingerprint
from app.orders import repository as orders_repository
from app.orders import service as orders
from app.orders import simulation
from app.orders.schemas import OrderIn, SimulationIn
from app.principal import Principal
from app.rulesets import service as rulesets
from app.rulesets.cache import RulesCache
from bench import common

DATABASE = "points_ledger_bench_simulate"
PROGRAM = Principal(program_id=1, program_code="default", key_id=None, scopes=frozenset({"admin"}))

ACTUAL: dict[str, Any] = {
    "currency": "EUR",
    "earn": {
        "base": {"points": 1, "per": "1.00"},
        "exclude_categories": ["gift_card"],
        "multipliers": [
            {"id": "member-day", "factor": "2", "when": {"day_of_month": [8]}},
            {"id": "shoes", "factor": "3", "when": {"category": ["shoes"]}},
        ],
        "bonuses": [{"id": "first-order", "points": 100, "when": {"first_order": True}}],
        "caps": {"per_order": 5000},
    },
}
DRAFT: dict[str, Any] = {
    "currency": "EUR",
    "timezone": "Europe/Berlin",
    "earn": {
        "base": {"points": 1, "per": "1.00"},
        "exclude_categories": ["gift_card"],
        "multipliers": [
            {"id": "member-day", "factor": "3", "when": {"day_of_month": [8, 18, 28]}},
            {"id": "weekend", "factor": "1.5", "when": {"weekday": [6, 7]}},
            {"id": "app", "factor": "1.2", "when": {"channel": ["app"]}},
            {"id": "shoes", "factor": "2", "when": {"category": ["shoes"]}},
        ],
        "stacking": "add",
        "bonuses": [
            {"id": "first-order", "points": 150, "when": {"first_order": True}},
            {"id": "big-order", "points": 200, "when": {"order_total_gte": "300.00"}},
        ],
        "caps": {"per_order": 2000, "per_member_per_day": 2500},
    },
}
CATEGORIES = ["shoes", "tees", "socks", "gift_card", "bags"]


def random_order(rng: random.Random, number: int, members: int, start: datetime, days: int) -> OrderIn:
    lines: list[dict[str, Any]] = []
    for index in range(rng.randint(0, 3)):
        price = Decimal(rng.randint(199, 12_999)) / 100
        lines.append(
            {
                "sku": f"SKU-{index}-{rng.randint(1, 50)}",
                "category": rng.choice(CATEGORIES),
                "quantity": rng.randint(1, 3),
                "unit_price": {"amount": str(price), "currency": "EUR"},
            }
        )
    covered = sum((Decimal(line["unit_price"]["amount"]) * line["quantity"] for line in lines), Decimal(0))
    total = covered + Decimal(rng.randint(0, 999)) / 100 if lines else Decimal(rng.randint(500, 50_000)) / 100
    paid_at = start + timedelta(seconds=rng.randint(0, days * 86_400 - 1))
    return OrderIn.model_validate(
        {
            "order_id": f"o-{number}",
            "member": f"m-{rng.randint(1, members)}",
            "total": {"amount": str(total), "currency": "EUR"},
            "lines": lines or None,
            "channel": rng.choice(["app", "web", "store"]),
            "paid_at": paid_at.isoformat(),
        }
    )


async def place_orders(context: AppContext, count: int, members: int, start: datetime, days: int) -> None:
    rng = random.Random(20261125)
    bodies = [random_order(rng, number, members, start, days) for number in range(count)]
    queue: asyncio.Queue[OrderIn] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def worker() -> None:
        while not queue.empty():
            body = queue.get_nowait()
            request = KeyedRequest(PROGRAM, f"k-{body.order_id}", fingerprint("POST", "/v1/orders", body))
            await orders.place(context, request, body)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(16)))
    print(f"placed {count} orders in {time.perf_counter() - began:.1f} s", flush=True)


async def read_only(context: AppContext, start: datetime, end: datetime) -> float:
    """Seconds to stream the replay's rows without replaying them."""
    began = time.perf_counter()
    rows = 0
    async with context.db.pool.acquire() as connection, connection.transaction(readonly=True):
        async for _ in orders_repository.past_orders(connection, PROGRAM.program_id, start, end):
            rows += 1
    return time.perf_counter() - began


async def run(orders_count: int, members: int, rounds: int) -> None:
    await common.fresh_database(DATABASE)
    url = common.database_url(DATABASE)
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await common.add_members(connection, 1, members)
    finally:
        await connection.close()

    settings = Settings(env=Environment.test, database_url=url, db_pool_size=16)
    db = Database(url, settings)
    await db.connect()
    context = AppContext(
        settings=settings,
        db=db,
        clock=SystemClock(),
        auth=Authenticator(db.pool, admin_key=None, cache_seconds=0),
        rules=RulesCache(),
    )
    try:
        actual = await rulesets.create(context, PROGRAM, ACTUAL)
        await rulesets.activate(context, PROGRAM, actual.version)
        draft = await rulesets.create(context, PROGRAM, DRAFT)

        days = 90
        end = datetime.now(UTC).replace(microsecond=0)
        start = end - timedelta(days=days)
        await place_orders(context, orders_count, members, start, days)
        period = SimulationIn.model_validate({"from": start.isoformat(), "to": end.isoformat()})

        simulated: list[float] = []
        read: list[float] = []
        result = None
        for number in range(rounds):
            began = time.perf_counter()
            result = await simulation.simulate(context, PROGRAM, draft.version, period)
            simulated.append(time.perf_counter() - began)
            read.append(await read_only(context, start, end))
            print(
                f"round {number + 1}: simulate {simulated[-1]:.2f} s, read only {read[-1]:.2f} s "
                f"({result.orders} orders)",
                flush=True,
            )
        assert result is not None

        tracemalloc.start()
        await simulation.simulate(context, PROGRAM, draft.version, period)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        await db.dispose()

    seconds = statistics.median(simulated)
    reading = statistics.median(read)
    print(f"\n{result.orders} orders of {members} members over {days} days, {rounds} rounds")
    print(
        f"actual {result.actual_points} points, simulated {result.simulated_points} "
        f"(delta {result.delta_points:+d}); rules: "
        + ", ".join(f"{item.rule} {item.delta_points:+d}" for item in result.rules)
    )
    print(f"simulate (median): {seconds:.2f} s, {result.orders / seconds:,.0f} orders/s")
    print(f"read only (median): {reading:.2f} s, {result.orders / reading:,.0f} orders/s")
    print(f"ratio simulate/read-only throughput: {reading / seconds:.2f}")
    print(f"peak Python memory during one simulation: {peak / 2**20:.1f} MiB")
    print("verify after the run:", "ledger is sound" if await common.sound(DATABASE) else "MISMATCHES")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.orders, args.members, args.rounds))


if __name__ == "__main__":
    main()
