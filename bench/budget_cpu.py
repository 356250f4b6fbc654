"""CPU per order with and without a campaign budget, one order at a time, in process.

bench/orders.py --budget measures req/s under wrk, which swings with whatever
else the machine runs. This measures what does not: the CPU time the service (this
process, the app served in-process through httpx's ASGI transport) and
PostgreSQL's backends spend per order, orders sent one after another, in blocks
that alternate between the two programs of bench/orders.py --budget (the same
rules; `budgeted` has a budget on the shoes multiplier every order meets).

    uv run python -m bench.budget_cpu            # 6 blocks of 1,000 orders each, about 2 minutes
    uv run python -m bench.budget_cpu --orders 300
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from app.config import Environment, Settings
from app.db import asyncpg_dsn
from app.main import create_app
from bench import common
from bench.orders import RULES, SEED_TIERS, budgeted_rules

DATABASE = "points_ledger_bench_budget_cpu"
MEMBERS = 2_000
TARGETS = ("orders", "budgeted")


def order(member: str, paid_at: str) -> dict[str, Any]:
    shoes, shirt = random.randint(20, 180), random.randint(5, 40)
    return {
        "order_id": uuid.uuid4().hex,
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
        "channel": "app",
        "paid_at": paid_at,
    }


async def prepare(client: httpx.AsyncClient, admin: str) -> dict[str, str]:
    """The two programs, each with the members and its rules; their admin keys."""
    created = await client.post(
        "/v1/programs",
        json={"code": "budgeted", "name": "Budgeted"},
        headers={"Authorization": f"Bearer {admin}", "Idempotency-Key": "program"},
    )
    created.raise_for_status()
    keys = {"orders": admin, "budgeted": str(created.json()["admin_key"])}
    connection = await asyncpg.connect(asyncpg_dsn(common.database_url(DATABASE)))
    try:
        for target, rules in (("orders", RULES), ("budgeted", budgeted_rules())):
            code = "default" if target == "orders" else "budgeted"
            program_id = await connection.fetchval("SELECT id FROM program WHERE code = $1", code)
            await common.add_members(connection, program_id, MEMBERS)
            headers = {"Authorization": f"Bearer {keys[target]}"}
            version = (await client.post("/v1/rules", json=rules, headers=headers)).json()["version"]
            (await client.post(f"/v1/rules/{version}/activate", json={}, headers=headers)).raise_for_status()
            await connection.execute(SEED_TIERS, version, program_id)
        await connection.execute("VACUUM (ANALYZE)")
    finally:
        await connection.close()
    return keys


async def run(orders: int, blocks: int) -> None:
    await common.fresh_database(DATABASE)
    connection = await asyncpg.connect(asyncpg_dsn(common.database_url(DATABASE)))
    try:
        admin = await common.add_api_key(connection, 1, "bench-admin", ["admin"])
    finally:
        await connection.close()
    url = common.database_url(DATABASE)
    app = create_app(Settings(database_url=url, env=Environment.production, db_pool_size=2), database_url=url)
    cpu: dict[str, list[tuple[float, float]]] = {target: [] for target in TARGETS}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            keys = await prepare(client, admin)
            paid_at = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
            for block in range(blocks):
                for target in TARGETS if block % 2 == 0 else TARGETS[::-1]:
                    headers = {"Authorization": f"Bearer {keys[target]}"}
                    service_before, database_before = time.process_time(), await common.backends_cpu(DATABASE)
                    for _ in range(orders):
                        body = order(f"m-{random.randint(1, MEMBERS)}", paid_at)
                        answer = await client.post(
                            "/v1/orders", json=body, headers={**headers, "Idempotency-Key": body["order_id"]}
                        )
                        if answer.status_code != 201:
                            raise SystemExit(f"{target}: {answer.status_code} {answer.text}")
                    service_ms = (time.process_time() - service_before) * 1000 / orders
                    database_ms = (await common.backends_cpu(DATABASE) - database_before) * 1000 / orders
                    cpu[target].append((service_ms, database_ms))
                    figures = f"service {service_ms:6.3f}  PostgreSQL {database_ms:6.3f}"
                    print(f"block {block + 1} {target:9s} {figures}")
    print(f"\n{blocks} blocks of {orders} orders, one at a time; CPU ms per order, medians of the blocks:")
    totals = {}
    for target in TARGETS:
        service = statistics.median(s for s, _ in cpu[target])
        database = statistics.median(d for _, d in cpu[target])
        totals[target] = statistics.median(s + d for s, d in cpu[target])
        print(f"{target:9s} service {service:6.3f}  PostgreSQL {database:6.3f}  total {totals[target]:6.3f}")
    print(f"CPU per order, orders/budgeted: {totals['orders'] / totals['budgeted']:.2f}")
    print(
        "verify:",
        "ledger is sound" if await common.sound(DATABASE) else "MISMATCHES (run points-ledger verify)",
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=1_000, help="orders per block")
    parser.add_argument("--blocks", type=int, default=6)
    args = parser.parse_args()
    asyncio.run(run(args.orders, args.blocks))


if __name__ == "__main__":
    main()
