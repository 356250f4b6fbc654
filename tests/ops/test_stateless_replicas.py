"""Stateless API replicas: two real `points-ledger serve` processes on one database,
under concurrent load. The same Idempotency-Key sent to both at once gives one
entry and one answer; a key revoked through one is refused by the other; a rules
version activated through one decides the other's next earn; and the ledger both
wrote is sound."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from app.ledger.verify import verify
from app.partners.settlement import VERIFY_CHECKS
from tests.pgcluster import free_port
from tests.support import Api, database_url, dsn, entries_with_key, unique


@dataclass
class Replica:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, seconds: float = 60) -> None:
        """Until it answers /readyz; fails at once, with its output, if it exits."""
        deadline = time.monotonic() + seconds
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"serve exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/readyz", timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"serve not ready in {seconds} s:\n{self.log.read_text()[-3000:]}")
                time.sleep(0.2)


def start_replica(log: Path) -> Replica:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("LEDGER_", "PROMETHEUS_"))}
    env |= {
        "LEDGER_DATABASE_URL": database_url(),
        "LEDGER_ENV": "test",
        "LEDGER_PORT": str(port),
        # small pools: the shared server's connections are for every test worker
        "LEDGER_DB_POOL_SIZE": "4",
        "LEDGER_DB_MAX_OVERFLOW": "2",
        "LEDGER_ACCESS_LOG": "false",
        # the suite's other tests drive the chainer themselves
        "LEDGER_SERVE_BACKGROUND": "false",
    }
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", "from app.cli import main; main()", "serve"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Replica(port, process, log)


def stop_replica(replica: Replica) -> None:
    """SIGTERM to the process's own PID (uvicorn shuts down gracefully), SIGKILL if it lingers."""
    if replica.process.poll() is None:
        os.kill(replica.process.pid, signal.SIGTERM)
        try:
            replica.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(replica.process.pid, signal.SIGKILL)
            replica.process.wait(timeout=10)


@pytest.fixture(scope="module")
def replicas(
    migrated_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Replica, Replica]]:
    logs = tmp_path_factory.mktemp("replicas")
    started = [start_replica(logs / "a.log"), start_replica(logs / "b.log")]
    try:
        for replica in started:
            replica.wait_ready()
        yield started[0], started[1]
    finally:
        for replica in started:
            stop_replica(replica)


@pytest.fixture
async def both(api: Api, replicas: tuple[Replica, Replica]) -> AsyncIterator[tuple[Api, Api]]:
    """One program's admin key, as a client of each replica."""
    first, second = replicas
    async with (
        httpx.AsyncClient(base_url=first.base_url, timeout=30) as a,
        httpx.AsyncClient(base_url=second.base_url, timeout=30) as b,
    ):
        yield Api(a, api.key, api.program), Api(b, api.key, api.program)


async def within(seconds: float, attempt: Callable[[], Awaitable[bool]]) -> int:
    """Try `attempt` until it holds; how many tries it took. Fails after `seconds`."""
    deadline = time.monotonic() + seconds
    tries = 0
    while True:
        tries += 1
        if await attempt():
            return tries
        assert time.monotonic() < deadline, f"not within {seconds} s ({tries} tries)"
        await asyncio.sleep(0.02)


EUR = {"currency": "EUR", "earn": {"base": {"points": 1, "per": "1.00"}}}


