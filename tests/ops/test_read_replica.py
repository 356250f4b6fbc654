"""Read replicas, against a real one: a private primary and a `pg_basebackup -R`
streaming replica of it, both on loopback, started by the test.

Reads that tolerate lag come from the replica (with its replay paused they show
what it had); a read that sends back a write's `Ledger-Position` as
`Ledger-Min-Position` shows that write, from the replica once it has replayed it,
else (after LEDGER_READ_WAIT_MS) from the primary; a replica that is down sends
every read to the primary; and the ledger stays sound."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from app.cli import run_migrations
from app.config import Environment, Settings
from app.db import asyncpg_dsn
from app.ledger.verify import verify
from app.main import create_app
from tests.pgcluster import PrivateCluster, private_cluster, private_standby
from tests.support import BOOTSTRAP_KEY, Api, new_program, unique

WAIT_MS = 300  # LEDGER_READ_WAIT_MS for these tests
POSITION = re.compile(r"^1\.[0-9a-f]{16}$")


@dataclass
class Servers:
    primary: PrivateCluster
    replica: PrivateCluster

    def dsn(self, server: PrivateCluster) -> str:
        return asyncpg_dsn(server.url("ledger"))


async def _query(dsn: str, sql: str) -> Any:
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetchval(sql)
    finally:
        await connection.close()


async def caught_up(servers: Servers, seconds: float = 10) -> None:
    """Until the replica has replayed everything the primary has written so far."""
    target: int = await _query(servers.dsn(servers.primary), "SELECT pg_current_wal_lsn()")
    deadline = time.monotonic() + seconds
    while (await _query(servers.dsn(servers.replica), "SELECT pg_last_wal_replay_lsn()") or 0) < target:
        assert time.monotonic() < deadline, "the replica did not catch up"
        await asyncio.sleep(0.02)


async def pause_replay(servers: Servers) -> None:
    dsn = servers.dsn(servers.replica)
    await _query(dsn, "SELECT pg_wal_replay_pause()")
    for _ in range(500):
        if await _query(dsn, "SELECT pg_get_wal_replay_pause_state()") == "paused":
            return
        await asyncio.sleep(0.01)
    raise AssertionError("replay did not pause")


async def resume_replay(servers: Servers) -> None:
    await _query(servers.dsn(servers.replica), "SELECT pg_wal_replay_resume()")


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    with private_cluster(settings={"wal_level": "replica", "max_wal_senders": "4"}) as primary:
        asyncio.run(_query(asyncpg_dsn(primary.url()), "CREATE DATABASE ledger"))
        run_migrations(primary.url("ledger"))
        with private_standby(primary) as replica:
            found = Servers(primary, replica)
            asyncio.run(caught_up(found))
            yield found


@pytest.fixture
async def paused(servers: Servers) -> AsyncIterator[Servers]:
    """The replica's replay paused (resumed afterwards)."""
    await caught_up(servers)
    await pause_replay(servers)
    try:
        yield servers
    finally:
        await resume_replay(servers)


@pytest.fixture(scope="module")
async def service(servers: Servers) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        env=Environment.test,
        admin_key=SecretStr(BOOTSTRAP_KEY),
        database_url=servers.primary.url("ledger"),
        read_database_url=servers.replica.url("ledger"),
        read_wait_ms=WAIT_MS,
        db_pool_size=6,
        serve_background=False,
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://ledger.test") as client:
            yield client


@pytest.fixture
async def ledger(service: httpx.AsyncClient, servers: Servers) -> Api:
    """A new program (created on the primary, replayed by the replica)."""
    api = await new_program(service)
    await caught_up(servers)
    return api


def position_of(response: httpx.Response) -> str:
    assert response.status_code in (200, 201), response.text
    position = response.headers["Ledger-Position"]
    assert POSITION.match(position), position
    return position


async def read(api: Api, path: str, position: str | None = None, **params: str) -> httpx.Response:
    headers = api.headers() | ({} if position is None else {"Ledger-Min-Position": position})
    return await api.client.get(path, headers=headers, params=params)


