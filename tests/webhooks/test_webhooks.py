"""Webhooks over HTTP, delivered to a real receiver on 127.0.0.1 and checked with the
Standard Webhooks verifier: signing, retries with the same webhook-id, 410, secret
rotation, replay, patterns, test events, and never another program's events."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from fastapi import FastAPI
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app.config import Environment, Settings
from app.webhooks.dispatcher import Dispatcher, webhook_client
from app.webhooks.urls import Address, UnsafeUrl, check_url, resolve
from tests.support import Api, MovableClock, chain_program
from tests.webhooks.receiver import TLS, Receiver


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


async def resolved(url: str, env: Environment) -> list[Address]:
    """The addresses a delivery to `url` may connect to (the check each connection makes)."""
    parts = urlsplit(url)
    return await resolve(parts.hostname or "", parts.port or 443, env)


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
    assert set(event) == {"id", "type", "sequence", "occurred_at", "created_at", "data"}
    assert request.headers["webhook-id"] == event["id"]
    assert request.headers["content-type"] == "application/json"
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
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


async def test_a_500_then_a_200_with_no_wait_between(
    api: Api,
    app: FastAPI,
    db: asyncpg.Connection,
    settings: Settings,
    clock: MovableClock,
    receiver: Receiver,
) -> None:
    hook = await create(api, receiver.url, ["points.*"])
    await api.award(await api.enrol(), 7)
    receiver.answers = [500, 200]
    # every retry is due at once: one round makes both attempts
    assert await deliver(app, db, settings, clock, api, webhook_retry_seconds="0,0,0") == 2
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body
    assert verified(hook["secret"], first) == verified(hook["secret"], second)
    (delivery,) = await deliveries(api, hook["id"])
    assert delivery["event_id"] == first.headers["webhook-id"]
    assert delivery["status"] == "succeeded"
    assert delivery["next_attempt_at"] is None
    assert [(a["attempt"], a["status_code"]) for a in delivery["attempts"]] == [(1, 500), (2, 200)]
    assert await deliver(app, db, settings, clock, api, webhook_retry_seconds="0,0,0") == 0  # nothing more


async def test_a_receiver_that_does_not_answer_in_time_is_tried_again(
    api: Api,
    app: FastAPI,
    db: asyncpg.Connection,
    settings: Settings,
    clock: MovableClock,
    receiver: Receiver,
) -> None:
    hook = await create(api, receiver.url, ["points.*"])
    await api.award(await api.enrol(), 7)
    receiver.delays = [1.0]
    attempts = await deliver(
        app, db, settings, clock, api, webhook_retry_seconds="0", webhook_timeout_seconds=0.2
    )
    assert attempts == 2
    (delivery,) = await deliveries(api, hook["id"])
    assert delivery["status"] == "succeeded"
    timed_out, answered = delivery["attempts"]
    assert timed_out["status_code"] is None
    assert timed_out["error"].startswith("no answer within")
    assert (answered["status_code"], answered["error"]) == (204, None)


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
    assert await deliver(app, db, settings, clock, api, webhook_retry_seconds="0,0,0") == 1
    shown = (await api.get(f"/v1/webhooks/{hook['id']}")).json()
    assert (shown["status"], shown["disabled_reason"]) == ("disabled", "gone")
    (delivery,) = await deliveries(api, hook["id"])
    assert delivery["status"] == "failed"
    assert [(a["attempt"], a["status_code"]) for a in delivery["attempts"]] == [(1, 410)]
    # the webhook.disabled event is in the log once the chainer has given it its place
    assert (await api.get("/v1/events", type="webhook.disabled")).json()["items"] == []
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
    theirs = Receiver()
    try:
        their_hook = await create(other, theirs.url, ["*"])
        their_entry = (await other.award(await other.enrol(), 5)).json()
        our_entry = (await api.award(await api.enrol(), 6)).json()
        await deliver(app, db, settings, clock, api, other)
        ours = [verified(hook["secret"], r) for r in receiver.received]
        assert sorted(e["type"] for e in ours) == ["member.created", "points.award"]
        assert [e["data"]["id"] for e in ours if e["type"] == "points.award"] == [our_entry["id"]]
        their_events = [verified(their_hook["secret"], r) for r in theirs.received]
        assert [e["data"]["id"] for e in their_events if e["type"] == "points.award"] == [their_entry["id"]]
        assert not {e["id"] for e in ours} & {e["id"] for e in their_events}
    finally:
        theirs.close()
    listed = (await api.get("/v1/events")).json()["items"]
    assert not {e["id"] for e in listed} & {e["id"] for e in their_events}
    assert {d["event_id"] for d in await deliveries(api, hook["id"])} == {e["id"] for e in ours}
    for call in (
        other.get(f"/v1/webhooks/{hook['id']}"),
        other.get(f"/v1/webhooks/{hook['id']}/deliveries"),
        other.client.patch(
            f"/v1/webhooks/{hook['id']}", json={"status": "disabled"}, headers=other.headers()
        ),
        other.client.delete(f"/v1/webhooks/{hook['id']}", headers=other.headers()),
        other.post(f"/v1/webhooks/{hook['id']}/test", {}, idempotency_key=None),
        other.post(f"/v1/webhooks/{hook['id']}/rotate-secret", {}, idempotency_key=None),
        other.post(f"/v1/webhooks/{hook['id']}/replay", {"after_sequence": 0}, idempotency_key=None),
    ):
        response = await call
        assert (response.status_code, response.json()["code"]) == (404, "webhook_not_found")
    assert [w["id"] for w in (await other.get("/v1/webhooks")).json()["items"]] == [their_hook["id"]]
    assert (await api.get(f"/v1/webhooks/{hook['id']}")).json()["status"] == "enabled"


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


async def test_a_deleted_webhooks_retries_are_never_sent(
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
    assert await deliver(app, db, settings, clock, api, webhook_retry_seconds="60") == 1
    assert (await api.client.delete(f"/v1/webhooks/{hook['id']}", headers=api.headers())).status_code == 204
    clock.offset = timedelta(seconds=70)  # the retry is due
    assert await deliver(app, db, settings, clock, api, webhook_retry_seconds="60") == 0
    assert len(receiver.received) == 1


async def test_webhooks_need_their_scope(api: Api, receiver: Receiver) -> None:
    hook = await create(api, receiver.url, ["*"])
    path = f"/v1/webhooks/{hook['id']}"
    reader = await api.key_with("members:read")
    writer = await api.key_with("webhooks:write")
    for call in (
        api.post("/v1/webhooks", {"url": receiver.url, "events": ["*"]}, idempotency_key=None, key=reader),
        api.get("/v1/webhooks", key=reader),
        api.get(path, key=reader),
        api.client.patch(path, json={"status": "disabled"}, headers=api.headers(reader)),
        api.client.delete(path, headers=api.headers(reader)),
        api.post(f"{path}/rotate-secret", {}, idempotency_key=None, key=reader),
        api.post(f"{path}/test", {}, idempotency_key=None, key=reader),
        api.get(f"{path}/deliveries", key=reader),
        api.post(f"{path}/replay", {"after_sequence": 0}, idempotency_key=None, key=reader),
    ):
        refused = await call
        assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
    assert (await api.get(path)).json()["status"] == "enabled"  # the refused PATCH and DELETE did nothing
    mine = await create(api, receiver.url, ["*"], key=writer)
    assert [w["id"] for w in (await api.get("/v1/webhooks", key=writer)).json()["items"]] == [
        mine["id"],
        hook["id"],
    ]
    assert (await api.post(f"{path}/test", {}, idempotency_key=None, key=writer)).status_code == 202
    assert (await api.get(f"{path}/deliveries", key=writer)).status_code == 200


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/hook", "http://169.254.169.254/latest/meta-data", "http://10.1.2.3/h", "http://[::1"],
)
async def test_urls_that_may_not_receive_webhooks_are_refused(api: Api, url: str) -> None:
    refused = await api.post("/v1/webhooks", {"url": url, "events": ["*"]}, idempotency_key=None)
    assert (refused.status_code, refused.json()["code"]) == (422, "webhook_url_refused")
    hook = await create(api, "http://127.0.0.1:9/hook", ["*"])
    path = f"/v1/webhooks/{hook['id']}"
    changed = await api.client.patch(path, json={"url": url}, headers=api.headers())
    assert (changed.status_code, changed.json()["code"]) == (422, "webhook_url_refused")
    assert (await api.get(path)).json()["url"] == "http://127.0.0.1:9/hook"


async def test_patching_an_unknown_pattern_is_refused(api: Api) -> None:
    hook = await create(api, "http://127.0.0.1:9/hook", ["points.*"])
    path = f"/v1/webhooks/{hook['id']}"
    for bad in (["points.nope"], ["bogus.*"], []):
        refused = await api.client.patch(path, json={"events": bad}, headers=api.headers())
        assert (refused.status_code, refused.json()["code"]) == (422, "validation_error"), bad
    assert (await api.get(path)).json()["events"] == ["points.*"]


@pytest.mark.parametrize(
    "url",
    [
        "http://crm.example.com/hook",  # not https
        "http://127.0.0.1:9000/hook",
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.0.0.7/hook",
        "https://192.168.1.1/hook",
        "https://169.254.169.254/latest",  # cloud metadata
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[::ffff:169.254.169.254]/hook",
        "https://[fd00:ec2::254]/hook",
        "https://100.64.0.1/hook",
        "https://0.0.0.0/hook",
        "https://user:pw@crm.example.com/hook",
        "https://crm.example.com/hook#part",
    ],
)
def test_production_refuses_unsafe_urls(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        check_url(url, Environment.production)


@pytest.mark.parametrize(
    "url",
    [
        "https://[::127.0.0.1]/hook",  # IPv4-compatible loopback (::/8, reserved)
        "https://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 of 169.254.169.254 (reserved as Python counts it)
    ],
)
async def test_production_refuses_reserved_ipv6_literals(url: str) -> None:
    """urls.py promises never to send to a reserved address: these are (ipaddress
    says is_reserved), so neither the check when given nor the one at delivery may
    let them through."""
    passed = []
    try:
        check_url(url, Environment.production)
        passed.append("check_url")
    except UnsafeUrl:
        pass
    try:
        await resolved(url, Environment.production)
        passed.append("resolve")
    except UnsafeUrl:
        pass
    assert passed == [], f"{url} passed {passed}"


def test_production_accepts_public_https_and_the_test_env_loopback() -> None:
    assert check_url("https://crm.example.com/hook", Environment.production)
    assert check_url("https://93.184.215.14/hook", Environment.production)
    for env in (Environment.test, Environment.development):
        assert check_url("http://127.0.0.1:9000/", env) == "http://127.0.0.1:9000/"
        assert check_url("http://[::1]:9000/", env)
        assert check_url("http://[::ffff:127.0.0.1]:9000/", env)
        assert check_url("http://localhost:9000/", env)
        for refused in ("http://10.0.0.7/", "http://169.254.169.254/", "ftp://127.0.0.1/"):
            with pytest.raises(UnsafeUrl):
                check_url(refused, env)  # private and link-local stay refused everywhere


@pytest.mark.parametrize("url", ["https://localhost/", "https://127.1/", "https://2130706433/"])
async def test_production_refuses_at_delivery_what_resolves_to_loopback(url: str) -> None:
    addresses = await resolved(url, Environment.test)
    assert addresses
    assert all(address.is_loopback for address in addresses)
    with pytest.raises(UnsafeUrl):
        await resolved(url, Environment.production)


async def test_the_dispatcher_checks_the_address_before_it_sends(
    api: Api,
    app: FastAPI,
    db: asyncpg.Connection,
    settings: Settings,
    clock: MovableClock,
    receiver: Receiver,
) -> None:
    """A URL accepted when given (here in the test env) that the delivery's
    environment refuses is never sent to: the attempt fails, refused."""
    hook = await create(api, receiver.url, ["points.*"])
    await api.award(await api.enrol(), 5)
    production = {"env": Environment.production, "webhook_retry_seconds": "0"}
    assert await deliver(app, db, settings, clock, api, **production) == 2
    assert receiver.received == []
    (delivery,) = await deliveries(api, hook["id"])
    assert delivery["status"] == "failed"
    for attempt in delivery["attempts"]:
        assert attempt["status_code"] is None
        assert attempt["error"].startswith("refused: 127.0.0.1 is not a public address")


REBOUND = "rebind.test"


class Rebinding:
    """A resolver that answers REBOUND with `first` the first time it is asked and
    with `then` every later time, as a DNS rebinding attack would; other names
    resolve as usual."""

    def __init__(self, first: str, then: str) -> None:
        self.first, self.then = first, then
        self.lookups = 0
        self.real = asyncio.get_running_loop().getaddrinfo

    async def getaddrinfo(self, host: str | bytes | None, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name != REBOUND:
            return await self.real(host, port, *args, **kwargs)
        self.lookups += 1
        address = self.first if self.lookups == 1 else self.then
        if ":" in address:
            return [(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port), 0, 0))]
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port)))]


def rebind(monkeypatch: pytest.MonkeyPatch, first: str, then: str) -> Rebinding:
    resolver = Rebinding(first, then)
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", resolver.getaddrinfo)
    return resolver


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
async def test_a_delivery_goes_to_the_address_that_was_checked(
    api: Api,
    app: FastAPI,
    db: asyncpg.Connection,
    settings: Settings,
    clock: MovableClock,
    monkeypatch: pytest.MonkeyPatch,
    address: str,
) -> None:
    """DNS rebinding: the webhook's host resolves to the receiver when it is checked
    and elsewhere (127.0.0.2, where nothing listens) if asked again. The delivery
    reaches the receiver: the host is looked up once, the connection goes to the
    address that lookup gave and the check passed, and the request still names the
    host."""
    receiver = Receiver(address)
    try:
        resolver = rebind(monkeypatch, first=address, then="127.0.0.2")
        hook = await create(api, f"http://{REBOUND}:{receiver.port}/hooks", ["points.*"])
        await api.award(await api.enrol(), 5)
        assert await deliver(app, db, settings, clock, api, webhook_retry_seconds="60") == 1
        (delivery,) = await deliveries(api, hook["id"])
        assert [(a["status_code"], a["error"]) for a in delivery["attempts"]] == [(204, None)]
        (request,) = receiver.received
        assert request.headers["host"] == f"{REBOUND}:{receiver.port}"
        assert verified(hook["secret"], request)["type"] == "points.award"
        assert resolver.lookups == 1
    finally:
        receiver.close()


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "10.0.0.7", "169.254.169.254"])
async def test_production_refuses_at_delivery_a_host_that_resolves_inside(
    api: Api,
    app: FastAPI,
    db: asyncpg.Connection,
    settings: Settings,
    clock: MovableClock,
    monkeypatch: pytest.MonkeyPatch,
    receiver: Receiver,
    address: str,
) -> None:
    """A name accepted when given (names are not resolved then) that resolves to a
    loopback, private or link-local address at delivery is never connected to."""
    rebind(monkeypatch, first=address, then=address)
    hook = await create(api, f"http://{REBOUND}:{receiver.port}/hooks", ["points.*"])
    await api.award(await api.enrol(), 5)
    production = {"env": Environment.production, "webhook_retry_seconds": "0"}
    assert await deliver(app, db, settings, clock, api, **production) == 2
    assert receiver.received == []
    (delivery,) = await deliveries(api, hook["id"])
    assert delivery["status"] == "failed"
    assert [(a["status_code"], a["error"]) for a in delivery["attempts"]] == [
        (None, f"refused: {address} is not a public address")
    ] * 2


async def test_https_to_the_checked_address_still_verifies_the_host(
    api: Api,
    app: FastAPI,
    db: asyncpg.Connection,
    settings: Settings,
    clock: MovableClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Connected to the address that was checked, TLS still speaks to the URL's host:
    the SNI names it and the certificate must be valid for it (here one for
    rebind.test signed by the tests' CA). The same receiver at a URL naming its
    address instead is refused: its certificate is not for 127.0.0.1."""
    receiver = Receiver(tls=True)
    trusting_the_tests_ca = ssl.create_default_context(cafile=TLS / "ca.pem")
    dispatcher = Dispatcher(
        app.state.context.db,
        settings.model_copy(update={"webhook_retry_seconds": "60"}),
        clock,
        client=webhook_client(settings, verify=trusting_the_tests_ca),
    )
    try:
        rebind(monkeypatch, first="127.0.0.1", then="127.0.0.2")
        named = await create(api, f"https://{REBOUND}:{receiver.port}/hooks", ["points.*"])
        by_address = await create(api, receiver.url, ["points.*"])
        await api.award(await api.enrol(), 5)
        await chain_program(db, api.program)
        assert await dispatcher.run_once() == 2
        (request,) = receiver.received
        assert request.headers["host"] == f"{REBOUND}:{receiver.port}"
        assert verified(named["secret"], request)["type"] == "points.award"
        assert REBOUND in receiver.server_names
        (refused,) = await deliveries(api, by_address["id"])
        assert refused["attempts"][0]["status_code"] is None
        assert "CERTIFICATE_VERIFY_FAILED" in refused["attempts"][0]["error"]
    finally:
        await dispatcher.close()
        receiver.close()


