"""When the database can't answer in time the caller gets a 503 problem, and the
retry with the same key completes once the cause is gone."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from app.config import Environment, Settings
from app.main import create_app
from tests.support import BOOTSTRAP_KEY, Api, new_program


@pytest.fixture
async def impatient(migrated_database: str) -> AsyncIterator[httpx.AsyncClient]:
    """The service with a 300 ms statement timeout."""
    settings = Settings(env=Environment.test, admin_key=SecretStr(BOOTSTRAP_KEY), db_statement_timeout_ms=300)
    application = create_app(settings, database_url=migrated_database)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://ledger.test") as client:
            yield client


async def test_a_lock_held_too_long_is_503_and_the_retry_succeeds(
    impatient: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    api: Api = await new_program(impatient)
    member = await api.enrol()
    await api.award(member, 100)
    body = {"points": 30}
    blocker = db.transaction()
    await blocker.start()
    try:
        await db.execute(
            "SELECT 1 FROM member_balance WHERE member_id = (SELECT id FROM member WHERE external_id = $1)"
            " FOR UPDATE",
            member,
        )
        response = await api.post(f"/v1/members/{member}/redemptions", body, idempotency_key="slow-1")
    finally:
        await blocker.rollback()
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "1"
    assert response.json()["code"] == "unavailable"
    assert await api.available(member) == 100

    retry = await api.post(f"/v1/members/{member}/redemptions", body, idempotency_key="slow-1")
    assert retry.status_code == 201
    assert await api.available(member) == 70
