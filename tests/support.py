"""Test helpers: a settable clock and a small client for one program."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import os
import time
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from app.db import asyncpg_dsn

SERVER_URL = os.environ.get("LEDGER_TEST_SERVER_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
# Every database the suite creates is named after this run (and the xdist worker),
# so two runs on one server never touch each other's: `<prefix>_<run>_<worker>`.
# Under xdist every worker of one run sees the same PYTEST_XDIST_TESTRUNUID.
_PREFIX = os.environ.get("LEDGER_TEST_DATABASE_PREFIX", "points_ledger_test")
_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID") or uuid.uuid4().hex
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
TEST_DATABASE = f"{_PREFIX}_{_RUN[:10]}_{_WORKER}".lower()
BOOTSTRAP_KEY = "test-bootstrap-admin-key"


def database_url(name: str = TEST_DATABASE) -> str:
    base, _, _ = SERVER_URL.rpartition("/")
    return f"{base}/{name}"


def dsn(name: str = TEST_DATABASE) -> str:
    return asyncpg_dsn(database_url(name))


def scratch_name(purpose: str) -> str:
    """A database name of this run's own, for a test that needs one more database."""
    return f"{TEST_DATABASE}_{purpose}"


async def create_database(name: str) -> None:
    """Create `name`; it must not exist (the suite never drops what it did not create)."""
    connection = await asyncpg.connect(dsn("postgres"))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def drop_database(name: str) -> None:
    """Drop a database this run created."""
    assert name.startswith(TEST_DATABASE), f"{name} is not this test run's database"
    connection = await asyncpg.connect(dsn("postgres"))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def keep_databases() -> bool:
    """LEDGER_TEST_KEEP_DATABASES=1 leaves the run's databases behind for inspection."""
    return os.environ.get("LEDGER_TEST_KEEP_DATABASES", "") not in ("", "0", "false")