async def test_an_ipv6_literal_url_is_delivered(
    api: Api, app: FastAPI, db: asyncpg.Connection, settings: Settings, clock: MovableClock
) -> None:
    receiver = Receiver("::1")
    try:
        assert receiver.url.startswith("http://[::1]:")
        hook = await create(api, receiver.url, ["points.*"])
        await api.award(await api.enrol(), 5)
        assert await deliver(app, db, settings, clock, api, webhook_retry_seconds="60") == 1
        (request,) = receiver.received
        assert request.headers["host"] == f"[::1]:{receiver.port}"
        verified(hook["secret"], request)
    finally:
        receiver.close()


async def test_two_dispatchers_at_once_send_each_event_once(
    api: Api,
    app: FastAPI,
    db: asyncpg.Connection,
    settings: Settings,
    clock: MovableClock,
    receiver: Receiver,
) -> None:
    hook = await create(api, receiver.url, ["points.*"])
    member = await api.enrol()
    for points in range(1, 11):
        await api.award(member, points)
    await chain_program(db, api.program)
    dispatchers = [Dispatcher(app.state.context.db, settings, clock) for _ in range(2)]
    try:
        attempts = await asyncio.gather(*(d.run_once() for d in dispatchers))
    finally:
        for dispatcher in dispatchers:
            await dispatcher.close()
    assert sum(attempts) == 10
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert len(ids) == len(set(ids)) == 10
    assert sorted(verified(hook["secret"], r)["data"]["points"] for r in receiver.received) == list(
        range(1, 11)
    )
    shown = await deliveries(api, hook["id"])
    assert [len(d["attempts"]) for d in shown] == [1] * 10
    assert {d["status"] for d in shown} == {"succeeded"}


async def test_an_attempt_that_breaks_oddly_is_a_failed_attempt_not_a_lost_round(
    api: Api,
    app: FastAPI,
    db: asyncpg.Connection,
    settings: Settings,
    clock: MovableClock,
    receiver: Receiver,
) -> None:
    """A URL stored before today's checks (here: written behind the API's back) whose
    host no resolver accepts fails its own attempt; the others in the round are sent
    and recorded."""
    bad = await create(api, "http://127.0.0.1:9/bad", ["points.*"])
    good = await create(api, receiver.url, ["points.*"])
    await db.execute(
        "UPDATE webhook_endpoint SET url = $2 WHERE id = $1",
        uuid.UUID(bad["id"]),
        "http://" + "a" * 64 + ".test/",
    )
    await api.award(await api.enrol(), 5)
    await deliver(app, db, settings, clock, api, webhook_retry_seconds="60")
    assert len(receiver.received) == 1
    (sent,) = await deliveries(api, good["id"])
    assert sent["status"] == "succeeded"
    (failed,) = await deliveries(api, bad["id"])
    assert failed["status"] == "pending"
    assert failed["attempts"][0]["status_code"] is None
    assert failed["attempts"][0]["error"]
