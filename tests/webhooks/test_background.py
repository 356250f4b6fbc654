"""LEDGER_SERVE_BACKGROUND: the chainer and the webhook dispatcher run inside the
app (started by its lifespan, as `serve` starts it) when it is true, and not at all
when it is false."""

from __future__ import annotations

import asyncio
import time

import httpx

from app.config import Settings
from app.main import create_app
from tests.support import Api, new_program
from tests.webhooks.receiver import Receiver
from tests.webhooks.test_webhooks import create

# several times the chain interval (LEDGER_CHAIN_INTERVAL_SECONDS, 0.25 s) and the
# dispatcher's idle wake-up (1 s)
QUIET = 1.5


async def test_without_background_work_nothing_is_chained_or_sent(
    api: Api, settings: Settings, receiver: Receiver
) -> None:
    assert settings.serve_background is False  # the session's app (tests/conftest.py)
    await create(api, receiver.url, ["points.*"])
    await api.award(await api.enrol(), 5)
    await asyncio.sleep(QUIET)
    head = (await api.get("/v1/ledger/head")).json()
    assert (head["sequence"], head["entries_unchained"]) == (0, 1)
    assert receiver.received == []


async def test_with_background_work_the_app_chains_and_sends_by_itself(
    migrated_database: str, settings: Settings, receiver: Receiver
) -> None:
    background = settings.model_copy(update={"serve_background": True})
    application = create_app(background, database_url=migrated_database)
    transport = httpx.ASGITransport(app=application)
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(transport=transport, base_url="http://ledger.test") as client,
    ):
        api = await new_program(client)
        await create(api, receiver.url, ["points.*"])
        entry = (await api.award(await api.enrol(), 5)).json()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            head = (await api.get("/v1/ledger/head")).json()
            if head["entries_unchained"] == 0 and receiver.received:
                break
            await asyncio.sleep(0.1)
        assert (head["sequence"], head["entries_unchained"]) == (1, 0)
        assert (await api.get(f"/v1/entries/{entry['id']}")).json()["sequence"] == 1
        (request,) = receiver.received
        (event,) = (await api.get("/v1/events", type="points.award")).json()["items"]
        assert request.headers["webhook-id"] == event["id"]
