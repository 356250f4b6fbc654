"""Where one worker's CPU goes while it serves orders or awards: py-spy over a
single uvicorn worker under wrk, summed by function of the service's own code.

    uv run python -m bench.profile                    # orders, 15 s
    uv run python -m bench.profile --target awards --seconds 20

Builds a fresh database (`--database`, 2,000 members and the rules of
bench/orders.py), starts one service worker on 127.0.0.1, warms it for 5 s, then
records it with `py-spy record` (200 samples a second, idle excluded) while wrk
drives the target at 16 connections. Prints each function of `app/` with the
share of the samples in which it is on the stack (inclusive), largest first, and
the raw profile's path (flamegraph input). Needs wrk and py-spy
(`uv tool install py-spy`). The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import re
import shutil
import subprocess
import tempfile
import uuid

from bench import awards, common, orders

PORT = 8761
_FRAME = re.compile(r"^(?P<function>.+?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def shares(raw: str, prefix: str = "app/") -> tuple[int, list[tuple[str, float]]]:
    """From py-spy's raw output (`frame;frame;... count` a line): the samples in
    all, and each function of files under `prefix` with its inclusive share."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack:
            continue
        samples = int(number)
        total += samples
        seen: set[str] = set()
        for frame in stack.split(";"):
            found = _FRAME.match(frame)
            if found is None:
                continue
            path = found["file"]
            # the service's own package (from its folder on), not another package's
            at = 0 if path.startswith(prefix) else path.find("/" + prefix) + 1
            if not path.startswith(prefix, at) or "site-packages" in path:
                continue
            name = f"{found['function']} ({path[at:]})"
            if name not in seen:
                seen.add(name)
                counts[name] += samples
    return total, [(name, count / total) for name, count in counts.most_common()] if total else []


def record(args: argparse.Namespace, admin: str, checkout: str, pid: int, output: str) -> tuple[int, int]:
    """Warm the service, then drive it with wrk while py-spy records it: py-spy's
    exit status and the requests that failed meanwhile."""
    asyncio.run(orders.activate_rules(admin))
    script = orders.script(args.target)
    warm = orders.wrk_env(args.target, 2_000, checkout, f"w{uuid.uuid4().hex[:6]}")
    awards.drive(args.target, PORT, warm, 5, 16, script)
    common.settle(args.database)
    command = ["py-spy", "record", "-r", "200", "-d", str(args.seconds), "-f", "raw", "-o", output]
    spy = subprocess.Popen([*command, "--subprocesses", "-p", str(pid)], stdout=subprocess.DEVNULL)
    try:
        measured = orders.wrk_env(args.target, 2_000, checkout, f"r{uuid.uuid4().hex[:6]}")
        failed = awards.drive(args.target, PORT, measured, args.seconds + 1, 16, script).errors
    finally:
        status = spy.wait()
    return status, failed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", choices=["orders", "awards"], default="orders")
    parser.add_argument("--seconds", type=int, default=15, help="how long py-spy records")
    parser.add_argument("--top", type=int, default=30, help="how many functions to print")
    parser.add_argument("--database", default="points_ledger_bench_profile", help="dropped and made anew")
    parser.add_argument(
        "--output", help="where py-spy writes its raw profile (default: a new file in the temporary folder)"
    )
    args = parser.parse_args()
    if not args.database.startswith("points_ledger_bench_"):
        raise SystemExit("--database must start with points_ledger_bench_ (it is dropped and made anew)")
    for tool in ("wrk", "py-spy"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (wrk: apt-get install wrk; py-spy: uv tool install py-spy)")

    output = args.output or tempfile.mkstemp(prefix="points_ledger_profile_", suffix=".txt")[1]
    orders.DATABASE = args.database
    orders.PORTS.update(service=PORT)
    env = {
        "LEDGER_DATABASE_URL": common.database_url(args.database),
        "LEDGER_ENV": "production",
        "LEDGER_DB_POOL_SIZE": "8",
        "LEDGER_SERVE_BACKGROUND": "false",
    }
    try:
        admin, checkout = asyncio.run(orders.prepare(2_000))
        service = awards.start("app.asgi:app", PORT, env, 1)
        try:
            recorded, failed = record(args, admin, checkout, service.pid, output)
        finally:
            awards.stop(service)
    finally:
        asyncio.run(common.drop_database(args.database))
    if recorded != 0:
        raise SystemExit(f"py-spy failed (exit status {recorded}): no profile")
    if failed:
        raise SystemExit(f"{failed} requests failed while recording: that profiles errors, not {args.target}")
    with open(output) as raw:
        total, found = shares(raw.read())
    print(f"{args.target}: {total:,} samples of one worker over {args.seconds} s; raw profile {output}")
    print("share  function (inclusive: on the stack)")
    for name, share in found[: args.top]:
        print(f"{100 * share:5.1f}% {name}")


if __name__ == "__main__":
    main()
