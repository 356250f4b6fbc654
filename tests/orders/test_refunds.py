"""Refunds over HTTP: partial refunds that add up, pending first, spent points."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from app.ledger.verify import verify
from tests.support import Api, unique

# 7 points per 3.00, rounded down: shares of an order rarely come out whole.
SEVEN_PER_THREE: dict[str, Any] = {
    "currency": "EUR",
    "earn": {
        "base": {"points": 7, "per": "3.00"},
        "multipliers": [{"id": "shoes", "factor": "3", "when": {"category": ["shoes"]}}],
    },
}
LINES = [
    {"sku": "SHOE", "category": "shoes", "quantity": 2, "unit_price": {"amount": "45.00", "currency": "EUR"}},
    {"sku": "SOCK", "category": "socks", "quantity": 3, "unit_price": {"amount": "3.33", "currency": "EUR"}},
]


async def place(api: Api, member: str, total: str, **fields: Any) -> dict[str, Any]:
    body = {
        "order_id": fields.pop("order_id", unique("o")),
        "member": member,
        "total": {"amount": total, "currency": "EUR"},
        "paid_at": fields.pop("paid_at", (datetime.now(UTC) - timedelta(hours=1)).isoformat()),
        **fields,
    }
    response = await api.post("/v1/orders", body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def eur(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "EUR"}


class TestRefundByAmount:
    async def test_partial_refunds_add_up_to_exactly_what_the_order_earned(self, api: Api) -> None:
        await api.use_rules(SEVEN_PER_THREE)
        member = await api.enrol()
        order = await place(api, member, "100.00")
        assert order["points"] == 233  # 100 x 7 / 3 = 233.33
        taken = []
        for amount in ("33.33", "33.33", "0.01", "33.33"):
            response = await api.refund(order["order_id"], amount=eur(amount))
            assert response.status_code == 201, response.text
            taken.append(response.json()["points_reversed"])
        assert sum(taken) == 233
        assert taken == [77, 78, 0, 78]  # floor(233 x refunded share so far), less what was taken
        assert await api.available(member) == 0

    async def test_refunding_more_than_is_left_is_422_and_changes_nothing(self, api: Api) -> None:
        member = await api.enrol()
        order = await place(api, member, "50.00")
        assert (await api.refund(order["order_id"], amount=eur("30.00"))).status_code == 201
        response = await api.refund(order["order_id"], amount=eur("20.01"))
        assert response.status_code == 422
        assert response.json()["code"] == "refund_exceeds_order"
        assert await api.available(member) == 20
        assert (await api.refund(order["order_id"], amount=eur("20.00"))).json()["points_reversed"] == 20

    async def test_a_refund_in_another_currency_is_422(self, api: Api) -> None:
        member = await api.enrol()
        order = await place(api, member, "50.00")
        response = await api.refund(order["order_id"], amount={"amount": "5.00", "currency": "USD"})
        assert response.status_code == 422
        assert response.json()["code"] == "currency_mismatch"

    async def test_a_refund_worth_no_points_is_recorded_without_an_entry(self, api: Api) -> None:
        member = await api.enrol()
        order = await place(api, member, "10.00")
        response = await api.refund(order["order_id"], amount=eur("0.50"))
        assert response.status_code == 201
        assert response.json()["points_reversed"] == 0
        assert response.json()["entry_id"] is None
        second = await api.refund(order["order_id"], amount=eur("0.50"))
        assert second.json()["points_reversed"] == 1
        assert await api.available(member) == 9


class TestRefundByLines:
    async def test_a_line_takes_back_what_it_earned_and_the_rest_follows(self, api: Api) -> None:
        await api.use_rules(SEVEN_PER_THREE)
        member = await api.enrol()
        order = await place(api, member, "99.99", lines=LINES)
        # shoes 90.00 x 7/3 x 3 = 630, socks 9.99 x 7/3 = 23.31: 653.31 -> 653
        assert order["points"] == 653
        one_shoe = (await api.refund(order["order_id"], lines=[{"sku": "SHOE", "quantity": 1}])).json()
        assert one_shoe["amount"] == eur("45.00")
        assert one_shoe["points_reversed"] == 314  # floor(653 x 315 / 653.31)
        rest = (await api.refund(order["order_id"], amount=eur("54.99"))).json()
        assert one_shoe["points_reversed"] + rest["points_reversed"] == 653
        assert rest["points_reversed_total"] == 653
        assert await api.available(member) == 0

    async def test_more_units_than_bought_is_422_and_unknown_sku_names_the_field(self, api: Api) -> None:
        member = await api.enrol()
        order = await place(api, member, "99.99", lines=LINES)
        too_many = await api.refund(order["order_id"], lines=[{"sku": "SOCK", "quantity": 4}])
        assert too_many.status_code == 422
        assert too_many.json()["code"] == "refund_exceeds_order"
        unknown = await api.refund(order["order_id"], lines=[{"sku": "HAT", "quantity": 1}])
        assert unknown.status_code == 422
        assert unknown.json()["errors"][0]["field"] == "body.lines.0.sku"
        assert await api.available(member) == 99

    async def test_amount_and_lines_together_or_neither_is_422(self, api: Api) -> None:
        member = await api.enrol()
        order = await place(api, member, "99.99", lines=LINES)
        both = await api.refund(order["order_id"], amount=eur("1.00"), lines=[{"sku": "SOCK", "quantity": 1}])
        neither = await api.refund(order["order_id"])
        assert both.status_code == neither.status_code == 422


class TestPendingFirst:
    async def test_takes_pending_points_of_the_order_first_then_available(self, api: Api) -> None:
        await api.use_rules({"earn": {"base": {"points": 1, "per": "1"}, "pending_days": 14}})
        member = await api.enrol()
        await api.award(member, 50)
        order = await place(api, member, "100.00")
        assert await api.balances(member) == {"available": 50, "pending": 100, "held": 0, "debt": 0}
        refund = (await api.refund(order["order_id"], amount=eur("40.00"))).json()
        assert (refund["from_pending"], refund["from_available"]) == (40, 0)
        assert await api.balances(member) == {"available": 50, "pending": 60, "held": 0, "debt": 0}


class TestRefundAfterThePointsWereSpent:
    async def test_records_the_shortfall_by_default(self, api: Api) -> None:
        member = await api.enrol()
        order = await place(api, member, "100.00")
        assert (await api.redeem(member, 80)).status_code == 201
        refund = (await api.refund(order["order_id"], amount=eur("100.00"))).json()
        assert refund["points_reversed"] == 100
        assert (refund["from_available"], refund["shortfall"], refund["debt"]) == (20, 80, 0)
        assert await api.balances(member) == {"available": 0, "pending": 0, "held": 0, "debt": 0}
        item = (await api.get(f"/v1/members/{member}/entries")).json()["items"][0]
        assert item["kind"] == "refund"
        assert item["points"] == -20
        assert [line["rule"] for line in item["explanation"]] == ["refund", "shortfall"]

    async def test_debt_when_the_rules_say_so_and_later_earnings_repay_it(self, api: Api) -> None:
        await api.use_rules({"earn": {"base": {"points": 1, "per": "1"}}, "refunds": {"shortfall": "debt"}})
        member = await api.enrol()
        order = await place(api, member, "100.00")
        await api.redeem(member, 80)
        refund = (await api.refund(order["order_id"], amount=eur("100.00"))).json()
        assert (refund["from_available"], refund["shortfall"], refund["debt"]) == (20, 0, 80)
        assert await api.balances(member) == {"available": 0, "pending": 0, "held": 0, "debt": 80}
        repaying = await place(api, member, "50.00")
        assert (repaying["points"], repaying["debt_repaid"]) == (50, 50)
        assert await api.balances(member) == {"available": 0, "pending": 0, "held": 0, "debt": 30}
        more = await place(api, member, "45.00")
        assert (more["points"], more["debt_repaid"]) == (45, 30)
        assert await api.balances(member) == {"available": 15, "pending": 0, "held": 0, "debt": 0}


class TestRefundIdempotency:
    async def test_same_refund_replays_and_another_body_under_its_id_is_409(self, api: Api) -> None:
        member = await api.enrol()
        order = await place(api, member, "100.00")
        body = {"refund_id": "rf-1", "amount": eur("10.00")}
        first = await api.post(f"/v1/orders/{order['order_id']}/refunds", body)
        again = await api.post(f"/v1/orders/{order['order_id']}/refunds", body)
        assert again.status_code == 201
        assert again.content == first.content
        assert again.headers["Idempotent-Replayed"] == "true"
        other = await api.post(
            f"/v1/orders/{order['order_id']}/refunds", {"refund_id": "rf-1", "amount": eur("20.00")}
        )
        assert other.status_code == 409
        assert other.json()["code"] == "refund_exists"
        assert await api.available(member) == 90

    async def test_concurrent_copies_take_back_once(self, api: Api) -> None:
        member = await api.enrol()
        order = await place(api, member, "100.00")
        body = {"refund_id": "rf-storm", "amount": eur("25.00")}
        responses = await asyncio.gather(
            *(
                api.post(f"/v1/orders/{order['order_id']}/refunds", body, idempotency_key="k-storm")
                for _ in range(8)
            )
        )
        assert {r.status_code for r in responses} == {201}
        assert len({r.content for r in responses}) == 1
        assert await api.available(member) == 75

    async def test_unknown_order_is_404(self, api: Api, other: Api) -> None:
        member = await other.enrol()
        order = await place(other, member, "10.00")
        response = await api.refund(order["order_id"], amount=eur("1.00"))
        assert response.status_code == 404
        assert response.json()["code"] == "order_not_found"


@pytest.mark.parametrize("steps", [1, 2, 3, 7])
async def test_any_number_of_equal_steps_takes_back_everything(
    api: Api, db: asyncpg.Connection, steps: int
) -> None:
    await api.use_rules(SEVEN_PER_THREE)
    member = await api.enrol()
    order = await place(api, member, "10.01", lines=[LINES[1], {**LINES[0], "quantity": 1}])
    cents = 1001
    parts = [cents // steps + (1 if index < cents % steps else 0) for index in range(steps)]
    for part in parts:
        response = await api.refund(order["order_id"], amount=eur(f"{part // 100}.{part % 100:02d}"))
        assert response.status_code == 201, response.text
    assert response.json()["points_reversed_total"] == order["points"]
    assert await api.available(member) == 0
    assert all(outcome.mismatches == 0 for outcome in await verify(db))


async def test_an_orders_entries_are_undone_by_refunds_not_reversals(api: Api) -> None:
    member = await api.enrol()
    order = await place(api, member, "10.00")
    response = await api.reverse(order["entry_id"])
    assert response.status_code == 422
    assert response.json()["code"] == "entry_not_reversible"
    assert await api.available(member) == 10


async def test_a_refund_of_nothing_is_422(api: Api) -> None:
    member = await api.enrol()
    order = await place(api, member, "10.00")
    response = await api.refund(order["order_id"], amount=eur("0.00"))
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
