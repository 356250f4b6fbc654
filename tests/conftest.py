"""One real PostgreSQL database for the whole run, migrated with Alembic.

Tests commit for real: the ledger's balance check is a deferred constraint
trigger that only runs at commit, and `points-ledger verify` is run over the
database the suite leaves behind. Each test isolates itself in a new program.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from app.cli import run_migrations
from app.config import Environment, Settings
from app.main import create_app
from tests.support import BOOTSTRAP_KEY, TEST_DATABASE, Api, MovableClock, database_url, dsn, new_program


async def recreate_database(name: str) -> None:
    connection = await asyncpg.connect(dsn("postgres"))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def migrated_database() -> str:
    asyncio.run(recreate_database(TEST_DATABASE))
    url = database_url()
    run_migrations(url)
    return url


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings(
        env=Environment.test,
        database_url=None,
        admin_key=SecretStr(BOOTSTRAP_KEY),
        db_pool_size=40,
        db_max_overflow=10,
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
