"""Member events over HTTP: fixed points, per-day limits, referrals."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support import Api

EVENTS: dict[str, Any] = {
    "timezone": "Europe/Berlin",
    "earn": {"base": {"points": 1, "per": "1"}},
    "events": {
        "sign_up": {"points": 50},
        "check_in": {"points": 5, "max_per_day": 1},
        "review": {"points": 10, "max_per_day": 2},
        "referral": {"referrer": 200, "referee": 100},
        "app_download": {"points": 30},
    },
}


async def event(api: Api, member: str, kind: str, occurred_at: str | None = None, **fields: Any) -> Any:
    body = {"type": kind, "occurred_at": occurred_at or datetime.now(UTC).isoformat(), **fields}
    return await api.post(f"/v1/members/{member}/events", body)


class TestCreateMemberEvent:
    async def test_fixed_points_with_the_rule_in_the_explanation(self, api: Api) -> None:
        version = await api.use_rules(EVENTS)
        member = await api.enrol()
        response = await event(api, member, "sign_up", attributes={"source": "app"})
        assert response.status_code == 201, response.text
        entry = response.json()
        assert (entry["kind"], entry["points"], entry["reason"], entry["rules_version"]) == (
            "event",
            50,
            "sign_up",
            version,
        )
        assert entry["metadata"] == {"source": "app"}
        item = (await api.get(f"/v1/members/{member}/entries")).json()["items"][0]
        assert item["explanation"] == [{"rule": "event:sign_up", "points": 50, "detail": "fixed points"}]
        assert (await event(api, member, "app_download")).json()["points"] == 30
        assert await api.available(member) == 80

    async def test_per_day_limits_count_the_programs_local_day(self, api: Api) -> None:
        await api.use_rules(EVENTS)
        member = await api.enrol()
        # 2025-06-01T21:59:59Z is 23:59:59 in Berlin (UTC+2); a second later is the next day.
        first = await event(api, member, "check_in", "2025-06-01T10:00:00Z")
        same_day = await event(api, member, "check_in", "2025-06-01T21:59:59Z")
        next_day = await event(api, member, "check_in", "2025-06-01T22:00:00Z")
        assert first.status_code == 201
        assert same_day.status_code == 422
        assert same_day.json()["code"] == "event_limit_reached"
        assert next_day.status_code == 201
        assert await api.available(member) == 10

    async def test_concurrent_events_never_pass_the_limit(self, api: Api) -> None:
        await api.use_rules(EVENTS)
        member = await api.enrol()
        responses = await asyncio.gather(
            *(event(api, member, "review", "2025-06-02T10:00:00Z") for _ in range(6))
        )
        assert sorted(r.status_code for r in responses) == [201, 201, 422, 422, 422, 422]
        assert await api.available(member) == 20

    async def test_a_retry_replays_even_once_the_limit_is_reached(self, api: Api) -> None:
        await api.use_rules(EVENTS)
        member = await api.enrol()
        body = {"type": "check_in", "occurred_at": "2025-06-03T08:00:00Z"}
        first = await api.post(f"/v1/members/{member}/events", body, idempotency_key="ci-1")
        again = await api.post(f"/v1/members/{member}/events", body, idempotency_key="ci-1")
        assert again.status_code == 201
        assert again.content == first.content
        assert again.headers["Idempotent-Replayed"] == "true"

    async def test_unknown_type_future_time_and_unknown_member(self, api: Api) -> None:
        await api.use_rules(EVENTS)
        member = await api.enrol()
        unknown = await event(api, member, "birthday_party")
        assert unknown.status_code == 422
        assert unknown.json()["code"] == "unknown_event_type"
        future = await event(api, member, "sign_up", (datetime.now(UTC) + timedelta(hours=1)).isoformat())
        assert future.status_code == 422
        assert future.json()["errors"][0]["field"] == "body.occurred_at"
        assert (await event(api, "nobody", "sign_up")).json()["code"] == "member_not_found"
        assert await api.available(member) == 0

    async def test_a_program_without_event_rules_gives_nothing(self, api: Api) -> None:
        member = await api.enrol()
        response = await event(api, member, "sign_up")
        assert response.status_code == 422
        assert response.json()["code"] == "unknown_event_type"

    async def test_a_reversed_event_no_longer_counts_against_the_day(self, api: Api) -> None:
        await api.use_rules(EVENTS)
        member = await api.enrol()
        first = await event(api, member, "check_in")
        assert (await event(api, member, "check_in")).json()["code"] == "event_limit_reached"
        assert (await api.reverse(first.json()["id"])).status_code == 201
        again = await event(api, member, "check_in")
        assert again.status_code == 201, again.text
        assert await api.available(member) == 5

    async def test_an_instant_outside_the_supported_range_is_422(self, api: Api) -> None:
        await api.use_rules(EVENTS)
        member = await api.enrol()
        response = await event(api, member, "check_in", occurred_at="0001-06-01T00:00:00Z")
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "body.occurred_at"


class TestReferral:
    async def test_both_sides_earn_once(self, api: Api) -> None:
        await api.use_rules(EVENTS)
        referrer = await api.enrol()
        newcomer = await api.enrol(referred_by=referrer)
        response = await event(api, newcomer, "referral")
        assert response.status_code == 201, response.text
        assert {(p["member"], p["points"]) for p in response.json()["postings"]} == {
            (newcomer, 100),
            (referrer, 200),
            (None, -300),
        }
        again = await event(api, newcomer, "referral")
        assert again.status_code == 422
        assert again.json()["code"] == "event_limit_reached"
        assert (await api.available(referrer), await api.available(newcomer)) == (200, 100)

    async def test_needs_a_referrer(self, api: Api) -> None:
        await api.use_rules(EVENTS)
        member = await api.enrol()
        response = await event(api, member, "referral")
        assert response.status_code == 422
        assert response.json()["code"] == "no_referrer"
