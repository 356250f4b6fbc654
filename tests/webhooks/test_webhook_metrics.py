"""The webhook metrics: attempts counted by result, and the latency histogram
observing each delivery's first success once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
from fastapi import FastAPI
from prometheus_client import REGISTRY

from app.config import Environment, Settings
from app.webhooks.dispatcher import Dispatcher
from tests.support import Api, MovableClock, chain_program
from tests.webhooks.receiver import Receiver
from tests.webhooks.test_webhooks import create, deliver, deliveries

RESULTS = ("success", "failure", "gone", "blocked")


def attempts_by_result() -> dict[str, float]:
    return {
        result: REGISTRY.get_sample_value("points_ledger_webhook_deliveries_total", {"result": result}) or 0.0
        for result in RESULTS
    }


def latency_observations() -> float:
    return REGISTRY.get_sample_value("points_ledger_webhook_delivery_latency_seconds_count") or 0.0


def moved(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {result: after[result] - before[result] for result in RESULTS if after[result] != before[result]}


async def test_attempts_are_counted_by_result(
    api: Api,
    app: FastAPI,
    db: asyncpg.Connection,
    settings: Settings,
    clock: MovableClock,
    receiver: Receiver,
) -> None:
    await create(api, receiver.url, ["points.*"])
    member = await api.enrol()
    await api.award(member, 5)
    before, observed = attempts_by_result(), latency_observations()
    receiver.answers = [500, 503, 200]
    assert await deliver(app, db, settings, clock, api, webhook_retry_seconds="0,0,0") == 3
    assert moved(before, attempts_by_result()) == {"failure": 2, "success": 1}
    # a success after two failures: one first success, observed once
    assert latency_observations() - observed == 1

    await api.award(member, 6)
    before, observed = attempts_by_result(), latency_observations()
    receiver.answers = [410]
    assert await deliver(app, db, settings, clock, api, webhook_retry_seconds="0,0,0") == 1
    assert moved(before, attempts_by_result()) == {"gone": 1}
    assert latency_observations() == observed

    refused = await create(api, receiver.url, ["points.*"])  # the first one is disabled: gone
    await api.award(member, 7)
    before = attempts_by_result()
    production = {"env": Environment.production, "webhook_retry_seconds": "60"}
    assert await deliver(app, db, settings, clock, api, **production) == 1
    assert moved(before, attempts_by_result()) == {"blocked": 1}
    assert latency_observations() == observed
    (blocked,) = await deliveries(api, refused["id"])
    assert blocked["attempts"][0]["error"].startswith("refused:")


async def test_a_late_second_success_of_a_delivery_is_not_observed_again(
    api: Api,
    app: FastAPI,
    db: asyncpg.Connection,
    settings: Settings,
    clock: MovableClock,
    receiver: Receiver,
) -> None:
    """A dispatcher whose answer comes back after its lease ran out, when another has
    claimed the delivery again and delivered it: two successful attempts (both
    counted), one first success (observed once)."""
    hook = await create(api, receiver.url, ["points.*"])
    await api.award(await api.enrol(), 5)
    await chain_program(db, api.program)
    before, observed = attempts_by_result(), latency_observations()
    receiver.delays = [1.5]  # the first request is answered late; the second at once
    slow, fast = (Dispatcher(app.state.context.db, settings, clock) for _ in range(2))
    try:
        late = asyncio.create_task(slow.run_once())
        for _ in range(250):  # until the first request arrives (the receiver is a thread)
            if receiver.received:
                break
            await asyncio.sleep(0.02)
        assert receiver.received
        clock.offset = timedelta(seconds=settings.webhook_timeout_seconds + 30)  # the lease ran out
        assert await fast.run_once() == 1
        assert latency_observations() - observed == 1
        assert await late == 1
    finally:
        await slow.close()
        await fast.close()
    assert len(receiver.received) == 2
    assert moved(before, attempts_by_result()) == {"success": 2}
    assert latency_observations() - observed == 1
    (delivery,) = await deliveries(api, hook["id"])
    assert delivery["status"] == "succeeded"
    assert [a["status_code"] for a in delivery["attempts"]] == [204, 204]
