"""Chaos: mixed ledger traffic while the service is killed and PostgreSQL restarts.

On a private PostgreSQL of its own (initdb + pg_ctl on a free port of 127.0.0.1,
fsync on), the script starts the service, gives members points, and drives awards,
redemptions and transfers from several clients, each request under an
Idempotency-Key it records. Meanwhile, in turns, it kills the service with SIGKILL
(and starts it again) and restarts PostgreSQL (`pg_ctl restart -m immediate`: a
crash, no shutdown checkpoint). A request that gets no answer, or a 503, is retried
with the same key until it is answered. At the end it proves, from the database:

- every acknowledged operation (201) is there exactly once;
- every refused one (insufficient points) wrote nothing;
- nothing else under the run's keys exists;
- `verify` finds the ledger sound.

    uv run python -m bench.chaos [--seconds 60] [--clients 8] [--every 4]

It prints its figures and exits 1 on any 500, loss, double or unsound check.
Only 127.0.0.1 is ever targeted; every process it starts it stops by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from app.auth.service import mint_key
from app.cli import run_migrations
from app.db import asyncpg_dsn
from app.ledger.verify import verify
from bench import common
from tests.pgcluster import PrivateCluster, free_port


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    no_answer: int = 0
    acknowledged: dict[str, str] = field(default_factory=dict)  # key -> entry id
    refused: set[str] = field(default_factory=set)
    kills: int = 0
    restarts: int = 0


async def prepare(cluster: PrivateCluster, members: int) -> tuple[str, str]:
    admin = await asyncpg.connect(asyncpg_dsn(cluster.url()))
    try:
        await admin.execute("CREATE DATABASE ledger")
    finally:
        await admin.close()
    url = cluster.url("ledger")
    await asyncio.to_thread(run_migrations, url)
    key, prefix, digest = mint_key()
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await connection.execute(
            "WITH lookup AS (INSERT INTO api_key_lookup (key_hash, program_id) VALUES ($2, 1))"
            " INSERT INTO api_key (id, program_id, name, key_prefix, key_hash, scopes, created_at)"
            " VALUES (gen_random_uuid(), 1, 'chaos', $1, $2, ARRAY['admin'], now())",
            prefix,
            digest,
        )
        await common.add_members(connection, 1, members)
    finally:
        await connection.close()
    return url, key


def start_service(url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LEDGER_DATABASE_URL": url, "LEDGER_ENV": "production", "LEDGER_DB_POOL_SIZE": "8"}
    command = [sys.executable, "-m", "uvicorn", "app.asgi:app", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("ab") as out:  # the service's own warnings (its 503s) go to a file, not among the figures
        return subprocess.Popen([*command, "--no-access-log"], env=env, stdout=out, stderr=out)


async def send(client: httpx.AsyncClient, tally: Tally, key: str, path: str, body: dict[str, object]) -> bool:
    """One attempt; True once the operation has its final answer."""
    try:
        response = await client.post(path, json=body, headers={"Idempotency-Key": key}, timeout=10)
    except httpx.HTTPError:
        tally.no_answer += 1
        return False
    tally.statuses[response.status_code] += 1
    if response.status_code == 201:
        tally.acknowledged[key] = response.json()["id"]
        return True
    if response.status_code == 422 and response.json().get("code") == "insufficient_points":
        tally.refused.add(key)
        return True
    if response.status_code == 503:
        return False
    raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:300]}")


def operation(members: int, number: int) -> tuple[str, dict[str, object]]:
    member = f"m-{random.randint(1, members)}"
    roll = random.random()
    if roll < 0.5:
        return f"/v1/members/{member}/awards", {"points": random.randint(1, 50), "reason": f"chaos {number}"}
    if roll < 0.75:
        return f"/v1/members/{member}/redemptions", {"points": random.randint(1, 40)}
    other = f"m-{random.randint(1, members)}"
    while other == member:
        other = f"m-{random.randint(1, members)}"
    return "/v1/transfers", {"from_member": member, "to_member": other, "points": random.randint(1, 30)}


async def client_loop(
    base: str, key: str, members: int, numbers: itertools.count[int], tally: Tally, stop: asyncio.Event
) -> None:
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}) as client:
        while not stop.is_set():
            number = next(numbers)
            idempotency_key = f"chaos-{number}"
            path, body = operation(members, number)
            # Until the operation has its answer: the same key, the same body.
            for _ in range(10_000):
                if await send(client, tally, idempotency_key, path, body):
                    break
                await asyncio.sleep(0.1)


async def run(args: argparse.Namespace) -> int:
    random.seed(args.seed)
    cluster = PrivateCluster(settings={"fsync": "on", "max_connections": "100"})
    service: subprocess.Popen[bytes] | None = None
    try:
        cluster.initdb()
        cluster.start()
        url, key = await prepare(cluster, args.members)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        service = start_service(url, port, cluster.root / "service.log")
        await asyncio.sleep(3)
        tally = Tally()
        stop = asyncio.Event()
        numbers = itertools.count()
        clients = [
            asyncio.create_task(client_loop(base, key, args.members, numbers, tally, stop))
            for _ in range(args.clients)
        ]
        started = time.monotonic()
        turn = 0
        while time.monotonic() - started < args.seconds:
            await asyncio.sleep(args.every)
            turn += 1
            if turn % 2:
                service.send_signal(signal.SIGKILL)
                service.wait()
                service = start_service(url, port, cluster.root / "service.log")
                tally.kills += 1
            else:
                await asyncio.to_thread(cluster.restart, "immediate")
                tally.restarts += 1
        stop.set()
        try:
            await asyncio.wait_for(asyncio.gather(*clients), timeout=120)
        except TimeoutError:
            log = (cluster.root / "service.log").read_text(errors="replace").splitlines()
            print(
                f"operations still unanswered 120 s after the last fault; responses so far: "
                f"{dict(sorted(tally.statuses.items()))}, no answer: {tally.no_answer}"
            )
            print("the service's last log lines:", *log[-40:], sep="\n  ")
            return 1
        elapsed = time.monotonic() - started

        connection = await asyncpg.connect(asyncpg_dsn(url))
        try:
            rows = await connection.fetch(
                "SELECT idempotency_key, count(*) AS n, min(id::text) AS id FROM journal_entry"
                " WHERE idempotency_key LIKE 'chaos-%' GROUP BY 1"
            )
            outcomes = await verify(connection)
        finally:
            await connection.close()
        found = {row["idempotency_key"]: (row["n"], row["id"]) for row in rows}
        lost = [k for k in tally.acknowledged if k not in found]
        doubled = [k for k, (n, _) in found.items() if n > 1]
        mismatched = [k for k, entry in tally.acknowledged.items() if k in found and found[k][1] != entry]
        written_refusals = [k for k in tally.refused if k in found]
        unexplained = [k for k in found if k not in tally.acknowledged]
        unsound = [outcome.name for outcome in outcomes if outcome.mismatches]
        answered = len(tally.acknowledged) + len(tally.refused)
        figures = [
            f"{elapsed:.0f} s, {args.clients} clients, {args.members} members, a fault every {args.every} s",
            f"service killed (SIGKILL): {tally.kills}, PostgreSQL restarted (immediate): {tally.restarts}",
            f"operations answered: {answered} "
            f"({len(tally.acknowledged)} written, {len(tally.refused)} refused)",
            f"responses: {dict(sorted(tally.statuses.items()))}, "
            f"no answer (connection lost): {tally.no_answer}",
            f"500s: {tally.statuses[500]}",
            f"acknowledged but missing: {len(lost)}, written twice: {len(doubled)}, "
            f"another entry than acknowledged: {len(mismatched)}",
            f"refused but written: {len(written_refusals)}, "
            f"written but never acknowledged: {len(unexplained)}",
            "verify: " + ("sound" if not unsound else f"UNSOUND {unsound}"),
        ]
        print("\n".join(figures))
        bad = tally.statuses[500] + len(lost) + len(doubled) + len(mismatched)
        bad += len(written_refusals) + len(unexplained) + len(unsound)
        return 1 if bad else 0
    finally:
        if service is not None and service.poll() is None:
            service.send_signal(signal.SIGKILL)
            service.wait()
        cluster.remove()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=60, help="how long faults are injected")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--every", type=float, default=4.0, help="seconds between faults")
    parser.add_argument("--seed", type=int, default=1)
    raise SystemExit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
