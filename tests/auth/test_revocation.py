"""A key cached by one process stops working when another process revokes it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import pytest

from app.auth.service import Authenticator
from app.errors import Unauthorized
from tests.support import Api, dsn, until


@contextlib.asynccontextmanager
async def authenticator(*, listen: bool) -> AsyncIterator[Authenticator]:
    pool = await asyncpg.create_pool(dsn(), min_size=1, max_size=2)
    auth = Authenticator(pool, admin_key=None, cache_seconds=300)
    stop = asyncio.Event()
    watcher = asyncio.create_task(auth.watch_revocations(dsn(), stop)) if listen else None
    try:
        if listen:
            await until(lambda: auth.caching, seconds=10)
        yield auth
    finally:
        stop.set()
        if watcher is not None:
            await watcher
        await pool.close()


async def _revoke_elsewhere(db: asyncpg.Connection, key: str) -> None:
    from app.auth.service import hash_key

    await db.execute("UPDATE api_key SET revoked_at = now() WHERE key_hash = $1", hash_key(key))


async def _refused_within(auth: Authenticator, key: str, seconds: float) -> bool:
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        try:
            await auth.authenticate(f"Bearer {key}")
        except Unauthorized:
            return True
        await asyncio.sleep(0.01)
    return False


class TestRevocationReachesEveryProcess:
    async def test_listening_cache_drops_a_key_revoked_elsewhere(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        key = await api.key_with("members:read")
        async with authenticator(listen=True) as auth:
            principal = await auth.authenticate(f"Bearer {key}")
            assert principal.scopes == frozenset({"members:read"})
            await _revoke_elsewhere(db, key)
            assert await _refused_within(auth, key, 5.0)

    async def test_without_the_listener_nothing_is_cached(self, api: Api, db: asyncpg.Connection) -> None:
        key = await api.key_with("members:read")
        async with authenticator(listen=False) as auth:
            assert not auth.caching
            await auth.authenticate(f"Bearer {key}")
            await _revoke_elsewhere(db, key)
            with pytest.raises(Unauthorized):
                await auth.authenticate(f"Bearer {key}")

    async def test_a_lost_listener_stops_caching(self, api: Api, db: asyncpg.Connection) -> None:
        key = await api.key_with("members:read")
        async with authenticator(listen=True) as auth:
            await auth.authenticate(f"Bearer {key}")
            await db.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE query LIKE 'LISTEN%' AND datname = current_database()"
            )
            await until(lambda: not auth.caching, seconds=5)
            await until(lambda: auth.caching, seconds=10)  # and it comes back


class _HeldPool:
    """A pool whose key lookups read at once but answer only when `gate` opens: a
    lookup in flight while a revocation or a suspension commits."""

    def __init__(self, pool: asyncpg.Pool, gate: asyncio.Event) -> None:
        self.pool = pool
        self.gate = gate
        self.held = True
        self.lookups = 0

    async def fetchrow(self, query: str, *args: object) -> asyncpg.Record | None:
        row = await self.pool.fetchrow(query, *args)
        self.lookups += 1
        if self.held:
            await self.gate.wait()
        return row


class TestALookupInFlight:
    async def test_a_principal_read_before_a_suspension_is_not_cached(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        from tests.partners.helpers import partner_key, partner_with_key

        code, _ = await partner_with_key(api, roles=("earn",))
        key = await partner_key(api, code, "partner:earn")
        pool = await asyncpg.create_pool(dsn(), min_size=1, max_size=2)
        gate = asyncio.Event()
        held = _HeldPool(pool, gate)
        auth = Authenticator(held, admin_key=None, cache_seconds=300)  # type: ignore[arg-type]
        stop = asyncio.Event()
        watcher = asyncio.create_task(auth.watch_revocations(dsn(), stop))
        try:
            await until(lambda: auth.caching, seconds=10)
            lookup = asyncio.create_task(auth.authenticate(f"Bearer {key}"))
            await until(lambda: held.lookups == 1, seconds=5)  # it has read: the partner is active
            generation = auth._generation
            await db.execute("UPDATE partner SET status = 'suspended' WHERE code = $1", code)
            await until(lambda: auth._generation > generation, seconds=5)  # the NOTIFY came
            held.held = False
            gate.set()
            assert (await lookup).partner_active  # what it read, for the request in flight
            again = await auth.authenticate(f"Bearer {key}")
            assert held.lookups == 2  # not served from the cache
            assert not again.partner_active
        finally:
            stop.set()
            await watcher
            await pool.close()
