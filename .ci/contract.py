"""A bounded schemathesis run over openapi.yaml against a live service (CI).

Creates a database of its own, migrates it, starts `points-ledger serve` on a free
port of 127.0.0.1 with an admin key of the default program, runs schemathesis
(every operation; examples, coverage, fuzzing and stateful phases; a fixed seed;
a time budget), then once more over the `/v1/partner/` operations with a partner's
key (a partner made over HTTP, with rates, a key and a `partner_earn` section), then
stops the server by its PID and drops the database. Fails
on any 5xx, any status or content type the contract does not declare, and any
response that does not match its schema; and runs `verify` over what it wrote.

    uv run python .ci/contract.py [--max-time 150] [--seed 20261128]
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
from app.partners.settlement import VERIFY_CHECKS  # noqa: E402

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
        # a key is found by its digest through the global api_key_lookup first
        await connection.execute(
            "WITH lookup AS (INSERT INTO api_key_lookup (key_hash, program_id) VALUES ($2, 1))"
            " INSERT INTO api_key (id, program_id, name, key_prefix, key_hash, scopes, created_at)"
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
        return [outcome.name for outcome in await verify(connection, VERIFY_CHECKS) if outcome.mismatches]
    finally:
        await connection.close()


def call(base: str, key: str, method: str, path: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        found: dict[str, object] = json.loads(answer.read())
        return found


def partner_key(base: str, key: str) -> str:
    """A partner with every role, its rates, a partner_earn section, and its key."""
    code = "contract-partner"
    call(base, key, "POST", "/v1/partners", {
        "code": code, "name": "Contract partner", "billing": "postpaid", "currency": "EUR",
        "roles": ["earn", "redeem", "convert_out", "convert_in", "donation"],
    })  # fmt: skip
    for rate in (
        {"kind": "earn", "price_per_point": "0.01"},
        {"kind": "redeem", "price_per_point": "0.008"},
        {"kind": "convert_out", "partner_units_per_point": "0.5"},
        {"kind": "convert_in", "partner_units_per_point": "2"},
    ):
        call(base, key, "POST", f"/v1/partners/{code}/rates", rate)
    rules = call(base, key, "POST", "/v1/rules", {
        "earn": {"base": {"points": 1, "per": "1", "rounding": "floor"}},
        "partner_earn": {code: {"base": {"points": 2, "per": "1", "rounding": "floor"}}},
    })  # fmt: skip
    call(base, key, "POST", f"/v1/rules/{rules['version']}/activate", {})
    made = call(base, key, "POST", "/v1/api-keys", {
        "name": "contract partner", "partner": code,
        "scopes": ["partner:earn", "partner:redeem", "partner:convert"],
    })  # fmt: skip
    return str(made["key"])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-time", type=int, default=150)
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--partner-max-time", type=int, default=60)
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
        print("== the /v1/partner/ operations, with a partner's key")
        partner = partner_key(base, key)
        as_partner = [part.replace(f"Bearer {key}", f"Bearer {partner}") for part in command]
        as_partner[as_partner.index("--max-time") + 1] = str(args.partner_max_time)
        as_partner += ["--include-path-regex", "^/v1/partner/"]
        partner_code = subprocess.run(as_partner, cwd=ROOT, check=False).returncode
        code = code or partner_code
        unsound = asyncio.run(unsound_checks(url))
        print("verify after the run:", "ledger is sound" if not unsound else f"UNSOUND: {unsound}")
        return code or (1 if unsound else 0)
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                # Seen once on a loaded machine after a fuzzing run: the service had not
                # finished its graceful shutdown a minute after SIGTERM. Said loudly, and
                # killed so the database can be dropped; the ledger was verified above.
                print("WARNING: the service did not stop within 60 s of SIGTERM; killed it")
                server.kill()
                server.wait()
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    raise SystemExit(main())
