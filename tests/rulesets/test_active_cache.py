"""Each process caches programs' active rules versions only while it LISTENs for
activations, and drops them when another process activates a version."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from app.rulesets.cache import RulesCache
from tests.support import Api, dsn, until


@pytest.fixture
async def listening() -> AsyncIterator[RulesCache]:
    cache = RulesCache()
    stop = asyncio.Event()
    watcher = asyncio.create_task(cache.watch(dsn(), stop))
    try:
        await until(lambda: cache._listening, seconds=10)
        yield cache
    finally:
        stop.set()
        await watcher


BASE = {"earn": {"base": {"points": 1, "per": "1"}}}


class TestActiveVersion:
    async def test_an_activation_elsewhere_reaches_a_listening_cache(
        self, api: Api, db: asyncpg.Connection, listening: RulesCache
    ) -> None:
        program_id = await db.fetchval("SELECT id FROM program WHERE code = $1", api.program)
        first = await api.use_rules(BASE)
        assert await listening.active_version(db, program_id) == first
        second = await api.use_rules({**BASE, "expiry": {"policy": "rolling", "months": 3}})

        async def current() -> int | None:
            return await listening.active_version(db, program_id)

        for _ in range(500):
            if await current() == second:
                break
            await asyncio.sleep(0.01)
        assert await current() == second

    async def test_a_cache_that_does_not_listen_reads_every_time(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        cache = RulesCache()
        program_id = await db.fetchval("SELECT id FROM program WHERE code = $1", api.program)
        first = await api.use_rules(BASE)
        assert await cache.active_version(db, program_id) == first
        second = await api.use_rules(BASE)
        assert await cache.active_version(db, program_id) == second

    async def test_awards_follow_an_activation_at_once(self, api: Api) -> None:
        member = await api.enrol()
        assert (await api.award(member, 5)).json()["expires_at"] is None
        await api.use_rules({**BASE, "expiry": {"policy": "rolling", "months": 3}})
        given = await api.award(member, 5)
        assert given.json()["expires_at"] is not None
