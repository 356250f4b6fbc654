"""Checkout orders over HTTP: earning under the active rules, replays, preview."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from tests.support import Api, unique

SHANGHAI_MEMBER_DAY: dict[str, Any] = {
    "timezone": "Asia/Shanghai",
    "currency": "CNY",
    "earn": {
        "base": {"points": 1, "per": "1.00"},
        "multipliers": [{"id": "member-day", "factor": "2", "when": {"day_of_month": [8]}}],
    },
}


def order_body(member: str, total: str = "120.50", **fields: Any) -> dict[str, Any]:
    return {
        "order_id": fields.pop("order_id", unique("o")),
        "member": member,
        "total": {"amount": total, "currency": fields.pop("currency", "EUR")},
        "paid_at": fields.pop("paid_at", "2026-11-20T10:00:00Z"),
        **fields,
    }


class TestCreateOrder:
    async def test_default_rules_earn_one_point_per_unit_rounded_down(self, api: Api) -> None:
        member = await api.enrol()
        response = await api.post("/v1/orders", order_body(member, "120.50", order_id="o-1"))
        assert response.status_code == 201, response.text
        result = response.json()
        assert result["order_id"] == "o-1"
        assert result["points"] == 120
        assert result["status"] == "available"
        assert result["rules_version"] == 1
        assert result["breakdown"] == [
            {"rule": "base", "points": 120, "detail": "120.50 EUR at 1 per 1, floor"}
        ]
        assert result["entry_id"] is not None
        assert await api.balances(member) == {"available": 120, "pending": 0, "held": 0, "debt": 0}

    async def test_the_statement_shows_the_entry_with_its_explanation_and_rules_version(
        self, api: Api
    ) -> None:
        member = await api.enrol()
        result = (await api.post("/v1/orders", order_body(member, "30.00", order_id="o-st"))).json()
        item = (await api.get(f"/v1/members/{member}/entries")).json()["items"][0]
        assert item["id"] == result["entry_id"]
        assert item["kind"] == "earn"
        assert item["order_id"] == "o-st"
        assert item["rules_version"] == 1
        assert item["points"] == 30
        assert item["explanation"] == result["breakdown"]

    async def test_a_retry_with_the_same_key_replays_the_first_answer(self, api: Api) -> None:
        member = await api.enrol()
        body = order_body(member)
        first = await api.post("/v1/orders", body, idempotency_key="checkout-1")
        again = await api.post("/v1/orders", body, idempotency_key="checkout-1")
        assert first.status_code == again.status_code == 201
        assert again.content == first.content
        assert again.headers["Idempotent-Replayed"] == "true"
        assert await api.available(member) == 120

    async def test_the_same_order_under_another_key_replays_too(self, api: Api) -> None:
        member = await api.enrol()
        body = order_body(member)
        first = await api.post("/v1/orders", body)
        again = await api.post("/v1/orders", body)
        assert again.status_code == 201
        assert again.content == first.content
        assert await api.available(member) == 120

    async def test_the_same_order_id_with_another_body_is_409(self, api: Api) -> None:
        member = await api.enrol()
        await api.post("/v1/orders", order_body(member, "10.00", order_id="o-dup"))
        response = await api.post("/v1/orders", order_body(member, "99.00", order_id="o-dup"))
        assert response.status_code == 409
        assert response.json()["code"] == "order_exists"
        assert await api.available(member) == 10

    async def test_a_key_used_for_another_request_is_422_and_writes_nothing(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        member = await api.enrol()
        await api.award(member, 5)
        await api.post(f"/v1/members/{member}/awards", {"points": 5, "reason": "x"}, idempotency_key="used")
        response = await api.post(
            "/v1/orders", order_body(member, order_id="o-reuse"), idempotency_key="used"
        )
        assert response.status_code == 422
        assert response.json()["code"] == "idempotency_key_reused"
        assert await db.fetchval("SELECT count(*) FROM paid_order WHERE order_id = 'o-reuse'") == 0
        assert await api.available(member) == 10

    async def test_concurrent_copies_of_one_order_earn_once(self, api: Api, db: asyncpg.Connection) -> None:
        member = await api.enrol()
        body = order_body(member, "50.00")
        responses = await asyncio.gather(*(api.post("/v1/orders", body) for _ in range(10)))
        assert {r.status_code for r in responses} == {201}
        assert len({r.content for r in responses}) == 1
        assert await api.available(member) == 50
        count = await db.fetchval("SELECT count(*) FROM journal_entry WHERE order_id = $1", body["order_id"])
        assert count == 1

    async def test_concurrent_orders_of_one_member_all_earn(self, api: Api) -> None:
        member = await api.enrol()
        responses = await asyncio.gather(
            *(api.post("/v1/orders", order_body(member, "7.00")) for _ in range(12))
        )
        assert [r.status_code for r in responses] == [201] * 12
        assert await api.available(member) == 84

    async def test_only_one_of_concurrent_orders_is_the_first(self, api: Api) -> None:
        await api.use_rules(
            {
                "earn": {
                    "base": {"points": 1, "per": "1"},
                    "bonuses": [{"id": "first-order", "points": 100, "when": {"first_order": True}}],
                }
            }
        )
        member = await api.enrol()
        responses = await asyncio.gather(
            *(api.post("/v1/orders", order_body(member, "7.00")) for _ in range(8))
        )
        assert sorted(r.json()["points"] for r in responses) == [7] * 7 + [107]
        assert await api.available(member) == 156

    async def test_paid_at_in_the_future_is_422_and_writes_nothing(self, api: Api) -> None:
        member = await api.enrol()
        future = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
        response = await api.post("/v1/orders", order_body(member, paid_at=future))
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "body.paid_at"
        assert await api.available(member) == 0

    async def test_an_order_in_another_currency_than_the_rules_is_422(self, api: Api) -> None:
        await api.use_rules(SHANGHAI_MEMBER_DAY)
        member = await api.enrol()
        response = await api.post("/v1/orders", order_body(member, currency="EUR"))
        assert response.status_code == 422
        assert response.json()["code"] == "currency_mismatch"

    async def test_unknown_member_is_404(self, api: Api) -> None:
        response = await api.post("/v1/orders", order_body("nobody"))
        assert response.status_code == 404
        assert response.json()["code"] == "member_not_found"

    async def test_bad_money_is_422(self, api: Api) -> None:
        member = await api.enrol()
        for total in (
            {"amount": 12.5, "currency": "EUR"},
            {"amount": "-1", "currency": "EUR"},
            {"amount": "1.00001", "currency": "EUR"},
            {"amount": "1", "currency": "eur"},
        ):
            response = await api.post("/v1/orders", {**order_body(member), "total": total})
            assert response.status_code == 422, total
            assert response.json()["errors"][0]["field"].startswith("body.total"), total
        assert await api.available(member) == 0

    async def test_needs_points_earn(self, api: Api) -> None:
        member = await api.enrol()
        key = await api.key_with("members:read")
        assert (await api.post("/v1/orders", order_body(member), key=key)).status_code == 403


class TestMemberDayInTheProgramsTimezone:
    async def test_the_member_day_starts_at_local_midnight(self, api: Api) -> None:
        version = await api.use_rules(SHANGHAI_MEMBER_DAY)
        member = await api.enrol()
        # 2025-12-07T16:00:00Z is 2025-12-08 00:00 in Shanghai (UTC+8).
        before = await api.post(
            "/v1/orders", order_body(member, "100.00", currency="CNY", paid_at="2025-12-07T15:59:59Z")
        )
        on_the_day = await api.post(
            "/v1/orders", order_body(member, "100.00", currency="CNY", paid_at="2025-12-07T16:00:00Z")
        )
        assert before.json()["points"] == 100
        assert [line["rule"] for line in before.json()["breakdown"]] == ["base"]
        assert on_the_day.json()["points"] == 200
        assert on_the_day.json()["breakdown"][1] == {
            "rule": "member-day",
            "points": 100,
            "detail": "x2 (day_of_month 8)",
        }
        assert on_the_day.json()["rules_version"] == version


class TestRulesInAction:
    async def test_lines_excluded_categories_bonus_and_caps(self, api: Api) -> None:
        await api.use_rules(
            {
                "currency": "EUR",
                "earn": {
                    "base": {"points": 1, "per": "1.00"},
                    "exclude_categories": ["gift_card"],
                    "multipliers": [{"id": "shoes", "factor": "3", "when": {"category": ["shoes"]}}],
                    "bonuses": [{"id": "first-order", "points": 100, "when": {"first_order": True}}],
                    "caps": {"per_member_per_day": 400},
                },
            }
        )
        member = await api.enrol()
        lines = [
            {
                "sku": "S-1",
                "category": "shoes",
                "quantity": 1,
                "unit_price": {"amount": "60.00", "currency": "EUR"},
            },
            {
                "sku": "G-1",
                "category": "gift_card",
                "quantity": 1,
                "unit_price": {"amount": "50.00", "currency": "EUR"},
            },
            {
                "sku": "T-1",
                "category": "tees",
                "quantity": 2,
                "unit_price": {"amount": "10.00", "currency": "EUR"},
            },
        ]
        first = (await api.post("/v1/orders", order_body(member, "130.00", lines=lines))).json()
        # base 80 (gift card excluded), shoes 60 x3 adds 120, first order +100
        assert [(line["rule"], line["points"]) for line in first["breakdown"]] == [
            ("base", 80),
            ("shoes", 120),
            ("first-order", 100),
        ]
        assert first["points"] == 300
        second = (await api.post("/v1/orders", order_body(member, "130.00", lines=lines))).json()
        # no first-order bonus now; 200 earned, but only 100 left under the daily cap
        assert [(line["rule"], line["points"]) for line in second["breakdown"]] == [
            ("base", 80),
            ("shoes", 120),
            ("cap:per_member_per_day", -100),
        ]
        assert second["points"] == 100
        next_day = (
            await api.post("/v1/orders", order_body(member, "10.00", paid_at="2026-11-21T10:00:00Z"))
        ).json()
        assert next_day["points"] == 10
        assert await api.available(member) == 410

    async def test_pending_days_keep_order_points_pending(self, api: Api) -> None:
        await api.use_rules({"earn": {"base": {"points": 1, "per": "1"}, "pending_days": 14}})
        member = await api.enrol()
        paid_at = datetime.now(UTC) - timedelta(days=1)
        result = (
            await api.post("/v1/orders", order_body(member, "40.00", paid_at=paid_at.isoformat()))
        ).json()
        assert result["status"] == "pending"
        assert datetime.fromisoformat(result["available_at"]) == paid_at + timedelta(days=14)
        assert await api.balances(member) == {"available": 0, "pending": 40, "held": 0, "debt": 0}

    async def test_an_order_paid_before_its_return_window_ended_is_available_at_once(self, api: Api) -> None:
        await api.use_rules({"earn": {"base": {"points": 1, "per": "1"}, "pending_days": 14}})
        member = await api.enrol()
        old = (datetime.now(UTC) - timedelta(days=30)).isoformat()
        result = (await api.post("/v1/orders", order_body(member, "40.00", paid_at=old))).json()
        assert result["status"] == "available"
        assert await api.available(member) == 40

    async def test_an_order_that_earns_nothing_is_recorded_and_replays(self, api: Api) -> None:
        member = await api.enrol()
        body = order_body(member, "0.99")
        first = await api.post("/v1/orders", body, idempotency_key="tiny")
        again = await api.post("/v1/orders", body, idempotency_key="tiny")
        assert first.status_code == again.status_code == 201
        assert first.json()["points"] == 0
        assert first.json()["entry_id"] is None
        assert again.content == first.content
        reused = await api.post("/v1/orders", order_body(member, "5.00"), idempotency_key="tiny")
        assert reused.json()["code"] == "idempotency_key_reused"


class TestPreviewOrder:
    async def test_answers_what_the_order_will_earn_and_writes_nothing(self, api: Api) -> None:
        await api.use_rules(SHANGHAI_MEMBER_DAY)
        member = await api.enrol()
        body = order_body(member, "88.80", currency="CNY", paid_at="2025-12-08T03:00:00Z")
        preview = await api.post("/v1/orders/preview", body, idempotency_key=None)
        assert preview.status_code == 200
        # rounded once: 88.80 x 2 = 177.6 -> 177 (not 88 + 88)
        assert preview.json()["points"] == 177
        assert [line["points"] for line in preview.json()["breakdown"]] == [88, 89]
        assert preview.json()["entry_id"] is None
        assert await api.available(member) == 0
        placed = (await api.post("/v1/orders", body)).json()
        assert placed["points"] == preview.json()["points"]
        assert placed["breakdown"] == preview.json()["breakdown"]