class TestWritesAnswerTheirPosition:
    async def test_every_successful_write_and_its_replay(self, ledger: Api) -> None:
        member = await ledger.enrol()
        key = unique("award")
        first = await ledger.post(
            f"/v1/members/{member}/awards", {"points": 5, "reason": "x"}, idempotency_key=key
        )
        again = await ledger.post(
            f"/v1/members/{member}/awards", {"points": 5, "reason": "x"}, idempotency_key=key
        )
        assert again.headers["Idempotent-Replayed"] == "true"
        assert position_of(again) >= position_of(first)  # fixed width: text order is position order
        patched = await ledger.client.patch(
            f"/v1/members/{member}", json={"metadata": {"a": 1}}, headers=ledger.headers()
        )
        position_of(patched)
        refused = await ledger.redeem(member, 1_000)  # nothing written
        assert refused.status_code == 422
        assert "Ledger-Position" not in refused.headers
        assert "Ledger-Position" not in (await read(ledger, f"/v1/members/{member}")).headers

    async def test_a_malformed_min_position_is_a_problem(self, ledger: Api) -> None:
        member = await ledger.enrol()
        for sent in ("", "banana", "1.00000000000000zz", "2.0000000000000001", "1.0000000000000001 "):
            answer = await read(ledger, f"/v1/members/{member}", sent)
            assert answer.status_code == 400, (sent, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["code"] == "malformed_ledger_position"


class TestReadsComeFromTheReplica:
    async def test_stale_without_the_position_then_the_primary_after_the_wait(
        self, ledger: Api, paused: Servers
    ) -> None:
        member = await ledger.enrol()
        await resume_replay(paused)
        await caught_up(paused)
        await pause_replay(paused)
        position = position_of(await ledger.award(member, 100))

        stale = await read(ledger, f"/v1/members/{member}")
        assert stale.json()["balances"]["available"] == 0  # the replica, replay paused

        started = time.monotonic()
        fresh = await read(ledger, f"/v1/members/{member}", position)
        waited = time.monotonic() - started
        assert fresh.json()["balances"]["available"] == 100  # the primary, after the wait
        assert waited >= WAIT_MS / 1000 * 0.9

        # Replay resumes: the replica serves the position once it has replayed it.
        await resume_replay(paused)
        await caught_up(paused)
        await pause_replay(paused)
        later = position_of(await ledger.award(member, 1))  # the replica will not see this one
        started = time.monotonic()
        from_replica = await read(ledger, f"/v1/members/{member}", position)
        assert time.monotonic() - started < WAIT_MS / 1000 * 0.9  # no wait
        assert from_replica.json()["balances"]["available"] == 100  # the replica: without the later award
        assert (await read(ledger, f"/v1/members/{member}", later)).json()["balances"]["available"] == 101

    async def test_every_replica_read_lags_without_the_position_and_not_with_it(
        self, ledger: Api, paused: Servers
    ) -> None:
        """Each endpoint that reads from the replica, on things made after replay paused."""
        member = await ledger.enrol(unique("late"))
        position_of(await ledger.award(member, 50))
        order = await ledger.order(member, "20.00")
        order_id = order.json()["order_id"]
        hold = await ledger.post(f"/v1/members/{member}/holds", {"points": 10})
        hold_id = hold.json()["hold_id"]
        entry_id = order.json()["entry_id"]
        position = position_of(hold)
        # path -> (what the replica shows: status, or the list it answers), same with the position
        absent = {
            f"/v1/members/{member}": 404,
            f"/v1/members/{member}/entries": 404,
            f"/v1/members/{member}/balance": 404,
            f"/v1/members/{member}/tier": 404,
            f"/v1/members/{member}/holds": 404,
            f"/v1/members/{member}/orders": 404,
            f"/v1/entries/{entry_id}": 404,
            f"/v1/holds/{hold_id}": 404,
            f"/v1/orders/{order_id}": 404,
        }
        for path, status in absent.items():
            assert (await read(ledger, path)).status_code == status, path
            assert (await read(ledger, path, position)).status_code == 200, path
        assert (await read(ledger, "/v1/members", external_id_prefix=member)).json()["items"] == []
        listed = await read(ledger, "/v1/members", position, external_id_prefix=member)
        assert [item["external_id"] for item in listed.json()["items"]] == [member]
        assert (await read(ledger, "/v1/events", member=member)).status_code == 404  # no such member yet
        events = await read(ledger, "/v1/events", position, member=member)
        assert events.status_code == 200, events.text
        head = await read(ledger, "/v1/ledger/head")
        assert head.status_code == 200
        assert (
            head.json()["entries_unchained"]
            < (await read(ledger, "/v1/ledger/head", position)).json()["entries_unchained"]
        )

    async def test_an_activation_the_replica_has_not_replayed_is_not_cached_from_it(
        self, ledger: Api, paused: Servers
    ) -> None:
        member = await ledger.enrol()
        assert (await ledger.award(member, 500)).status_code == 201
        await resume_replay(paused)
        await caught_up(paused)
        await pause_replay(paused)
        version = await ledger.use_rules(
            {"earn": {"base": {"points": 1, "per": "1.00"}}, "redeem": {"min_points": 100}}
        )
        await asyncio.sleep(0.1)  # the activation's NOTIFY has emptied the cache
        # A member view on the replica reads the old active version there (for its tier)...
        assert (await read(ledger, f"/v1/members/{member}")).json()["balances"]["available"] == 500
        # ...which must not become the cached one that redemptions use.
        refused = await ledger.redeem(member, 10)
        assert refused.status_code == 422, f"redeemed under the replica's stale version: {refused.text}"
        assert refused.json()["code"] == "points_below_minimum"
        allowed = await ledger.redeem(member, 100)
        assert (allowed.status_code, allowed.json()["rules_version"]) == (201, version), allowed.text


class TestReplicaDown:
    async def test_reads_go_to_the_primary_and_come_back(self, ledger: Api, servers: Servers) -> None:
        member = await ledger.enrol()
        position = position_of(await ledger.award(member, 7))
        servers.replica.stop()
        try:
            started = time.monotonic()
            for _ in range(3):
                assert (await read(ledger, f"/v1/members/{member}")).json()["balances"]["available"] == 7
                assert (await read(ledger, f"/v1/members/{member}", position)).status_code == 200
                assert (await read(ledger, f"/v1/members/{member}/entries")).status_code == 200
            assert time.monotonic() - started < 5
            assert (await ledger.award(member, 3)).status_code == 201  # writes never needed it
        finally:
            servers.replica.start()
        await caught_up(servers)
        await asyncio.sleep(2.1)  # REPLICA_RETRY_SECONDS: then the replica is asked again
        await pause_replay(servers)
        try:
            position_of(await ledger.award(member, 1))
            assert (await read(ledger, f"/v1/members/{member}")).json()["balances"]["available"] == 10
        finally:
            await resume_replay(servers)


async def test_verify_is_sound_on_both(servers: Servers) -> None:
    await caught_up(servers)
    for server in (servers.primary, servers.replica):
        connection = await asyncpg.connect(servers.dsn(server))
        try:
            assert [outcome.name for outcome in await verify(connection) if outcome.mismatches] == []
        finally:
            await connection.close()
