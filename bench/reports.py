"""The reports for a year over a large ledger, with and without daily rollups.

    uv run python -m bench.reports --database points_ledger_bench_reports            # 10M postings
    uv run python -m bench.reports --database NAME --postings 1000000                # a quicker look
    uv run python -m bench.reports --database NAME --reuse                           # a kept ledger

Builds (unless --reuse) a fresh database with bench/growth.py's bulk builder:
--postings postings (two per entry) of one program over the two years before
now, --entries-per-member entries a typical member (5: 10M postings are 1M
members), awards and redemptions that take from the lots oldest first, each
with its lots, lot uses, chain and events, as the service writes them; then
`verify` (which must be sound). The builder writes no orders, refunds or
expiries: the activity report's order and revenue columns read empty tables.

Then one service (uvicorn, one worker, production settings but a statement
timeout of --statement-timeout: without rollups, the liability and breakage
reports pass production's 15 s at 1,000,000 postings) on 127.0.0.1, and:
1. each report for the year before now once, before any rollup (the ledger alone);
2. the rollup-reports job (in this process, timed), twice: every day up to the
   day before yesterday (the whole history replays; each member's lots are
   kept), then yesterday alone on the kept lots, as the next day's run (a kept
   ledger's rollups are deleted first);
3. each report --rounds times with the rollups, the median and the 2 s target;
4. `verify` again, which now recomputes the rollups and the kept lots too
   (timed; --no-verify-after skips it).
Timings are printed, never asserted; the machine is shared: the load is printed.
The database is kept (drop it with --drop)."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from app.db import asyncpg_dsn
from app.reports import rollups
from bench import common, growth
from bench.awards import start, stop

PORT = 8741
PROGRAM_ID = growth.PROGRAM_ID
TARGET = 2.0
SCOPES = ["reports:read"]


def load() -> str:
    with open("/proc/loadavg") as found:
        return " ".join(found.read().split()[:3])


def reports(now: datetime) -> list[tuple[str, str, dict[str, str]]]:
    year = {"from": (now - timedelta(days=365)).isoformat(), "to": now.isoformat()}
    return [
        ("liability now", "liability", {"as_of": now.isoformat()}),
        ("liability a year back", "liability", {"as_of": (now - timedelta(days=365)).isoformat()}),
        ("activity by day", "activity", {**year, "granularity": "day"}),
        ("activity by week", "activity", {**year, "granularity": "week"}),
        ("activity by month", "activity", {**year, "granularity": "month"}),
        ("breakage", "breakage", year),
        ("redemption-cost", "redemption-cost", year),
        ("overview", "overview", year),
    ]


def timed(client: httpx.Client, path: str, params: dict[str, str]) -> float:
    began = time.monotonic()
    response = client.get(f"/v1/reports/{path}", params=params)
    seconds = time.monotonic() - began
    if response.status_code != 200:
        raise SystemExit(f"{path}: {response.status_code} {response.text}")
    return seconds


async def _connect(database: str) -> asyncpg.Connection:
    return await asyncpg.connect(asyncpg_dsn(common.database_url(database)))


async def build(database: str, postings: int, per_member: int) -> None:
    await common.fresh_database(database)
    connection = await _connect(database)
    began = time.monotonic()

    def progress(done: int, total: int) -> None:
        if done % 500_000 < growth.BATCH or done == total:
            print(f"  {done:,} / {total:,} entries, {time.monotonic() - began:.0f} s", flush=True)

    try:
        built = await growth.build(
            connection,
            postings=postings,
            now=datetime.now(UTC),
            entries_per_member=per_member,
            progress=progress,
        )
    finally:
        await connection.close()
    print(f"built {built.postings:,} postings, {built.members:,} members in {built.load_seconds:.0f} s")


async def key_and_size(database: str) -> tuple[str, int, int]:
    connection = await _connect(database)
    try:
        key = await common.add_api_key(connection, PROGRAM_ID, "bench-reports", SCOPES)
        postings = int(
            await connection.fetchval("SELECT count(*) FROM posting WHERE program_id = $1", PROGRAM_ID)
        )
        members = int(
            await connection.fetchval("SELECT count(*) FROM member WHERE program_id = $1", PROGRAM_ID)
        )
        return key, postings, members
    finally:
        await connection.close()


async def forget_rollups(database: str) -> None:
    """A kept ledger (--reuse) starts again without rollups: what `without` times."""
    connection = await _connect(database)
    try:
        tables = ("report_day_figure", "report_member_day", "report_lot", "report_lot_use", "report_rollup")
        for table in tables:
            await connection.execute(f"DELETE FROM {table} WHERE program_id = $1", PROGRAM_ID)
    finally:
        await connection.close()


async def roll(database: str, as_of: datetime) -> tuple[float, int, int]:
    connection = await _connect(database)
    try:
        began = time.monotonic()
        days, figures = await rollups.roll_up_program(connection, PROGRAM_ID, as_of, datetime.now(UTC))
        return time.monotonic() - began, days, figures
    finally:
        await connection.close()


async def verify(database: str) -> tuple[bool, float]:
    began = time.monotonic()
    sound = await common.sound(database)
    return sound, time.monotonic() - began


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", required=True, help="the database to build (or --reuse)")
    parser.add_argument("--postings", type=int, default=10_000_000)
    parser.add_argument("--entries-per-member", type=int, default=5, help="a typical member's entries")
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds with rollups")
    parser.add_argument("--reuse", action="store_true", help="measure a database built before")
    parser.add_argument(
        "--no-live", dest="live", action="store_false", help="skip the reports without rollups"
    )
    parser.add_argument(
        "--rolled",
        action="store_true",
        help="with --reuse: keep the rollups in the database (no first run of the job)",
    )
    parser.add_argument(
        "--no-verify-after", dest="verify_after", action="store_false", help="skip the last `verify`"
    )
    parser.add_argument("--statement-timeout", type=int, default=3600, help="seconds, for the service")
    parser.add_argument("--drop", action="store_true", help="drop the database at the end")
    return parser.parse_args()


def main() -> None:
    args = parse()
    began = time.monotonic()
    if not args.reuse:
        print(f"building {args.postings:,} postings in {args.database}...", flush=True)
        asyncio.run(build(args.database, args.postings, args.entries_per_member))
        sound, seconds = asyncio.run(verify(args.database))
        print(f"verify: {'sound' if sound else 'UNSOUND'} ({seconds:.0f} s)", flush=True)
        if not sound:
            raise SystemExit("the bulk-loaded ledger is unsound: nothing measured")
    if not args.rolled:
        asyncio.run(forget_rollups(args.database))
    key, postings, members = asyncio.run(key_and_size(args.database))
    print(f"ledger: {postings:,} postings, {members:,} members; load {load()}", flush=True)
    env = {
        "LEDGER_DATABASE_URL": common.database_url(args.database),
        "LEDGER_ENV": "production",
        # the reports without rollups take longer than production's 15 s bound on a
        # statement (answering 503): raised here so that they can be timed at all
        "LEDGER_DB_STATEMENT_TIMEOUT_MS": str(args.statement_timeout * 1000),
    }
    # a shared machine under load may take more than half a minute to start it
    process = start("app.asgi:app", PORT, {**env, "LEDGER_DB_POOL_SIZE": "4"}, wait=180)
    results: dict[str, dict[str, Any]] = {}
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{PORT}", headers={"Authorization": f"Bearer {key}"}, timeout=1800
        ) as client:
            now = datetime.now(UTC) - timedelta(seconds=5)
            asked = reports(now)
            if args.live:
                print("without rollups (the ledger alone), one request each:", flush=True)
                for name, path, params in asked:
                    seconds = timed(client, path, params)
                    results.setdefault(name, {})["live"] = seconds
                    print(f"  {name:<24} {seconds:8.2f} s", flush=True)
            # the first run up to the day before yesterday (the whole history, keeping
            # every member's lots), then the next day's run (that day alone on them);
            # --rolled: the days since the rollups kept in the database (a day's run)
            runs = [("next day's run", now)]
            if not args.rolled:
                runs.insert(0, ("first run", now - timedelta(days=1)))
            for what, as_of in runs:
                seconds, days, figures = asyncio.run(roll(args.database, as_of))
                print(
                    f"rollup-reports, {what}: {days} days, {figures:,} figures in {seconds:.1f} s;"
                    f" load {load()}",
                    flush=True,
                )
            for _, path, params in asked:
                timed(client, path, params)  # warm-up
            for _ in range(args.rounds):
                for name, path, params in asked:
                    results.setdefault(name, {}).setdefault("rolled", []).append(timed(client, path, params))
    finally:
        stop(process)
    print(f"\nreports for a year, {args.rounds} rounds with rollups (median), load {load()}:")
    print(f"  {'report':<24} {'with rollups':>12} {'target':>8} {'without':>10} {'ratio':>7}")
    for name, found in results.items():
        median = statistics.median(found["rolled"])
        live = found.get("live")
        ratio = f"{live / median:6.0f}x" if live else ""
        verdict = "ok" if median < TARGET else "OVER"
        without = f"{live:9.2f}s" if live else ""
        print(f"  {name:<24} {median:11.3f}s {verdict:>8} {without:>10} {ratio:>7}")
    if args.verify_after:
        sound, seconds = asyncio.run(verify(args.database))
        print(f"verify after (with the rollup check): {'sound' if sound else 'UNSOUND'} ({seconds:.0f} s)")
    if args.drop:
        asyncio.run(common.drop_database(args.database))
    print(f"whole run: {(time.monotonic() - began) / 60:.1f} minutes (pid {os.getpid()})")


if __name__ == "__main__":
    main()
