"""While PostgreSQL is down or restarting, every path answers 503 `unavailable` with
Retry-After (never 500), and a retry with the same Idempotency-Key completes once:
against a real server the test starts, stops and restarts itself."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from app.cli import run_migrations
from app.config import Environment, Settings
from app.db import asyncpg_dsn
from app.ledger.verify import verify
from app.main import create_app
from tests.pgcluster import PrivateCluster, private_cluster
from tests.support import BOOTSTRAP_KEY, Api, new_program


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    with private_cluster() as server:

        async def create() -> None:
            connection = await asyncpg.connect(asyncpg_dsn(server.url()))
            try:
                await connection.execute("CREATE DATABASE ledger")
            finally:
                await connection.close()

        asyncio.run(create())
        run_migrations(server.url("ledger"))
        yield server


@pytest.fixture
async def service(cluster: PrivateCluster) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        env=Environment.test, admin_key=SecretStr(BOOTSTRAP_KEY), db_pool_size=8, db_statement_timeout_ms=5000
    )
    application = create_app(settings, database_url=cluster.url("ledger"))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://ledger.test") as client:
            yield client


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "1"
    assert response.json()["code"] == "unavailable"


async def entries_under(cluster: PrivateCluster, keys: list[str]) -> Counter[str]:
    connection = await asyncpg.connect(asyncpg_dsn(cluster.url("ledger")))
    try:
        rows = await connection.fetch(
            "SELECT idempotency_key, count(*) AS n FROM journal_entry"
            " WHERE idempotency_key = ANY($1::text[]) GROUP BY 1",
            keys,
        )
        return Counter({row["idempotency_key"]: row["n"] for row in rows})
    finally:
        await connection.close()


async def sound(cluster: PrivateCluster) -> list[str]:
    connection = await asyncpg.connect(asyncpg_dsn(cluster.url("ledger")))
    try:
        return [outcome.name for outcome in await verify(connection) if outcome.mismatches]
    finally:
        await connection.close()


class TestDatabaseDown:
    async def test_every_path_answers_503_and_the_retries_complete_once(
        self, service: httpx.AsyncClient, cluster: PrivateCluster
    ) -> None:
        api: Api = await new_program(service)
        member = await api.enrol()
        await api.use_rules({"earn": {"base": {"points": 1, "per": "1.00"}}})
        await asyncio.to_thread(cluster.stop)
        try:
            down = {
                "enrol (SQLAlchemy)": await api.post(
                    "/v1/members", {"external_id": "late"}, idempotency_key=None
                ),
                "award (asyncpg)": await api.post(
                    f"/v1/members/{member}/awards",
                    {"points": 10, "reason": "x"},
                    idempotency_key="down-award",
                ),
                "order": await api.post(
                    "/v1/orders",
                    {
                        "order_id": "down-order",
                        "member": member,
                        "total": {"amount": "12.00", "currency": "EUR"},
                        "paid_at": "2026-01-01T00:00:00Z",
                    },
                    idempotency_key="down-order",
                ),
                "member view": await api.get(f"/v1/members/{member}"),
                "statement": await api.get(f"/v1/members/{member}/entries"),
                "rules": await api.get("/v1/rules"),
                "api keys": await api.get("/v1/api-keys"),
            }
        finally:
            await asyncio.to_thread(cluster.start)
        for path, response in down.items():
            assert response.status_code == 503, f"{path}: {response.status_code} {response.text}"
            assert_unavailable(response)

        # Back up: the retries complete (a pooled connection the restart closed may
        # cost one more 503 before the pool replaces it).
        for _ in range(5):
            award = await api.post(
                f"/v1/members/{member}/awards", {"points": 10, "reason": "x"}, idempotency_key="down-award"
            )
            if award.status_code != 503:
                break
        assert award.status_code == 201, award.text
        for _ in range(5):
            enrolled = await api.post("/v1/members", {"external_id": "late"}, idempotency_key=None)
            if enrolled.status_code != 503:
                break
        assert enrolled.status_code == 201, enrolled.text
        again = await api.post(
            f"/v1/members/{member}/awards", {"points": 10, "reason": "x"}, idempotency_key="down-award"
        )
        assert again.headers.get("idempotent-replayed") == "true"
        assert (await entries_under(cluster, ["down-award"]))["down-award"] == 1
        assert await sound(cluster) == []


class TestRestartUnderLoad:
    async def test_only_201_or_503_and_every_operation_lands_exactly_once(
        self, service: httpx.AsyncClient, cluster: PrivateCluster
    ) -> None:
        api: Api = await new_program(service)
        members = [await api.enrol() for _ in range(8)]
        numbers = itertools.count()
        statuses: Counter[int] = Counter()
        keys: list[str] = []
        stop = asyncio.Event()

        async def awarder(member: str) -> None:
            while not stop.is_set():
                key = f"restart-{next(numbers)}"
                keys.append(key)
                for _ in range(200):  # retry the same key until it lands
                    response = await api.post(
                        f"/v1/members/{member}/awards", {"points": 1, "reason": "load"}, idempotency_key=key
                    )
                    statuses[response.status_code] += 1
                    if response.status_code != 503:
                        break
                    assert_unavailable(response)
                    await asyncio.sleep(0.05)

        workers = [asyncio.create_task(awarder(member)) for member in members]
        await asyncio.sleep(0.5)
        await asyncio.to_thread(cluster.restart, "fast")
        await asyncio.sleep(0.5)
        await asyncio.to_thread(cluster.restart, "immediate")  # a crash: no shutdown checkpoint
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*workers)

        assert set(statuses) <= {201, 503}, statuses
        assert statuses[503] > 0, "the restarts were not noticed: the test proves nothing"
        landed = await entries_under(cluster, keys)
        assert set(landed.values()) == {1}
        assert len(landed) == len(keys)
        assert await sound(cluster) == []