class TestTwoReplicasUnderLoad:
    async def test_same_key_to_both_at_once_gives_one_entry_and_one_answer(
        self, both: tuple[Api, Api], db: asyncpg.Connection
    ) -> None:
        a, b = both
        await a.use_rules(EUR)
        members = [await a.enrol() for _ in range(6)]
        awards = [unique("race-award") for _ in range(24)]
        orders = [unique("race-order") for _ in range(12)]

        async def award_to_both(index: int, key: str) -> tuple[httpx.Response, httpx.Response]:
            body = {"points": 10 + index, "reason": "race"}
            path = f"/v1/members/{members[index % len(members)]}/awards"
            first, second = await asyncio.gather(
                a.post(path, body, idempotency_key=key), b.post(path, body, idempotency_key=key)
            )
            return first, second

        async def order_to_both(index: int, key: str) -> tuple[httpx.Response, httpx.Response]:
            body = {
                "order_id": unique("o"),
                "member": members[index % len(members)],
                "total": {"amount": f"{20 + index}.00", "currency": "EUR"},
                "paid_at": "2024-05-01T10:00:00Z",
            }
            first, second = await asyncio.gather(
                a.post("/v1/orders", body, idempotency_key=key),
                b.post("/v1/orders", body, idempotency_key=key),
            )
            return first, second

        # Each replica also takes its own stream of awards to other members meanwhile.
        background = [(a if index % 2 else b).award(members[index % len(members)], 1) for index in range(40)]
        races = asyncio.gather(
            *(award_to_both(index, key) for index, key in enumerate(awards)),
            *(order_to_both(index, key) for index, key in enumerate(orders)),
        )
        pairs, extras = await asyncio.gather(races, asyncio.gather(*background))
        for first, second in pairs:
            assert first.status_code == second.status_code == 201, (first.text, second.text)
            assert first.content == second.content  # the same entry, byte for byte
            replayed = [r.headers.get("Idempotent-Replayed") == "true" for r in (first, second)]
            assert sorted(replayed) == [False, True]  # one wrote it, the other replayed it
        for extra in extras:
            assert extra.status_code == 201, extra.text
        for key in awards + orders:
            assert await entries_with_key(db, a.program, key) == 1

        # Both replicas read the same balances, and they add up to what was written.
        expected_total = sum(10 + index for index in range(len(awards))) + 40
        expected_total += sum(20 + index for index in range(len(orders)))
        seen_a = [await a.available(member) for member in members]
        seen_b = [await b.available(member) for member in members]
        assert seen_a == seen_b
        assert sum(seen_a) == expected_total

    async def test_a_key_revoked_through_one_is_refused_by_the_other(self, both: tuple[Api, Api]) -> None:
        a, b = both
        member = await a.enrol()
        created = await a.client.post(
            "/v1/api-keys", json={"name": "reader", "scopes": ["members:read"]}, headers=a.headers()
        )
        assert created.status_code == 201, created.text
        key, key_id = created.json()["key"], created.json()["id"]
        # Both replicas accept it, and hold it in their caches.
        for replica in (a, b):
            for _ in range(3):
                assert (await replica.get(f"/v1/members/{member}", key=key)).status_code == 200
        revoked = await a.client.delete(f"/v1/api-keys/{key_id}", headers=a.headers())
        assert revoked.status_code in (200, 204), revoked.text
        assert (await a.get(f"/v1/members/{member}", key=key)).status_code == 401

        async def refused_by_b() -> bool:
            return (await b.get(f"/v1/members/{member}", key=key)).status_code == 401

        await within(2.0, refused_by_b)
        # ...and for good: a refusal is not a cached accident.
        for _ in range(3):
            assert (await b.get(f"/v1/members/{member}", key=key)).status_code == 401

    async def test_rules_activated_through_one_decide_the_others_next_earn(
        self, both: tuple[Api, Api]
    ) -> None:
        a, b = both
        first = await a.use_rules(EUR)
        member = await a.enrol()
        assert (await a.award(member, 5000)).status_code == 201  # enough for every try below
        # The second replica uses (and caches) the active version: redemptions and
        # awards read it from the cache, orders with the member's facts.
        small = await b.redeem(member, 10)
        assert small.status_code == 201, small.text
        assert small.json()["rules_version"] == first
        ordered = await b.order(member, "10.00")
        assert (ordered.status_code, ordered.json()["rules_version"]) == (201, first), ordered.text

        stricter = {**EUR, "earn": {"base": {"points": 3, "per": "1.00"}}, "redeem": {"min_points": 100}}
        second = await a.use_rules(stricter)  # activated through the first replica

        # Orders read the active version with the member's facts: the very next one.
        ordered = await b.order(member, "10.00")
        assert ordered.status_code == 201, ordered.text
        assert (ordered.json()["rules_version"], ordered.json()["points"]) == (second, 30)

        # Redemptions read the cached version: dropped by the NOTIFY within moments.
        async def refused_under_new_rules() -> bool:
            answer = await b.redeem(member, 10)
            if answer.status_code == 201:
                assert answer.json()["rules_version"] == first
                return False
            assert (answer.status_code, answer.json()["code"]) == (422, "points_below_minimum"), answer.text
            return True

        await within(2.0, refused_under_new_rules)
        allowed = await b.redeem(member, 100)
        assert (allowed.status_code, allowed.json()["rules_version"]) == (201, second), allowed.text

    async def test_verify_is_sound_after(self, both: tuple[Api, Api]) -> None:
        a, b = both
        member = await a.enrol()
        await asyncio.gather(*((a if n % 2 else b).award(member, 5) for n in range(20)))
        await asyncio.gather(*((a if n % 2 else b).redeem(member, 3) for n in range(20)))
        assert await a.available(member) == await b.available(member) == 40
        connection = await asyncpg.connect(dsn())
        try:
            unsound = [
                outcome.name for outcome in await verify(connection, VERIFY_CHECKS) if outcome.mismatches
            ]
        finally:
            await connection.close()
        assert unsound == []
