"""Awards throughput: the full service against a bare FastAPI+asyncpg endpoint.

In one run, on one fresh database, wrk drives both with the same load (many
members, 16 connections), alternating between them for several rounds, and the
script prints each one's throughput and latency, the ratio of their medians,
and finally `verify` over everything the run wrote.

    python3 -m bench.awards            # needs wrk (apt-get install wrk)

Only 127.0.0.1 is ever targeted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from app.db import asyncpg_dsn
from bench import common

HERE = Path(__file__).resolve().parent
DATABASE = "points_ledger_bench"
# where awards.lua sends its POSTs: the service's award endpoint, and the bare one
SERVICE_PATHS = {"BENCH_PATH_PREFIX": "/v1/members/", "BENCH_PATH_SUFFIX": "/awards"}
BARE_PATHS = {"BENCH_PATH_PREFIX": "/awards/", "BENCH_PATH_SUFFIX": ""}


@dataclass
class Round:
    target: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def database_url() -> str:
    return common.database_url(DATABASE)


def service_env(connections: int) -> dict[str, str]:
    """The service's environment: the bench database, production, a pool per
    connection, and the chainer and webhook dispatcher running inside it, as `serve`
    runs by default (bench.events measures them on and off)."""
    return {
        "LEDGER_DATABASE_URL": database_url(),
        "LEDGER_ENV": "production",
        "LEDGER_DB_POOL_SIZE": str(connections),
        "LEDGER_SERVE_BACKGROUND": "true",
    }


def bare_env(connections: int) -> dict[str, str]:
    return {"BENCH_DSN": asyncpg_dsn(database_url()), "BENCH_POOL": str(connections)}


async def prepare(members: int) -> str:
    await common.fresh_database(DATABASE)
    connection = await asyncpg.connect(asyncpg_dsn(database_url()))
    try:
        key = await common.add_api_key(connection, 1, "bench", ["points:adjust"])
        await common.add_members(connection, 1, members)
    finally:
        await connection.close()
    return key


def start(
    module: str, port: int, env: dict[str, str], workers: int = 1, wait: float = 60
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "uvicorn", module, "--host", "127.0.0.1", "--port", str(port)]
    command += ["--no-access-log", "--log-level", "warning", "--workers", str(workers)]
    process = subprocess.Popen(command, env={**os.environ, **env})
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        # A server that exited (its port taken: a server left over from an earlier
        # run) must not pass for up because the leftover one answers.
        if process.poll() is not None:
            raise SystemExit(f"{module} exited ({process.returncode}); is port {port} taken?")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return process
        except OSError:
            time.sleep(0.2)
    stop(process)
    raise SystemExit(f"{module} did not come up on port {port}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def drive(
    target: str, port: int, env: dict[str, str], seconds: int, connections: int, script: str = "awards.lua"
) -> Round:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(HERE / script)]
    command.append(f"http://127.0.0.1:{port}")
    output = subprocess.run(
        command, env={**os.environ, **env}, capture_output=True, text=True, check=True
    ).stdout
    if re.search(r"^\s+99%\s+(\S+)[ \t]*$", output, re.MULTILINE) is None:
        raise SystemExit(f"wrk against {target} completed no request:\n{output}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)[ \t]*$", output, re.MULTILINE).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)[ \t]*$", output, re.MULTILINE).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, socket.groups())) if socket else 0)
    return Round(target, rps, p50, p99, errors)


def report(rounds: list[Round], targets: list[str], width: int = 8) -> dict[str, float]:
    """A line per target (medians over its rounds, errors summed); the medians of req/s."""
    print(f"{'target':{width}s} {'req/s (median)':>15s} {'p50 ms':>8s} {'p99 ms':>8s} {'errors':>7s}")
    medians = {}
    for name in targets:
        mine = [r for r in rounds if r.target == name]
        medians[name] = statistics.median(r.requests_per_second for r in mine)
        p50 = statistics.median(r.p50_ms for r in mine)
        p99 = statistics.median(r.p99_ms for r in mine)
        errors = sum(r.errors for r in mine)
        print(f"{name:{width}s} {medians[name]:15.0f} {p50:8.2f} {p99:8.2f} {errors:7d}")
    return medians


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

    key = asyncio.run(prepare(args.members))
    targets = {
        "service": ("app.asgi:app", 8701, service_env(args.connections), SERVICE_PATHS),
        "bare": ("bench.bare_app:app", 8702, bare_env(args.connections), BARE_PATHS),
    }
    wrk_env = {"BENCH_MEMBERS": str(args.members), "BENCH_API_KEY": key}
    processes = {name: start(module, port, env) for name, (module, port, env, _) in targets.items()}
    rounds: list[Round] = []
    try:
        for name, (_, port, _, paths) in targets.items():  # warm up both
            drive(name, port, {**wrk_env, **paths}, 3, args.connections)
        for number in range(args.rounds):
            order = list(targets) if number % 2 == 0 else list(reversed(targets))
            for name in order:
                common.settle(DATABASE)
                _, port, _, paths = targets[name]
                rounds.append(drive(name, port, {**wrk_env, **paths}, args.seconds, args.connections))
                print(f"round {number + 1} {name:8s} {rounds[-1].requests_per_second:8.0f} req/s", flush=True)
    finally:
        for process in processes.values():
            stop(process)

    print(
        f"\n{args.members} members, {args.connections} connections, {args.rounds} rounds of {args.seconds}s"
    )
    medians = report(rounds, list(targets))
    print(f"ratio service/bare: {medians['service'] / medians['bare']:.2f}")
    print(
        "verify after the run:",
        "ledger is sound" if asyncio.run(common.sound(DATABASE)) else "MISMATCHES (run points-ledger verify)",
    )


if __name__ == "__main__":
    main()
