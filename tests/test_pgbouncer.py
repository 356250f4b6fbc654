"""The service behind a real PgBouncer (Debian's 1.18) in transaction pooling mode.

The test starts its own pgbouncer (tests/pgbouncer.py) in front of a database of
its own on the shared server, with 2 server connections per pool, fewer than the
requests it sends at once, and `connect_query` setting the statement timeout. It
runs `points-ledger serve` through it as an operator would (with
LEDGER_DB_TRANSACTION_POOLING=true and LEDGER_DIRECT_DATABASE_URL straight to
PostgreSQL), then the worker and `verify`. Without the setting, the service cannot
start through PgBouncer at all (it refuses the statement_timeout startup
parameter): a test keeps that true, so that the setting's reason stays visible.

PgBouncer missing is a failure, not a skip: CI installs it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy import text

from app.config import Environment, Settings
from app.db import Connection, Database, DatabaseMisconfigured, asyncpg_dsn
from tests.conftest import scratch_database
from tests.orders.test_simulate import DRAFT
from tests.pgbouncer import INSTALL, PgBouncer, binary, pgbouncer
from tests.pgcluster import free_port
from tests.support import BOOTSTRAP_KEY, Api, entries_with_key, new_program, scratch_name

# The statement timeout the pooler's server connections get (connect_query), and
# the service is told to expect.
TIMEOUT_MS = 3000
# Server connections per (database, user) pool: far fewer than requests in flight.
SERVER_CONNECTIONS = 2
IN_FLIGHT = 24
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Pooled:
    bouncer: PgBouncer
    database: str  # its name
    direct_url: str  # straight to PostgreSQL

    @property
    def url(self) -> str:
        return self.bouncer.url(self.database)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a `points-ledger` command run through the pooler."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("LEDGER_")}
        return env | {
            "LEDGER_ENV": "test",
            "LEDGER_DATABASE_URL": self.url,
            "LEDGER_DIRECT_DATABASE_URL": self.direct_url,
            "LEDGER_DB_TRANSACTION_POOLING": "true",
            "LEDGER_DB_STATEMENT_TIMEOUT_MS": str(TIMEOUT_MS),
            "LEDGER_DB_POOL_SIZE": "10",
            # Long enough that a revocation seen in time can only have come by NOTIFY.
            "LEDGER_AUTH_CACHE_SECONDS": "300",
            "LEDGER_ADMIN_KEY": BOOTSTRAP_KEY,
            "LEDGER_ACCESS_LOG": "false",
            **extra,
        }

    def direct_dsn(self) -> str:
        return asyncpg_dsn(self.direct_url)


def command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from app.cli import main; main()", *args]


@pytest.fixture(scope="module")
def pooled() -> Iterator[Pooled]:
    if binary() is None:
        pytest.fail(f"pgbouncer is not installed, and this test needs it: {INSTALL}")
    with (
        scratch_database("pgbouncer") as direct_url,
        pgbouncer(
            pool_size=SERVER_CONNECTIONS, connect_query=f"SET statement_timeout = {TIMEOUT_MS}"
        ) as bouncer,
    ):
        yield Pooled(bouncer, scratch_name("pgbouncer"), direct_url)


def start_serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            command("serve"), cwd=ROOT, env=env | {"LEDGER_PORT": str(port)}, stdout=out, stderr=out
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@dataclass(frozen=True)
class Service:
    base: str
    log: Path

    def unavailable(self) -> list[str]:
        """What the service logged of each 503 (why the database could not serve)."""
        return [line for line in self.log.read_text().splitlines() if "database unavailable" in line]


@pytest.fixture(scope="module")
def service(pooled: Pooled, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """`points-ledger serve` through the pooler."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    process = start_serve(pooled.env(), port, log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"serve exited:\n{log.read_text()}\n{pooled.bouncer.log_tail()}"
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, f"serve did not come up:\n{log.read_text()}"
                time.sleep(0.3)
        yield Service(base, log)
    finally:
        stop(process)
    assert "Traceback" not in log.read_text(), log.read_text()


@pytest.fixture(scope="module")
async def http(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=service.base, timeout=30) as client:
        yield client


@pytest.fixture
async def api(http: httpx.AsyncClient) -> Api:
    return await new_program(http)


