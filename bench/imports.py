"""Importing a legacy program: `--lots` lots (default 1,000,000) for `--members`
members, with mixed expiries (a tenth already expired, a tenth never), plus
members, two past orders and a tier each, through the import service as
`points-ledger import` runs it (rows already read from a file).

`--block` sets how many lots are checked at a time while the last block is
written (one block as large as the file: every row checked before the first is
written, as before blocks); `--writers 1 --row-checks` writes lots as the import
did before its set-wise checks and writers (for ratios in one sitting).

On one fresh database (`--database`, default points_ledger_bench_imports): the rules (silver and gold),
members, then the lots, each kind timed; lots/s for the whole lots run (reading,
checking and writing), the time reading (the totals, and the members and the
references imported before looked up: all before the first block is checked) and
the rest, and the CPU a lot cost this process and PostgreSQL's backends; then the
chainer over every imported entry, and `verify`. First, what parsing a lot row
costs through quick_lot() and through the LotRow model.

The shared PostgreSQL on 5432 (or `BENCH_SERVER_URL`) by default. `--server tuned`
starts a private one for the run instead (initdb and pg_ctl on a free port of
127.0.0.1, removed after), configured as a server given this machine's memory would
be: common.TUNED (2 GB of shared buffers instead of Debian's 128 MB, checkpoints
every 8 GB of WAL instead of 1 GB; fsync and synchronous commit on, as on 5432).

    python3 -m bench.imports [--lots 1000000] [--members 100000] [--chunk 5000] [--writers 2]
        [--block 100000] [--row-checks] [--server shared|tuned] [--database NAME]

Only the local PostgreSQL (127.0.0.1) is used.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from app.config import Environment, Settings
from app.db import Database, asyncpg_dsn
from app.imports import service
from app.imports.schemas import LotRow, quick_lot
from app.ledger.chain import chain_all
from app.rulesets.cache import RulesCache
from bench import common
from bench.common import backends_cpu, cpu_seconds, database_url, fresh_database, settle, sound

NAME = "points_ledger_bench_imports"
RULES = """
{"currency": "EUR", "timezone": "UTC", "earn": {"base": {"points": 1, "per": "1"}},
 "tiers": [{"code": "silver", "name": "Silver", "rank": 1, "qualify": {"orders": 2}},
           {"code": "gold", "name": "Gold", "rank": 2, "qualify": {"orders": 4}}]}
