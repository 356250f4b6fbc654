"""A member's export over a long history: how fast, and whether memory stays flat.

One member gets `--entries` awards (through ledger_post(), in the database); its
export (app.privacy.service.export, the stream GET /v1/members/{id}/export sends)
is then read to the end, as a client would, twice: timed, and under tracemalloc.
The same again for a member with a tenth as many entries. It prints the time,
entries per second, the document's size and the peak Python memory of each, and
the ratio of the two peaks: flat memory means a ratio near 1 however long the
history (the document itself grows tenfold).

    python3 -m bench.export [--entries 100000]

Only the local PostgreSQL (127.0.0.1) is used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import tracemalloc

import asyncpg
from pydantic import SecretStr

from app.config import Environment, Settings
from app.context import AppContext
from app.db import asyncpg_dsn
from app.main import create_app
from app.principal import Principal
from app.privacy import service
from bench import common

DATABASE = "points_ledger_bench_export"
PROGRAM = Principal(program_id=1, program_code="default", key_id=None, scopes=frozenset({"admin"}))
BATCH = 10_000

AWARDS = """
SELECT count(*)
  FROM generate_series($2::bigint, $3::bigint) AS k
 CROSS JOIN LATERAL ledger_post(
       p_entry_id => gen_random_uuid(), p_program_id => 1, p_kind => 'award',
       p_idempotency_key => 'bench-export:' || $1 || ':' || k, p_request_fingerprint => 'bench:export',
       p_occurred_at => now(), p_recorded_at => now(), p_actor_key_id => NULL, p_reverses_entry_id => NULL,
       p_reason => 'bench', p_order_id => NULL, p_rules_version => NULL, p_expires_at => NULL,
       p_pending_until => NULL, p_metadata => NULL, p_members => ARRAY[$1, NULL],
       p_accounts => ARRAY['available', 'issuance'], p_amounts => ARRAY[1 + k % 7, -(1 + k % 7)]
       ) AS posted
"""


async def seed(member: str, entries: int) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(common.database_url(DATABASE)))
    try:
        for start in range(1, entries + 1, BATCH):
            await connection.fetchval(AWARDS, member, start, min(entries, start + BATCH - 1))
    finally:
        await connection.close()


async def read_export(context: AppContext, member: str) -> int:
    """Read the whole stream; its size in bytes."""
    size = 0
    async for chunk in await service.export(context, PROGRAM, member):
        size += len(chunk)  # a client writing to a file keeps nothing
    return size


async def measure(context: AppContext, member: str, entries: int) -> tuple[float, int, int]:
    started = time.perf_counter()
    size = await read_export(context, member)
    seconds = time.perf_counter() - started
    tracemalloc.start()
    await read_export(context, member)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"{member}: {entries:,} entries exported in {seconds:.2f} s ({entries / seconds:,.0f} entries/s), "
        f"{size / 1e6:.1f} MB, peak Python memory {peak / 1e6:.1f} MB"
    )
    return seconds, size, peak


async def check(context: AppContext, member: str, entries: int) -> None:
    """The document parses and holds every entry (a small member, read whole)."""
    body = b"".join([chunk async for chunk in await service.export(context, PROGRAM, member)])
    document = json.loads(body)
    assert len(document["entries"]) == entries, len(document["entries"])
    assert document["complete"] is True


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=100_000)
    args = parser.parse_args()
    small = max(1, args.entries // 10)
    await common.fresh_database(DATABASE)
    connection = await asyncpg.connect(asyncpg_dsn(common.database_url(DATABASE)))
    try:
        await common.add_members(connection, 1, 2)
    finally:
        await connection.close()
    started = time.perf_counter()
    await seed("m-1", args.entries)
    await seed("m-2", small)
    print(f"setup: {args.entries + small:,} awards in {time.perf_counter() - started:.1f} s")
    settings = Settings(env=Environment.test, admin_key=SecretStr("bench"), serve_background=False)
    app = create_app(settings, database_url=common.database_url(DATABASE))
    async with app.router.lifespan_context(app):
        context: AppContext = app.state.context
        await check(context, "m-2", small)
        _, _, small_peak = await measure(context, "m-2", small)
        _, _, large_peak = await measure(context, "m-1", args.entries)
    print(f"peak memory, {args.entries:,} entries against {small:,}: {large_peak / small_peak:.2f}")
    print(f"verify: {'sound' if await common.sound(DATABASE) else 'UNSOUND'}")


if __name__ == "__main__":
    asyncio.run(main())
