"""What-if replays of past orders under another rules version."""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.support import Api, unique

DRAFT: dict[str, Any] = {
    "timezone": "UTC",
    "earn": {
        "base": {"points": 1, "per": "1"},
        "multipliers": [{"id": "member-day", "factor": "2", "when": {"day_of_month": [8]}}],
        "bonuses": [{"id": "big-spender", "points": 50, "when": {"order_total_gte": "100.00"}}],
        "caps": {"per_member_per_day": 250},
    },
}


async def order(api: Api, member: str, total: str, paid_at: str) -> None:
    body = {
        "order_id": unique("o"),
        "member": member,
        "total": {"amount": total, "currency": "EUR"},
        "paid_at": paid_at,
    }
    response = await api.post("/v1/orders", body)
    assert response.status_code == 201, response.text


async def simulate(api: Api, version: int, start: str, end: str) -> Any:
    return await api.post(f"/v1/rules/{version}/simulate", {"from": start, "to": end}, idempotency_key=None)


class TestSimulateRulesVersion:
    async def test_compares_what_orders_earned_with_what_a_draft_would_give(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        alice, bob = await api.enrol(), await api.enrol()
        await order(api, alice, "40.00", "2025-03-07T12:00:00Z")  # 40 -> 40
        await order(api, alice, "120.00", "2025-03-08T09:00:00Z")  # 120 -> 240 + 50, capped to 250
        await order(api, alice, "30.00", "2025-03-08T10:00:00Z")  # 30 -> 60, cap left: 0
        await order(api, bob, "10.00", "2025-03-08T11:00:00Z")  # 10 -> 20
        await order(api, bob, "99.00", "2025-04-01T00:00:00Z")  # outside the period
        draft = (await api.post("/v1/rules", DRAFT, idempotency_key=None)).json()["version"]
        entries = await db.fetchval("SELECT count(*) FROM journal_entry")

        response = await simulate(api, draft, "2025-03-01T00:00:00Z", "2025-04-01T00:00:00Z")
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["version"] == draft
        assert (result["from"], result["to"]) == ("2025-03-01T00:00:00Z", "2025-04-01T00:00:00Z")
        assert result["orders"] == 4
        assert result["actual_points"] == 200
        assert result["simulated_points"] == 40 + 250 + 0 + 20
        assert result["delta_points"] == 110
        split = {item["rule"]: (item["actual_points"], item["simulated_points"]) for item in result["rules"]}
        assert split == {
            "base": (200, 200),
            "member-day": (0, 160),
            "big-spender": (0, 50),
            "cap:per_member_per_day": (0, -100),
        }
        assert sum(item["simulated_points"] for item in result["rules"]) == result["simulated_points"]
        assert await db.fetchval("SELECT count(*) FROM journal_entry") == entries

    async def test_the_active_version_replays_to_no_change(self, api: Api) -> None:
        member = await api.enrol()
        await order(api, member, "12.34", "2025-05-05T05:05:05Z")
        result = (await simulate(api, 1, "2025-05-01T00:00:00Z", "2025-06-01T00:00:00Z")).json()
        assert (result["orders"], result["actual_points"], result["delta_points"]) == (1, 12, 0)

    async def test_orders_in_a_currency_the_version_does_not_take_earn_nothing(self, api: Api) -> None:
        member = await api.enrol()
        await order(api, member, "10.00", "2025-05-05T05:05:05Z")
        cny = (await api.post("/v1/rules", {**DRAFT, "currency": "CNY"}, idempotency_key=None)).json()
        result = (await simulate(api, cny["version"], "2025-05-01T00:00:00Z", "2025-06-01T00:00:00Z")).json()
        assert (result["orders"], result["orders_not_earning"], result["simulated_points"]) == (1, 1, 0)

    async def test_an_empty_or_backwards_period_and_unknown_version(self, api: Api) -> None:
        empty = await simulate(api, 1, "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z")
        assert empty.json()["orders"] == 0
        backwards = await simulate(api, 1, "2025-01-02T00:00:00Z", "2025-01-01T00:00:00Z")
        assert backwards.status_code == 422
        assert backwards.json()["errors"][0]["field"] == "body.to"
        unknown = await simulate(api, 99, "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z")
        assert unknown.status_code == 404
        assert unknown.json()["code"] == "rules_version_not_found"

    async def test_sees_only_the_callers_orders(self, api: Api, other: Api) -> None:
        member = await other.enrol()
        await order(other, member, "10.00", "2025-05-05T05:05:05Z")
        result = (await simulate(api, 1, "2025-05-01T00:00:00Z", "2025-06-01T00:00:00Z")).json()
        assert result["orders"] == 0