"""


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def legacy(members: int, lots: int, now: datetime) -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(17)
    ids = [f"lg-{n}" for n in range(members)]
    lot_rows = []
    for n in range(lots):
        earned = now - timedelta(days=rng.randint(1, 700))
        roll = rng.random()
        row: dict[str, Any] = {
            "member": ids[n % members],
            "lot_ref": f"L{n}",
            "points": rng.randint(1, 500),
            "earned_at": iso(earned),
        }
        if roll < 0.1:
            row["expires_at"] = iso(now - timedelta(days=rng.randint(1, 30)))  # expired: reported
        elif roll < 0.9:
            row["expires_at"] = iso(now + timedelta(days=rng.randint(1, 720)))
        lot_rows.append(row)  # else: never
    return {
        "members": [{"external_id": m, "enrolled_at": iso(now - timedelta(days=800))} for m in ids],
        "lots": lot_rows,
        "orders": [
            {
                "member": m,
                "order_id": f"o-{n}-{k}",
                "total": {"amount": "40.00", "currency": "EUR"},
                "paid_at": iso(now - timedelta(days=10 + k)),
            }
            for n, m in enumerate(ids)
            for k in range(2)
        ],
        "tiers": [{"member": m, "tier": "silver", "since": iso(now - timedelta(days=30))} for m in ids],
    }


class Read:
    """When the service had read the rows (its progress bar's total is set then,
    before checking and writing)."""

    def __init__(self) -> None:
        self.at = time.perf_counter()

    def total(self, items: int) -> None:
        self.at = time.perf_counter()

    def advance(self, items: int) -> None:
        pass


def parsing(rows: list[dict[str, Any]]) -> None:
    """What reading a lot row costs: quick_lot() against the LotRow model."""
    started = time.perf_counter()
    quick = [quick_lot(row) for row in rows]
    shortcut = time.perf_counter() - started
    started = time.perf_counter()
    for row in rows:
        LotRow.model_validate(row)
    model = time.perf_counter() - started
    print(
        f"parsing a lot row: {shortcut / len(rows) * 1e6:.1f} us by quick_lot() "
        f"({sum(lot is not None for lot in quick):,} of {len(rows):,} rows), "
        f"{model / len(rows) * 1e6:.1f} us by the LotRow model"
    )


async def main(
    lots: int,
    members: int,
    name: str = NAME,
    chunk: int | None = None,
    writers: int | None = None,
    row_checks: bool = False,
    block: int | None = None,
) -> None:
    if chunk is not None:
        service.CHUNK["lots"] = chunk
    if writers is not None:
        service.WRITERS = writers
    service.ROW_CHECKS = row_checks
    if block is not None:
        service.BLOCK = block
    await fresh_database(name)
    settings = Settings(env=Environment.test, database_url=None)
    db = Database(database_url(name), settings)
    await db.connect()
    connection = await asyncpg.connect(asyncpg_dsn(database_url(name)))
    try:
        program = await connection.fetchval("SELECT id FROM program WHERE code = 'default'")
        await connection.execute("UPDATE rules_version SET active = false WHERE program_id = $1", program)
        await connection.execute(
            "INSERT INTO rules_version (program_id, version, document, active, created_at, activated_at)"
            " SELECT $1, max(version) + 1, $2::jsonb, true, now(), now()"
            " FROM rules_version WHERE program_id = $1",
            program,
            RULES,
        )
        now = datetime.now(UTC)
        data = legacy(members, lots, now)
        parsing(data["lots"][:100_000])
        print(
            f"generated {members:,} members and {lots:,} lots; lots in chunks of {service.CHUNK['lots']:,}, "
            f"writers: {service.WRITERS}, {'per-row triggers' if row_checks else 'set-wise checks'}, "
            f"blocks of {service.BLOCK:,}"
        )
        for kind in ("members", "orders", "tiers", "lots"):
            if kind == "lots":
                await asyncio.to_thread(settle, name)
            read = Read()
            cpu = (cpu_seconds(os.getpid()), await backends_cpu(name))
            started = time.perf_counter()
            summary = await service.run(
                db,
                RulesCache(),
                program_id=program,
                kind=kind,
                source="bench",
                rows=data[kind],
                options=service.Options(),
                now=now,
                progress=read,
            )
            took = time.perf_counter() - started
            cpu = (cpu_seconds(os.getpid()) - cpu[0], await backends_cpu(name) - cpu[1])
            print(
                f"{kind}: {summary.rows:,} rows, {summary.imported:,} imported, {summary.invalid:,} invalid "
                f"in {took:.1f} s ({summary.rows / took:,.0f} rows/s)"
            )
            if kind == "lots" and summary.imported:
                print(
                    f"lots: {summary.imported / took:,.0f} lots/s imported over the whole run "
                    f"({summary.rows / took:,.0f} rows/s); reading {read.at - started:.1f} s, "
                    f"checking and writing {started + took - read.at:.1f} s"
                )
                print(
                    f"lots: CPU per imported lot: this process {cpu[0] / summary.imported * 1e6:,.1f} us, "
                    f"PostgreSQL's backends {cpu[1] / summary.imported * 1e6:,.1f} us "
                    f"({(cpu[0] + cpu[1]) / took:.2f} cores busy on average)"
                )
        started = time.perf_counter()
        chained = await chain_all(db, datetime.now(UTC))
        print(f"chained {chained:,} entries and events in {time.perf_counter() - started:.1f} s")
    finally:
        await connection.close()
        await db.dispose()
    started = time.perf_counter()
    print("verify:", "sound" if await sound(name) else "UNSOUND", f"({time.perf_counter() - started:.1f} s)")


def on_server(server: str, run: Coroutine[Any, Any, None]) -> None:
    """Run the bench on the shared server, or on a private tuned one it starts."""
    if server == "shared":
        asyncio.run(run)
        return
    with common.private_server(common.TUNED):
        asyncio.run(run)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lots", type=int, default=1_000_000)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, help=f"lots a transaction (default {service.CHUNK['lots']:,})")
    parser.add_argument("--writers", type=int, help=f"chunks written at once (default {service.WRITERS})")
    parser.add_argument(
        "--row-checks",
        action="store_true",
        help="the per-row foreign-key and balanced-entry triggers instead of the set-wise checks",
    )
    parser.add_argument(
        "--block", type=int, help=f"lots checked while the last block is written (default {service.BLOCK:,})"
    )
    parser.add_argument(
        "--server",
        choices=("shared", "tuned"),
        default="shared",
        help="the shared PostgreSQL, or a private one configured for this machine's memory",
    )
    parser.add_argument("--database", default=NAME, help="the database to use (dropped and created again)")
    args = parser.parse_args()
    options = (args.chunk, args.writers, args.row_checks, args.block)
    on_server(args.server, main(args.lots, args.members, args.database, *options))