@pytest.fixture
async def direct(pooled: Pooled) -> AsyncIterator[asyncpg.Connection]:
    """A connection straight to the test's database, beside the service."""
    connection = await asyncpg.connect(pooled.direct_dsn())
    try:
        yield connection
    finally:
        await connection.close()


class TestThroughPgBouncer:
    async def test_ready_and_awards(self, api: Api) -> None:
        assert (await api.client.get("/readyz")).status_code == 200
        member = await api.enrol()
        response = await api.award(member, 100)
        assert response.status_code == 201, response.text
        assert await api.available(member) == 100

    async def test_an_order_and_its_refund(self, api: Api) -> None:
        member = await api.enrol()
        placed = await api.order(
            member, "40.00", paid_at=(datetime.now(UTC) - timedelta(hours=1)).isoformat()
        )
        assert placed.status_code == 201, placed.text
        order = placed.json()
        assert order["points"] == 40
        refund = await api.refund(order["order_id"], amount={"amount": "40.00", "currency": "EUR"})
        assert refund.status_code == 201, refund.text
        assert refund.json()["points_reversed"] == 40
        assert sum((await api.balances(member)).values()) == 0

    async def test_concurrent_requests_share_few_server_connections(
        self, api: Api, pooled: Pooled, service: Service
    ) -> None:
        # One member each: no request waits on another's row lock (whose commit can
        # take seconds when other jobs load this machine's disk), only for a server
        # connection.
        members = [await api.enrol() for _ in range(IN_FLIGHT)]
        answers = await asyncio.gather(*(api.award(member, 5) for member in members))
        assert [answer.status_code for answer in answers] == [201] * IN_FLIGHT, service.unavailable()
        assert sum([await api.available(member) for member in members]) == 5 * IN_FLIGHT
        # The service held more connections to the pooler than the pooler held to
        # PostgreSQL: transactions of different clients ran on the same server
        # connections (with named prepared statements, they would have failed).
        clients = [row for row in pooled.bouncer.admin("SHOW CLIENTS") if row["database"] == pooled.database]
        servers = [row for row in pooled.bouncer.admin("SHOW SERVERS") if row["database"] == pooled.database]
        assert len(clients) > SERVER_CONNECTIONS
        assert 0 < len(servers) <= SERVER_CONNECTIONS

    async def test_a_retry_replays_and_one_key_makes_one_entry(
        self, api: Api, direct: asyncpg.Connection
    ) -> None:
        member = await api.enrol()
        body = {"points": 7, "reason": "goodwill"}
        path = f"/v1/members/{member}/awards"
        first = await api.post(path, body, idempotency_key="pooled-1")
        again = await api.post(path, body, idempotency_key="pooled-1")
        assert (first.status_code, again.status_code) == (201, 201)
        assert again.content == first.content
        raced = await asyncio.gather(*(api.post(path, body, idempotency_key="pooled-2") for _ in range(8)))
        assert {answer.status_code for answer in raced} == {201}
        assert len({answer.content for answer in raced}) == 1
        assert await entries_with_key(direct, api.program, "pooled-1") == 1
        assert await entries_with_key(direct, api.program, "pooled-2") == 1
        other = await api.post(path, {**body, "points": 8}, idempotency_key="pooled-1")
        assert other.status_code == 422, other.text
        assert await api.available(member) == 14

    async def test_a_revocation_reaches_the_cache_over_the_direct_connection(
        self, api: Api, direct: asyncpg.Connection
    ) -> None:
        key = await api.key_with("points:adjust")
        key_id = await direct.fetchval(
            "SELECT k.id FROM api_key k JOIN program p ON p.id = k.program_id"
            " WHERE p.code = $1 AND k.name = 'scoped'",
            api.program,
        )
        member = await api.enrol()
        path, body = f"/v1/members/{member}/awards", {"points": 1, "reason": "cached"}
        assert (await api.post(path, body, key=key)).status_code == 201
        # Changing its scopes behind the service's back notifies nothing: the key is
        # still trusted from the cache, so the service caches, so it is LISTENing.
        await direct.execute("UPDATE api_key SET scopes = '{}' WHERE id = $1", key_id)
        still = await api.post(path, body, key=key)
        assert still.status_code == 201, still.text
        # A revocation NOTIFYs; the service hears it on its direct connection and
        # drops the key well inside the 300 s it would otherwise trust it.
        await direct.execute("UPDATE api_key SET revoked_at = now() WHERE id = $1", key_id)
        deadline = time.monotonic() + 5
        while (status := (await api.get(f"/v1/members/{member}", key=key)).status_code) != 401:
            assert time.monotonic() < deadline, f"the revoked key is still accepted ({status})"
            await asyncio.sleep(0.05)

    async def test_a_lock_wait_past_the_statement_timeout_is_503(
        self, api: Api, direct: asyncpg.Connection
    ) -> None:
        member = await api.enrol()
        async with direct.transaction():
            await direct.execute(
                "SELECT 1 FROM member_balance b JOIN member m ON m.id = b.member_id"
                " JOIN program p ON p.id = m.program_id WHERE p.code = $1 AND m.external_id = $2 FOR UPDATE",
                api.program,
                member,
            )
            started = time.monotonic()
            waited = await api.award(member, 3)
            elapsed = time.monotonic() - started
        assert waited.status_code == 503, waited.text
        assert waited.json()["code"] == "unavailable"
        assert TIMEOUT_MS / 1000 * 0.9 <= elapsed < 10
        assert (await api.award(member, 3)).status_code == 201
        assert await api.available(member) == 3

    async def test_a_what_if_replay_streams_through_the_pooler(self, api: Api, service: Service) -> None:
        member = await api.enrol()
        for total, day in (("40.00", "07"), ("10.00", "08")):
            placed = await api.order(member, total, paid_at=f"2025-03-{day}T12:00:00Z")
            assert placed.status_code == 201, placed.text
        draft = (await api.post("/v1/rules", DRAFT, idempotency_key=None)).json()["version"]
        response = await api.post(
            f"/v1/rules/{draft}/simulate",
            {"from": "2025-03-01T00:00:00Z", "to": "2025-04-01T00:00:00Z"},
            idempotency_key=None,
        )
        assert response.status_code == 200, (response.text, service.unavailable())
        assert (response.json()["orders"], response.json()["simulated_points"]) == (2, 40 + 20)

    async def test_migrate_the_worker_and_verify_run_with_the_setting(
        self, pooled: Pooled, service: Service
    ) -> None:
        # After the tests above (a module runs in order): the ledger they wrote.
        # migrate, verify and the worker's job locks go straight to PostgreSQL.
        for args in (("migrate",), ("worker", "--once"), ("verify",)):
            done = await asyncio.to_thread(
                subprocess.run,
                command(*args),
                cwd=ROOT,
                env=pooled.env(),
                capture_output=True,
                text=True,
                timeout=90,
            )
            assert done.returncode == 0, done.stdout + done.stderr
        assert "ledger is sound" in done.stdout


