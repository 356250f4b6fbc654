"""One real PostgreSQL database per test worker, migrated with Alembic.

Tests commit for real: the ledger's balance check is a deferred constraint
trigger that only runs at commit. Each test isolates itself in a new program, and
when the worker is done, `verify` proves the ledger its tests wrote is sound before
the database is dropped (LEDGER_TEST_KEEP_DATABASES=1 keeps it). Every database
the suite makes is named after the run (tests/support.py), so runs sharing one
server never touch each other's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from app.cli import run_migrations
from app.config import Environment, Settings, get_settings
from app.db import Database
from app.ledger.verify import verify
from app.main import create_app
from app.reports.rollups import VERIFY_CHECKS
from tests.support import (
    BOOTSTRAP_KEY,
    TEST_DATABASE,
    Api,
    MovableClock,
    create_database,
    database_url,
    drop_database,
    dsn,
    keep_databases,
    new_program,
    scratch_name,
)


@contextmanager
def scratch_database(purpose: str, *, migrated: bool = True) -> Iterator[str]:
    """A database of this run's own for one test (or module), dropped afterwards."""
    name = scratch_name(purpose)
    asyncio.run(create_database(name))
    try:
        url = database_url(name)
        if migrated:
            run_migrations(url)
        yield url
    finally:
        if not keep_databases():
            asyncio.run(drop_database(name))


async def _unsound_checks() -> list[str]:
    connection = await asyncpg.connect(dsn())
    try:
        return [
            f"{outcome.name}: {outcome.mismatches} mismatches, e.g. {outcome.examples[:3]}"
            for outcome in await verify(connection, VERIFY_CHECKS)
            if outcome.mismatches
        ]
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def migrated_database() -> Iterator[str]:
    asyncio.run(create_database(TEST_DATABASE))
    url = database_url()
    sound = False
    try:
        run_migrations(url)
        yield url
        unsound = asyncio.run(_unsound_checks())
        sound = not unsound
        assert sound, f"verify found the ledger the tests wrote unsound (kept {TEST_DATABASE}): {unsound}"
    finally:
        if sound and not keep_databases():
            asyncio.run(drop_database(TEST_DATABASE))


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings(
        env=Environment.test,
        database_url=None,
        admin_key=SecretStr(BOOTSTRAP_KEY),
        db_pool_size=40,
        db_max_overflow=10,
        # tests drive the chainer and the dispatcher themselves
        serve_background=False,
    )


@pytest.fixture(scope="session")
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture(autouse=True)
def _reset_clock(clock: MovableClock) -> Iterator[None]:
    yield
    clock.offset = type(clock.offset)()


@pytest.fixture(scope="session")
async def app(migrated_database: str, settings: Settings, clock: MovableClock) -> AsyncIterator[FastAPI]:
    application = create_app(settings, database_url=migrated_database, clock=clock)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ledger.test") as http:
        yield http


@pytest.fixture
async def api(client: httpx.AsyncClient) -> Api:
    """A fresh program and a client holding its admin key."""
    return await new_program(client)


@pytest.fixture
async def db(migrated_database: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(dsn())
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def other(client: httpx.AsyncClient) -> Api:
    """A second program, to show one program never sees another's data."""
    return await new_program(client)


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    """For tests that run the CLI in-process: it reads its settings (the database URL
    among them) through the cached get_settings()."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
async def database(migrated_database: str) -> AsyncIterator[Database]:
    """A connected Database (pool, unit of work, retries) on the worker's database."""
    db = Database(migrated_database, Settings(env=Environment.test, database_url=None))
    await db.connect()
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture(scope="session")
async def session_loop() -> asyncio.AbstractEventLoop:
    """The loop the session's async fixtures (app, client) live on, for sync tests
    that drive them (hypothesis's @given wants a sync test)."""
    return asyncio.get_running_loop()
