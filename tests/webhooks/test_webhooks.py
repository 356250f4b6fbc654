"""Webhooks over HTTP, delivered to a real receiver on 127.0.0.1 and checked with the
Standard Webhooks verifier: signing, retries with the same webhook-id, 410, secret
rotation, replay, patterns, test events, and never another program's events."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app.config import Environment, Settings
from app.webhooks.dispatcher import Dispatcher
from app.webhooks.urls import UnsafeUrl, check_url
from tests.support import Api, MovableClock, chain_program
from tests.webhooks.receiver import Receiver


async def create(api: Api, url: str, events: list[str], key: str | None = None) -> dict[str, Any]:
    response = await api.post("/v1/webhooks", {"url": url, "events": events}, idempotency_key=None, key=key)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def deliver(
    app: FastAPI,
    db: asyncpg.Connection,
    settings: Settings,
    clock: MovableClock,
    *programs: Api,
    **overrides: Any,
) -> int:
    """Chain the programs, then one dispatcher round; how many attempts it made."""
    for api in programs:
        await chain_program(db, api.program)
    dispatcher = Dispatcher(app.state.context.db, settings.model_copy(update=overrides), clock)
    try:
        return await dispatcher.run_once()
    finally:
        await dispatcher.close()


def verified(secret: str, request: Any) -> dict[str, Any]:
    event: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    return event


async def deliveries(api: Api, webhook: str, **params: Any) -> list[dict[str, Any]]:
    response = await api.get(f"/v1/webhooks/{webhook}/deliveries", **params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_a_delivery_is_the_event_signed(
    api: Api,
    app: FastAPI,
    db: asyncpg.Connection,
    settings: Settings,
    clock: MovableClock,
    receiver: Receiver,
) -> None:
    hook = await create(api, receiver.url, ["points.*"])
    assert hook["secret"].startswith("whsec_")
    assert (hook["status"], hook["events"]) == ("enabled", ["points.*"])
    member = await api.enrol()
    entry = (await api.award(member, 240)).json()
    assert await deliver(app, db, settings, clock, api) == 1
    (request,) = receiver.received
    event = verified(hook["secret"], request)
    assert request.headers["webhook-id"] == event["id"]
    assert event["type"] == "points.award"
    assert event["data"]["id"] == entry["id"]
    assert event["data"]["balances"] == [{"member": member, "available": 240, "pending": 0, "held": 0}]
    logged = (await api.get("/v1/events", type="points.award")).json()["items"]
    assert [e["id"] for e in logged] == [event["id"]]
    assert logged[0] == event  # the same event, byte for byte as the log shows it
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "B" * 32).verify(request.body, request.headers)
    (delivery,) = await deliveries(api, hook["id"])
    assert (delivery["status"], delivery["event_id"], delivery["event_sequence"]) == (
        "succeeded",
        event["id"],
        event["sequence"],
    )
    assert [(a["attempt"], a["status_code"], a["error"]) for a in delivery["attempts"]] == [(1, 204, None)]
    assert "secret" not in (await api.get(f"/v1/webhooks/{hook['id']}")).json()


async def test_a_failed_attempt_is_retried_with_the_same_webhook_id(
    api: Api,
    app: FastAPI,
    db: asyncpg.Connection,
    settings: Settings,
    clock: MovableClock,
    receiver: Receiver,
) -> None:
    hook = await create(api, receiver.url, ["points.award"])
    await api.award(await api.enrol(), 5)
    receiver.answers = [500]
    # the first retry waits 60 s: nothing more this round
    assert await deliver(app, db, settings, clock, api, webhook_retry_seconds="60") == 1
    (delivery,) = await deliveries(api, hook["id"], status="pending")
    assert delivery["next_attempt_at"] is not None
    assert [(a["status_code"], a["error"]) for a in delivery["attempts"]] == [
        (500, "the receiver answered 500")
    ]
    clock.offset = timedelta(seconds=70)
    assert await deliver(app, db, settings, clock, api, webhook_retry_seconds="60") == 1
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert verified(hook["secret"], second)["id"] == first.headers["webhook-id"]
    (delivery,) = await deliveries(api, hook["id"])
    assert delivery["status"] == "succeeded"
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 204]


async def test_attempts_run_out_and_the_delivery_fails(
    api: Api,
    app: FastAPI,
    db: asyncpg.Connection,
    settings: Settings,
    clock: MovableClock,
    receiver: Receiver,
) -> None:
    hook = await create(api, receiver.url, ["points.*"])
    await api.award(await api.enrol(), 5)
    receiver.answers = [503, 503, 503]
    assert await deliver(app, db, settings, clock, api, webhook_retry_seconds="0,0") == 3
    (delivery,) = await deliveries(api, hook["id"], status="failed")
    assert [a["attempt"] for a in delivery["attempts"]] == [1, 2, 3]
    assert (await api.get(f"/v1/webhooks/{hook['id']}")).json()["status"] == "enabled"


async def test_410_disables_the_webhook_and_says_so(
    api: Api,
    app: FastAPI,
    db: asyncpg.Connection,
    settings: Settings,
    clock: MovableClock,
    receiver: Receiver,
) -> None:
    hook = await create(api, receiver.url, ["points.*"])
    member = await api.enrol()
    await api.award(member, 5)
    receiver.answers = [410]
    await deliver(app, db, settings, clock, api)
    shown = (await api.get(f"/v1/webhooks/{hook['id']}")).json()
    assert (shown["status"], shown["disabled_reason"]) == ("disabled", "gone")
    await api.award(member, 5)
    await deliver(app, db, settings, clock, api)
    assert len(receiver.received) == 1  # nothing more is sent
    disabled = (await api.get("/v1/events", type="webhook.disabled")).json()["items"]
    assert [e["data"] for e in disabled] == [{"webhook": hook["id"], "url": receiver.url, "reason": "gone"}]


async def test_five_days_of_failures_disable_the_webhook(
    api: Api,
    app: FastAPI,
    db: asyncpg.Connection,
    settings: Settings,
    clock: MovableClock,
    receiver: Receiver,
) -> None:
    hook = await create(api, receiver.url, ["points.*"])
    await api.award(await api.enrol(), 5)
    receiver.answers = [500]
    await deliver(app, db, settings, clock, api, webhook_retry_seconds="60")
    assert (await api.get(f"/v1/webhooks/{hook['id']}")).json()["status"] == "enabled"
    clock.offset = timedelta(days=5, minutes=1)
    receiver.answers = [500]
    await deliver(app, db, settings, clock, api, webhook_retry_seconds="60")
    shown = (await api.get(f"/v1/webhooks/{hook['id']}")).json()
    assert (shown["status"], shown["disabled_reason"]) == ("disabled", "failing")


async def test_a_rotated_secret_signs_beside_the_old_one_for_a_day(
    api: Api,
    app: FastAPI,
    db: asyncpg.Connection,
    settings: Settings,
    clock: MovableClock,
    receiver: Receiver,
) -> None:
    hook = await create(api, receiver.url, ["points.*"])
    rotated = await api.post(f"/v1/webhooks/{hook['id']}/rotate-secret", {}, idempotency_key=None)
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new != hook["secret"]
    member = await api.enrol()
    await api.award(member, 5)
    await deliver(app, db, settings, clock, api)
    (request,) = receiver.received
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert verified(new, request) == verified(hook["secret"], request)
    clock.offset = timedelta(hours=25)
    await api.award(member, 5)
    await deliver(app, db, settings, clock, api)
    later = receiver.received[1]
    assert len(later.headers["webhook-signature"].split(" ")) == 1
    verified(new, later)
    with pytest.raises(WebhookVerificationError):
        verified(hook["secret"], later)


async def test_replay_sends_a_range_again_with_the_same_ids(
    api: Api,
    app: FastAPI,
    db: asyncpg.Connection,
    settings: Settings,
    clock: MovableClock,
    receiver: Receiver,
) -> None:
    hook = await create(api, receiver.url, ["points.*"])
    member = await api.enrol()
    for points in (1, 2, 3):
        await api.award(member, points)
    await deliver(app, db, settings, clock, api)
    first = [verified(hook["secret"], r) for r in receiver.received]
    assert sorted(e["data"]["points"] for e in first) == [1, 2, 3]  # deliveries are not ordered
    ordered = sorted(first, key=lambda e: e["sequence"])
    replay = await api.post(
        f"/v1/webhooks/{hook['id']}/replay",
        {"after_sequence": ordered[0]["sequence"], "until_sequence": ordered[2]["sequence"]},
        idempotency_key=None,
    )
    assert (replay.status_code, replay.json()) == (202, {"deliveries": 2})
    await deliver(app, db, settings, clock, api)
    again = [verified(hook["secret"], r) for r in receiver.received[3:]]
    assert sorted(e["id"] for e in again) == sorted(e["id"] for e in ordered[1:])


async def test_patterns_choose_what_is_sent(
    api: Api, app: FastAPI, db: asyncpg.Connection, settings: Settings, clock: MovableClock
) -> None:
    tiers, points, everything = Receiver(), Receiver(), Receiver()
    try:
        await create(api, tiers.url, ["tier.changed"])
        await create(api, points.url, ["points.*"])
        await create(api, everything.url, ["*"])
        member = await api.enrol()
        await api.award(member, 5)
        await deliver(app, db, settings, clock, api)
        assert tiers.received == []
        assert [json.loads(r.body)["type"] for r in points.received] == ["points.award"]
        # created after the member: everything since its creation
        assert sorted(json.loads(r.body)["type"] for r in everything.received) == [
            "member.created",
            "points.award",
        ]
    finally:
        for receiver in (tiers, points, everything):
            receiver.close()
    for bad in (["points.nope"], ["bogus.*"], ["points*"], []):
        refused = await api.post(
            "/v1/webhooks", {"url": "https://example.com/h", "events": bad}, idempotency_key=None
        )
        assert (refused.status_code, refused.json()["code"]) == (422, "validation_error"), bad


async def test_a_test_event_goes_to_its_webhook_only(
    api: Api,
    app: FastAPI,
    db: asyncpg.Connection,
    settings: Settings,
    clock: MovableClock,
    receiver: Receiver,
) -> None:
    hook = await create(api, receiver.url, ["points.*"])
    bystander = Receiver()
    try:
        await create(api, bystander.url, ["*"])
        sent = await api.post(f"/v1/webhooks/{hook['id']}/test", {}, idempotency_key=None)
        assert sent.status_code == 202, sent.text
        await deliver(app, db, settings, clock, api)
        (request,) = receiver.received
        event = verified(hook["secret"], request)
        assert (event["id"], event["type"]) == (sent.json()["event_id"], "webhook.test")
        assert bystander.received == []
    finally:
        bystander.close()


async def test_another_programs_events_and_webhooks_stay_apart(
    api: Api,
    other: Api,
    app: FastAPI,
    db: asyncpg.Connection,
    settings: Settings,
    clock: MovableClock,
    receiver: Receiver,
) -> None:
    hook = await create(api, receiver.url, ["*"])
    await other.award(await other.enrol(), 5)
    await deliver(app, db, settings, clock, api, other)
    assert receiver.received == []
    for call in (
        other.get(f"/v1/webhooks/{hook['id']}"),
        other.get(f"/v1/webhooks/{hook['id']}/deliveries"),
        other.post(f"/v1/webhooks/{hook['id']}/test", {}, idempotency_key=None),
        other.post(f"/v1/webhooks/{hook['id']}/rotate-secret", {}, idempotency_key=None),
        other.post(f"/v1/webhooks/{hook['id']}/replay", {"after_sequence": 0}, idempotency_key=None),
    ):
        response = await call
        assert (response.status_code, response.json()["code"]) == (404, "webhook_not_found")
    assert (await other.get("/v1/webhooks")).json()["items"] == []


async def test_change_disable_enable_and_delete(
    api: Api,
    app: FastAPI,
    db: asyncpg.Connection,
    settings: Settings,
    clock: MovableClock,
    receiver: Receiver,
) -> None:
    hook = await create(api, "http://127.0.0.1:9/nowhere", ["points.*"])
    path = f"/v1/webhooks/{hook['id']}"
    changed = await api.client.patch(
        path, json={"url": receiver.url, "status": "disabled"}, headers=api.headers()
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["url"], changed.json()["status"]) == (receiver.url, "disabled")
    member = await api.enrol()
    await api.award(member, 5)
    await deliver(app, db, settings, clock, api)
    assert receiver.received == []
    enabled = await api.client.patch(path, json={"status": "enabled"}, headers=api.headers())
    assert enabled.json()["disabled_reason"] is None
    await api.award(member, 6)
    await deliver(app, db, settings, clock, api)
    assert [json.loads(r.body)["data"]["points"] for r in receiver.received] == [6]
    assert [w["id"] for w in (await api.get("/v1/webhooks")).json()["items"]] == [hook["id"]]
    assert (await api.client.delete(path, headers=api.headers())).status_code == 204
    gone = await api.get(path)
    assert (gone.status_code, gone.json()["code"]) == (404, "webhook_not_found")
    assert (await api.get("/v1/webhooks")).json()["items"] == []


async def test_webhooks_need_their_scope(api: Api, receiver: Receiver) -> None:
    reader = await api.key_with("members:read", "events:read")
    writer = await api.key_with("webhooks:write")
    refused = await api.post(
        "/v1/webhooks", {"url": receiver.url, "events": ["*"]}, idempotency_key=None, key=reader
    )
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
    assert (await api.get("/v1/webhooks", key=reader)).status_code == 403
    await create(api, receiver.url, ["*"], key=writer)
    assert len((await api.get("/v1/webhooks", key=writer)).json()["items"]) == 1


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/hook", "http://169.254.169.254/latest/meta-data", "http://10.1.2.3/h", "http://[::1"],
)
async def test_urls_that_may_not_receive_webhooks_are_refused(api: Api, url: str) -> None:
    refused = await api.post("/v1/webhooks", {"url": url, "events": ["*"]}, idempotency_key=None)
    assert (refused.status_code, refused.json()["code"]) == (422, "webhook_url_refused")


@pytest.mark.parametrize(
    "url",
    [
        "http://crm.example.com/hook",  # not https
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.0.0.7/hook",
        "https://192.168.1.1/hook",
        "https://169.254.169.254/latest",  # cloud metadata
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[fd00:ec2::254]/hook",
        "https://100.64.0.1/hook",
        "https://user:pw@crm.example.com/hook",
    ],
)
def test_production_refuses_unsafe_urls(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        check_url(url, Environment.production)


def test_production_accepts_public_https_and_development_loopback() -> None:
    assert check_url("https://crm.example.com/hook", Environment.production)
    assert check_url("https://93.184.215.14/hook", Environment.production)
    assert check_url("http://127.0.0.1:9000/", Environment.development)
    with pytest.raises(UnsafeUrl):
        check_url("http://10.0.0.7/", Environment.development)  # private stays refused everywhere
