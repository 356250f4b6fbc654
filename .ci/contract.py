"""A bounded schemathesis run over openapi.yaml against a live service (CI).

Creates a database of its own, migrates it, starts `points-ledger serve` on a free
port of 127.0.0.1 with an admin key of the default program, runs schemathesis
(every operation; examples, coverage, fuzzing and stateful phases; a fixed seed;
a time budget), then stops the server by its PID and drops the database. Fails
on any 5xx, any status or content type the contract does not declare, and any
response that does not match its schema; and runs `verify` over what it wrote.

    uv run python .ci/contract.py [--max-time 150] [--seed 20261128]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.auth.service import mint_key  # noqa: E402
from app.cli import run_migrations  # noqa: E402
from app.ledger.verify import verify  # noqa: E402

SERVER = os.environ.get("LEDGER_TEST_SERVER_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
    "response_headers_conformance"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def admin(sql: str) -> None:
    connection = await asyncpg.connect(SERVER.replace("+asyncpg", ""))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def admin_key(url: str) -> str:
    key, prefix, digest = mint_key()
    connection = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        await connection.execute(
            "INSERT INTO api_key (id, program_id, name, key_prefix, key_hash, scopes, created_at)"
            " VALUES (gen_random_uuid(), 1, 'contract', $1, $2, ARRAY['admin'], now())",
            prefix,
            digest,
        )
    finally:
        await connection.close()
    return key


async def unsound_checks(url: str) -> list[str]:
    connection = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        return [outcome.name for outcome in await verify(connection) if outcome.mismatches]
    finally:
        await connection.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-time", type=int, default=150)
    parser.add_argument("--seed", type=int, default=20261128)
    args = parser.parse_args()
    name = f"points_ledger_contract_{uuid.uuid4().hex[:10]}"
    url = SERVER.rpartition("/")[0] + "/" + name
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    server = None
    try:
        run_migrations(url)
        key = asyncio.run(admin_key(url))
        port = free_port()
        env = {**os.environ, "LEDGER_DATABASE_URL": url, "LEDGER_ENV": "test"}
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.asgi:app", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "warning"],
            cwd=ROOT, env=env,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        command = [
            sys.executable, "-m", "schemathesis.cli", "run", str(ROOT / "openapi.yaml"),
            "--url", base, "--header", f"Authorization: Bearer {key}",
            "--checks", CHECKS, "--phases", "examples,coverage,fuzzing,stateful",
            "--seed", str(args.seed), "--max-time", str(args.max_time), "--workers", "1",
            "--generation-database", "none", "--no-color", "--max-failures", "20",
        ]  # fmt: skip
        code = subprocess.run(command, cwd=ROOT, check=False).returncode
        unsound = asyncio.run(unsound_checks(url))
        print("verify after the run:", "ledger is sound" if not unsound else f"UNSOUND: {unsound}")
        return code or (1 if unsound else 0)
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    raise SystemExit(main())