class MovableClock:
    """The real time plus an offset tests can move."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


_sequence = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{next(_sequence)}"


class Api:
    """A client acting with one program's admin key, plus shortcuts for common calls."""

    def __init__(self, client: httpx.AsyncClient, key: str, program: str) -> None:
        self.client = client
        self.key = key
        self.program = program

    def headers(self, key: str | None = None, idempotency_key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    async def get(self, path: str, *, key: str | None = None, **params: Any) -> httpx.Response:
        return await self.client.get(path, headers=self.headers(key), params=params)

    async def post(
        self, path: str, body: Any, *, key: str | None = None, idempotency_key: str | None = "auto"
    ) -> httpx.Response:
        if idempotency_key == "auto":
            idempotency_key = unique("idem")
        return await self.client.post(path, json=body, headers=self.headers(key, idempotency_key))

    async def enrol(self, external_id: str | None = None, **fields: Any) -> str:
        external_id = external_id or unique("m")
        response = await self.post(
            "/v1/members", {"external_id": external_id, **fields}, idempotency_key=None
        )
        assert response.status_code == 201, response.text
        return external_id

    async def award(self, member: str, points: int, **fields: Any) -> httpx.Response:
        return await self.post(f"/v1/members/{member}/awards", {"points": points, "reason": "test", **fields})

    async def redeem(self, member: str, points: int, **fields: Any) -> httpx.Response:
        return await self.post(f"/v1/members/{member}/redemptions", {"points": points, **fields})

    async def transfer(self, source: str, target: str, points: int) -> httpx.Response:
        return await self.post(
            "/v1/transfers", {"from_member": source, "to_member": target, "points": points}
        )

    async def reverse(self, entry_id: str, reason: str = "mistake") -> httpx.Response:
        return await self.post(f"/v1/entries/{entry_id}/reversal", {"reason": reason})

    async def use_rules(self, document: dict[str, Any]) -> int:
        """Store a rules document and make it the active version; returns the version."""
        created = await self.post("/v1/rules", document, idempotency_key=None)
        assert created.status_code == 201, created.text
        version = int(created.json()["version"])
        activated = await self.post(f"/v1/rules/{version}/activate", {}, idempotency_key=None)
        assert activated.status_code == 200, activated.text
        return version

    async def order(
        self, member: str, total: str, *, order_id: str | None = None, currency: str = "EUR", **fields: Any
    ) -> httpx.Response:
        body = {
            "order_id": order_id or unique("o"),
            "member": member,
            "total": {"amount": total, "currency": currency},
            "paid_at": fields.pop("paid_at", datetime.now(UTC).isoformat()),
            **fields,
        }
        return await self.post("/v1/orders", body)

    async def refund(self, order_id: str, **fields: Any) -> httpx.Response:
        body = {"refund_id": fields.pop("refund_id", unique("rf")), **fields}
        return await self.post(f"/v1/orders/{order_id}/refunds", body)

    async def balances(self, member: str) -> dict[str, int]:
        response = await self.get(f"/v1/members/{member}")
        assert response.status_code == 200, response.text
        balances: dict[str, int] = response.json()["balances"]
        return balances

    async def available(self, member: str) -> int:
        response = await self.get(f"/v1/members/{member}")
        assert response.status_code == 200, response.text
        return int(response.json()["balances"]["available"])

    async def key_with(self, *scopes: str) -> str:
        response = await self.client.post(
            "/v1/api-keys", json={"name": "scoped", "scopes": list(scopes)}, headers=self.headers()
        )
        assert response.status_code == 201, response.text
        return str(response.json()["key"])


async def entries_with_key(db: asyncpg.Connection, program: str, key: str) -> int:
    """How many journal entries a program holds under one Idempotency-Key."""
    count = await db.fetchval(
        "SELECT count(*) FROM journal_entry e JOIN program p ON p.id = e.program_id"
        " WHERE p.code = $1 AND e.idempotency_key = $2",
        program,
        key,
    )
    return int(count)


async def new_program(client: httpx.AsyncClient) -> Api:
    """A fresh program (tenant) and a client holding its admin key."""
    code = unique("p").lower()
    response = await client.post(
        "/v1/programs",
        json={"code": code, "name": f"Program {code}"},
        headers={"Authorization": f"Bearer {BOOTSTRAP_KEY}"},
    )
    assert response.status_code == 201, response.text
    return Api(client, response.json()["admin_key"], code)


def wait_ready(base_url: str, seconds: float = 60) -> None:
    """Until a service started by a test answers /readyz."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"{base_url}/readyz", timeout=1):
                return
        except OSError:
            assert time.monotonic() < deadline, f"{base_url} did not come up in {seconds} s"
            time.sleep(0.3)


async def until(condition: Callable[[], object], *, seconds: float, every: float = 0.01) -> None:
    """Poll a condition another task or process changes, every `every` seconds, until
    it holds; fail the test if it still does not after `seconds`. `condition` may
    return an awaitable (an async function that queries the database)."""
    deadline = time.monotonic() + seconds
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() >= deadline:
            pytest.fail(f"condition not met within {seconds} s")
        await asyncio.sleep(every)


async def program_id(db: asyncpg.Connection, code: str) -> int:
    return int(await db.fetchval("SELECT id FROM program WHERE code = $1", code))


async def waiting_for_chainer(db: asyncpg.Connection, pid: int) -> int:
    """The program's committed entries and events the chainer has not taken yet."""
    from app.ledger.chain import state

    unsequenced = await db.fetchval(
        "SELECT count(*) FROM event_log WHERE program_id = $1 AND sequence IS NULL", pid
    )
    return (await state(db, pid)).entries_unchained + int(unsequenced)


async def chain_program(db: asyncpg.Connection, code: str, *, settle: float = 10.0) -> int:
    """Run the chainer over one program (the tests' stand-in for the background
    chainer) until nothing it committed waits; how many entries it chained. The
    chainer takes only what transactions older than every running one wrote, so a
    transaction elsewhere on the server (another test worker, a benchmark) can hold
    it back for a moment: wait up to `settle` seconds, then fail. `settle=0`: one
    pass, whatever stays waiting (for tests that hold a transaction on purpose)."""
    from app.ledger.chain import chain_batch, head

    pid = await program_id(db, code)
    before = (await head(db, pid)).sequence
    deadline = time.monotonic() + settle
    while True:
        while await chain_batch(db, pid, datetime.now(UTC)) > 0:
            pass
        if settle == 0 or await waiting_for_chainer(db, pid) == 0:
            return (await head(db, pid)).sequence - before
        assert time.monotonic() < deadline, f"the chainer was held back over {settle} s"
        await asyncio.sleep(0.02)