class TestStartup:
    def test_without_the_setting_the_service_cannot_start_through_pgbouncer(
        self, pooled: Pooled, tmp_path: Path
    ) -> None:
        env = pooled.env(LEDGER_DB_TRANSACTION_POOLING="false")
        process = start_serve(env, free_port(), tmp_path / "serve.log")
        try:
            process.wait(60)
        finally:
            stop(process)
        output = (tmp_path / "serve.log").read_text()
        assert process.returncode != 0, output
        assert "unsupported startup parameter: statement_timeout" in output

    async def test_refuses_a_pooler_whose_statement_timeout_is_not_the_settings(self, pooled: Pooled) -> None:
        settings = Settings(
            env=Environment.test,
            database_url=pooled.url,
            direct_database_url=pooled.direct_url,
            db_transaction_pooling=True,
            db_statement_timeout_ms=TIMEOUT_MS + 500,
        )
        db = Database(pooled.url, settings)
        with pytest.raises(
            DatabaseMisconfigured, match=f"statement_timeout {TIMEOUT_MS} ms.* {TIMEOUT_MS + 500} ms"
        ):
            await db.connect()
        await db.dispose()

    async def test_sessions_are_utc_whatever_the_database_says(
        self, pooled: Pooled, new_york: tuple[str, str]
    ) -> None:
        name, direct_url = new_york
        plain = await asyncpg.connect(asyncpg_dsn(direct_url))
        try:
            assert await plain.fetchval("SHOW timezone") == "America/New_York"
        finally:
            await plain.close()
        url = pooled.bouncer.url(name)
        settings = Settings(
            env=Environment.test,
            database_url=url,
            direct_database_url=direct_url,
            db_transaction_pooling=True,
            db_statement_timeout_ms=TIMEOUT_MS,
        )
        db = Database(url, settings)
        await db.connect()
        try:
            # PgBouncer sets the TimeZone each client asked for on the server
            # connection it lends it.
            assert await db.pool.fetchval("SHOW timezone") == "UTC"
            async with db.unit_of_work() as session:
                assert (await session.execute(text("SHOW timezone"))).scalar() == "UTC"
        finally:
            await db.dispose()


# Each server connection of the pooler below explains every statement to its
# client (auto_explain at NOTICE, a JIT section when JIT compiled it) and JIT-compiles
# every statement it runs with JIT on (cost 0; no inlining or optimisation, so it
# stays cheap).
EXPLAINING = (
    f"SET statement_timeout = {TIMEOUT_MS}; LOAD $$auto_explain$$; SET auto_explain.log_min_duration = 0; "
    "SET auto_explain.log_level = notice; SET jit_above_cost = 0; "
    "SET jit_inline_above_cost = -1; SET jit_optimize_above_cost = -1"
)


async def type_lookup_plans(connection: Connection) -> list[str]:
    """The plans of asyncpg's type lookups (its typeinfo_tree query) while
    `connection` runs its first statement with a bigint[] parameter, as the pooler's
    server connections explained them."""
    notices: list[str] = []

    def notice(_: object, message: asyncpg.PostgresLogMessage) -> None:
        notices.append(message.message)

    connection.add_log_listener(notice)
    try:
        assert await connection.fetchval("SELECT cardinality($1::bigint[])", [1, 2]) == 2
        await asyncio.sleep(0.1)  # listeners are called soon after the notice came
    finally:
        connection.remove_log_listener(notice)
    return [text for text in notices if "typeinfo_tree" in text]


class TestTypeLookups:
    async def test_asyncpgs_type_lookup_runs_without_jit_on_whichever_server_connection(
        self, pooled: Pooled
    ) -> None:
        # asyncpg switches JIT off for its type lookup in the statement before it
        # (PooledConnection in app/db.py says why it matters). With round_robin,
        # one client's consecutive statements run on different server connections,
        # as under load they do whenever another client takes the one it used.
        direct = await asyncpg.connect(pooled.direct_dsn())
        try:
            if not await direct.fetchval("SELECT pg_jit_available()"):
                pytest.skip("this PostgreSQL cannot JIT-compile, so the lookup cannot be slowed by it")
        finally:
            await direct.close()
        with pgbouncer(pool_size=SERVER_CONNECTIONS, connect_query=EXPLAINING, round_robin=True) as bouncer:
            url = bouncer.url(pooled.database)
            dsn = asyncpg_dsn(url)
            # Both server connections open and idle.
            clients = [await asyncpg.connect(dsn, statement_cache_size=0) for _ in range(SERVER_CONNECTIONS)]
            for client in clients:
                await client.execute("BEGIN")
            for client in clients:
                await client.execute("COMMIT")
                await client.close()
            # What the test can see: asyncpg as it comes, through this pooler, runs
            # its lookup JIT-compiled.
            plain = await asyncpg.connect(dsn, statement_cache_size=0)
            try:
                plans = await type_lookup_plans(plain)
            finally:
                await plain.close()
            assert plans, "no plan of asyncpg's type lookup came back"
            assert all("JIT:" in plan for plan in plans), plans
            # The service's connections through a transaction-mode pooler.
            settings = Settings(
                env=Environment.test,
                database_url=url,
                direct_database_url=pooled.direct_url,
                db_transaction_pooling=True,
                db_statement_timeout_ms=TIMEOUT_MS,
            )
            db = Database(url, settings)
            await db.connect()
            try:
                async with db.pool.acquire() as connection:
                    plans = await type_lookup_plans(connection)
            finally:
                await db.dispose()
            assert plans, "no plan of asyncpg's type lookup came back"
            assert not any("JIT:" in plan for plan in plans), plans


@pytest.fixture
def new_york() -> Iterator[tuple[str, str]]:
    """An empty database whose sessions default to America/New_York: its name and URL."""
    with scratch_database("pgbouncer_tz", migrated=False) as url:
        name = scratch_name("pgbouncer_tz")

        async def set_zone() -> None:
            admin = await asyncpg.connect(asyncpg_dsn(url))
            try:
                await admin.execute(f"ALTER DATABASE \"{name}\" SET timezone = 'America/New_York'")
            finally:
                await admin.close()

        asyncio.run(set_zone())
        yield name, url
