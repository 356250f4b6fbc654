"""Co-branded earning (POST /v1/partner/orders, refunds, preview) and prepaid
funding (POST /v1/partners/{code}/funding)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from tests.partners.helpers import (
    add_rate,
    earned,
    eur,
    fund,
    get_partner,
    instant,
    onboard,
    partner_earning,
    partner_key,
    partner_order,
    partner_with_key,
    problem,
)
from tests.support import Api, unique


async def partner_orders(db: asyncpg.Connection, program: str, code: str) -> int:
    return int(
        await db.fetchval(
            "SELECT count(*) FROM paid_order o JOIN partner pa ON pa.id = o.partner_id"
            " JOIN program g ON g.id = pa.program_id WHERE g.code = $1 AND pa.code = $2",
            program,
            code,
        )
    )


async def postpaid(api: Api, points: int = 1, **fields: Any) -> tuple[str, str]:
    """A postpaid partner with an earn rate and a partner_earn section: (code, key)."""
    code, key = await partner_with_key(api, **fields)
    await add_rate(api, code, "earn", price_per_point="0.01")
    await partner_earning(api, code, points=points)
    return code, key


def order_body(member: str, total: str, order_id: str | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "order_id": order_id or unique("po"),
        "member": member,
        "total": eur(total),
        "paid_at": datetime.now(UTC).isoformat(),
        **fields,
    }


class TestPartnerOrder:
    async def test_earns_by_the_partner_earn_section_with_the_orders_answer(self, api: Api) -> None:
        code, key = await postpaid(api, points=3)
        member = await api.enrol()
        body = order_body(member, "10.00", channel="app")
        response = await api.post("/v1/partner/orders", body, key=key)
        assert response.status_code == 201, response.text
        result = response.json()
        own = await api.post("/v1/orders", order_body(member, "10.00"))
        assert own.status_code == 201, own.text
        assert set(result) == set(own.json())
        assert (result["order_id"], result["member"], result["points"]) == (body["order_id"], member, 30)
        assert own.json()["points"] == 10
        assert result["status"] == "available"
        assert sum(line["points"] for line in result["breakdown"]) == 30
        assert result["entry_id"] is not None
        assert await api.available(member) == 40
        partner = await get_partner(api, code)
        assert (partner["funding_points"], partner["payable_points"]) == (-30, 0)

    async def test_multipliers_bonuses_caps_and_pending_days_apply(self, api: Api) -> None:
        code, key = await partner_with_key(api)
        await add_rate(api, code, "earn", price_per_point="0.01")
        section = {
            "base": {"points": 2, "per": "1", "rounding": "floor"},
            "multipliers": [{"id": "app", "factor": "1.5", "when": {"channel": ["app"]}}],
            "bonuses": [{"id": "welcome", "points": 7, "when": {"first_order": True}}],
            "caps": {"per_order": 100},
            "pending_days": 14,
        }
        await api.use_rules({"earn": {"base": {"points": 1, "per": "1"}}, "partner_earn": {code: section}})
        member = await api.enrol()
        first = await earned(api, key, member, "10.00", channel="app")
        assert first["points"] == 37  # 20 x 1.5 + 7
        assert {line["rule"] for line in first["breakdown"]} >= {"app", "welcome"}
        assert first["status"] == "pending"
        assert await api.balances(member) == {"available": 0, "pending": 37, "held": 0, "debt": 0}
        capped = await earned(api, key, member, "100.00", channel="app")
        assert capped["points"] == 100
        assert (await get_partner(api, code))["funding_points"] == -137

    async def test_partner_orders_count_for_tiers_and_tier_multipliers_apply(self, api: Api) -> None:
        code, key = await partner_with_key(api)
        await add_rate(api, code, "earn", price_per_point="0.01")
        await api.use_rules(
            {
                "earn": {"base": {"points": 1, "per": "1"}},
                "partner_earn": {
                    code: {
                        "base": {"points": 1, "per": "1"},
                        "multipliers": [{"id": "silver", "factor": "2", "when": {"tier": ["silver"]}}],
                    }
                },
                "tiers": [{"code": "silver", "name": "Silver", "rank": 1, "qualify": {"orders": 2}}],
            }
        )
        member = await api.enrol()
        own = await api.post("/v1/orders", order_body(member, "5.00"))
        assert own.json()["tier_reached"] is None
        second = await earned(api, key, member, "10.00")
        assert second["tier_reached"] == "silver"
        assert second["points"] == 10  # the upgrade counts from the next order
        third = await earned(api, key, member, "10.00")
        assert third["points"] == 20
        view = await api.get(f"/v1/partner/members/{member}", key=key)
        assert view.json()["tier"] == "silver"

    async def test_without_a_partner_earn_section_is_422_and_writes_nothing(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        code, key = await partner_with_key(api)
        await add_rate(api, code, "earn", price_per_point="0.01")
        other_code = await onboard(api)
        await partner_earning(api, other_code)
        member = await api.enrol()
        response = await partner_order(api, key, member, "10.00")
        assert problem(response) == (422, "partner_not_earning")
        assert await api.available(member) == 0
        assert (await get_partner(api, code))["funding_points"] == 0
        assert await partner_orders(db, api.program, code) == 0

    async def test_a_postpaid_partner_without_an_earn_rate_is_422(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        code, key = await partner_with_key(api)
        await partner_earning(api, code)
        member = await api.enrol()
        assert problem(await partner_order(api, key, member, "10.00")) == (422, "rate_not_effective")
        assert await partner_orders(db, api.program, code) == 0
        assert await api.available(member) == 0
        await add_rate(
            api,
            code,
            "earn",
            price_per_point="0.01",
            effective_from=(datetime.now(UTC) + timedelta(days=1)).isoformat(),
        )
        # a rate that starts tomorrow is not in force today
        assert problem(await partner_order(api, key, member, "10.00")) == (422, "rate_not_effective")

    async def test_an_unknown_member_is_404(self, api: Api) -> None:
        code, key = await postpaid(api)
        assert problem(await partner_order(api, key, "nobody-here", "10.00")) == (404, "member_not_found")
        assert (await get_partner(api, code))["funding_points"] == 0

    async def test_the_idempotency_key_is_required(self, api: Api) -> None:
        _, key = await postpaid(api)
        member = await api.enrol()
        response = await api.post(
            "/v1/partner/orders", order_body(member, "1.00"), key=key, idempotency_key=None
        )
        assert problem(response) == (400, "idempotency_key_required")
        assert await api.available(member) == 0

    async def test_a_retry_with_the_same_key_replays(self, api: Api) -> None:
        code, key = await postpaid(api)
        member = await api.enrol()
        body = order_body(member, "10.00")
        first = await api.post("/v1/partner/orders", body, key=key, idempotency_key="k-1")
        again = await api.post("/v1/partner/orders", body, key=key, idempotency_key="k-1")
        assert first.status_code == again.status_code == 201, again.text
        assert first.json() == again.json()
        assert await api.available(member) == 10
        assert (await get_partner(api, code))["funding_points"] == -10


class TestOrderIdPerPartner:
    async def test_the_same_order_id_at_two_partners_and_the_program(self, api: Api) -> None:
        a, a_key = await partner_with_key(api)
        b, b_key = await partner_with_key(api)
        for code in (a, b):
            await add_rate(api, code, "earn", price_per_point="0.01")
        section = {"base": {"points": 1, "per": "1"}}
        await api.use_rules({"earn": section, "partner_earn": {a: section, b: section}})
        member = await api.enrol()
        at_a = await partner_order(api, a_key, member, "10.00", order_id="till-1")
        at_b = await partner_order(api, b_key, member, "20.00", order_id="till-1")
        own = await api.post("/v1/orders", order_body(member, "5.00", order_id="till-1"))
        assert (at_a.status_code, at_b.status_code, own.status_code) == (201, 201, 201), at_b.text
        assert at_a.json()["entry_id"] != at_b.json()["entry_id"]
        assert await api.available(member) == 35
        assert (await get_partner(api, a))["funding_points"] == -10
        assert (await get_partner(api, b))["funding_points"] == -20

    async def test_the_same_order_id_again_other_details_409_same_details_replay(self, api: Api) -> None:
        code, key = await postpaid(api)
        member = await api.enrol()
        body = order_body(member, "10.00", order_id="till-7")
        first = await api.post("/v1/partner/orders", body, key=key)
        assert first.status_code == 201, first.text
        changed = await api.post("/v1/partner/orders", {**body, "total": eur("99.00")}, key=key)
        assert problem(changed) == (409, "order_exists")
        replay = await api.post("/v1/partner/orders", body, key=key)
        assert replay.status_code == 201, replay.text
        assert replay.json()["entry_id"] == first.json()["entry_id"]
        assert await api.available(member) == 10
        assert (await get_partner(api, code))["funding_points"] == -10


class TestFundedEarning:
    async def test_a_prepaid_partner_spends_its_funding(self, api: Api, db: asyncpg.Connection) -> None:
        code, key = await partner_with_key(api, billing="prepaid")
        await partner_earning(api, code)
        member = await api.enrol()
        refused = await partner_order(api, key, member, "5.00")
        assert problem(refused) == (422, "partner_funds_insufficient")
        assert await partner_orders(db, api.program, code) == 0
        assert (await fund(api, code, 12)).status_code == 201
        await earned(api, key, member, "5.00")
        await earned(api, key, member, "7.00")
        assert (await get_partner(api, code))["funding_points"] == 0
        refused = await partner_order(api, key, member, "1.00")
        assert problem(refused) == (422, "partner_funds_insufficient")
        assert await api.available(member) == 12
        assert await partner_orders(db, api.program, code) == 2

    async def test_a_postpaid_partner_stops_at_its_credit_limit(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        code, key = await postpaid(api, credit_limit_points=20)
        member = await api.enrol()
        await earned(api, key, member, "15.00")
        refused = await partner_order(api, key, member, "6.00")
        assert problem(refused) == (422, "partner_credit_exceeded")
        await earned(api, key, member, "5.00")
        assert (await get_partner(api, code))["funding_points"] == -20
        assert await api.available(member) == 20
        assert await partner_orders(db, api.program, code) == 2

    async def test_a_postpaid_partner_without_a_limit_gives_out_freely(self, api: Api) -> None:
        code, key = await postpaid(api)
        member = await api.enrol()
        await earned(api, key, member, "100000.00")
        assert (await get_partner(api, code))["funding_points"] == -100000


class TestPartnerRefund:
    async def test_points_go_back_to_the_partners_funding(self, api: Api) -> None:
        code, key = await partner_with_key(api, billing="prepaid")
        await partner_earning(api, code, points=2)
        assert (await fund(api, code, 100)).status_code == 201
        member = await api.enrol()
        order = await earned(api, key, member, "20.00")
        assert (await get_partner(api, code))["funding_points"] == 60
        response = await api.post(
            f"/v1/partner/orders/{order['order_id']}/refunds",
            {"refund_id": "rf-1", "amount": eur("5.00")},
            key=key,
        )
        assert response.status_code == 201, response.text
        refund = response.json()
        assert (refund["refund_id"], refund["order_id"], refund["points_reversed"]) == (
            "rf-1",
            order["order_id"],
            10,
        )
        assert (refund["from_available"], refund["shortfall"]) == (10, 0)
        assert await api.available(member) == 30
        assert (await get_partner(api, code))["funding_points"] == 70

    async def test_a_refund_by_lines_and_its_limits(self, api: Api) -> None:
        code, key = await postpaid(api)
        member = await api.enrol()
        lines = [
            {"sku": "A", "quantity": 2, "unit_price": eur("10.00")},
            {"sku": "B", "quantity": 1, "unit_price": eur("5.00")},
        ]
        order = await earned(api, key, member, "25.00", lines=lines)
        path = f"/v1/partner/orders/{order['order_id']}/refunds"
        by_lines = await api.post(
            path, {"refund_id": "rf-1", "lines": [{"sku": "A", "quantity": 1}]}, key=key
        )
        assert by_lines.status_code == 201, by_lines.text
        assert by_lines.json()["points_reversed"] == 10
        assert (await get_partner(api, code))["funding_points"] == -15
        too_much = await api.post(path, {"refund_id": "rf-2", "amount": eur("20.00")}, key=key)
        assert problem(too_much) == (422, "refund_exceeds_order")
        wrong_currency = await api.post(
            path, {"refund_id": "rf-3", "amount": {"amount": "1.00", "currency": "USD"}}, key=key
        )
        assert problem(wrong_currency) == (422, "currency_mismatch")
        reused = await api.post(path, {"refund_id": "rf-1", "amount": eur("1.00")}, key=key)
        assert problem(reused) == (409, "refund_exists")
        assert await api.available(member) == 15
        assert (await get_partner(api, code))["funding_points"] == -15

    async def test_an_unknown_order_is_404(self, api: Api) -> None:
        _, key = await postpaid(api)
        member = await api.enrol()
        # a program order of the same id is not the partner's
        assert (
            await api.post("/v1/orders", order_body(member, "10.00", order_id="own-1"))
        ).status_code == 201
        for order_id in ("nothing-1", "own-1"):
            response = await api.post(
                f"/v1/partner/orders/{order_id}/refunds", {"refund_id": "rf", "amount": eur("1.00")}, key=key
            )
            assert problem(response) == (404, "order_not_found"), order_id
        assert await api.available(member) == 10


class TestPartnerOrderPreview:
    async def test_answers_without_writing(self, api: Api, db: asyncpg.Connection) -> None:
        code, key = await postpaid(api, points=4)
        member = await api.enrol()
        body = order_body(member, "10.00")
        response = await api.post("/v1/partner/orders/preview", body, key=key, idempotency_key=None)
        assert response.status_code == 200, response.text
        preview = response.json()
        assert (preview["points"], preview["entry_id"]) == (40, None)
        assert await api.available(member) == 0
        assert (await get_partner(api, code))["funding_points"] == 0
        assert await partner_orders(db, api.program, code) == 0
        placed = await api.post("/v1/partner/orders", body, key=key)
        assert placed.json()["points"] == 40

    async def test_without_a_section_is_422(self, api: Api) -> None:
        _, key = await partner_with_key(api)
        member = await api.enrol()
        response = await api.post(
            "/v1/partner/orders/preview", order_body(member, "10.00"), key=key, idempotency_key=None
        )
        assert problem(response) == (422, "partner_not_earning")

    async def test_needs_partner_earn_scope(self, api: Api) -> None:
        code = await onboard(api)
        key = await partner_key(api, code, "partner:redeem")
        await partner_earning(api, code)
        member = await api.enrol()
        response = await api.post(
            "/v1/partner/orders/preview", order_body(member, "10.00"), key=key, idempotency_key=None
        )
        assert problem(response) == (403, "forbidden")


class TestFunding:
    async def test_records_bought_points(self, api: Api) -> None:
        code = await onboard(api, billing="prepaid")
        before = datetime.now(UTC)
        response = await api.post(
            f"/v1/partners/{code}/funding",
            {"points": 1000, "price": eur("9.00"), "reference": "inv-1"},
        )
        assert response.status_code == 201, response.text
        funding = response.json()
        assert set(funding) == {
            "entry_id",
            "partner",
            "points",
            "price",
            "reference",
            "funding_points",
            "recorded_at",
        }
        assert (funding["partner"], funding["points"], funding["reference"]) == (code, 1000, "inv-1")
        assert funding["price"] == eur("9.00")
        assert funding["funding_points"] == 1000
        assert before <= instant(funding["recorded_at"]) <= datetime.now(UTC)
        second = (await fund(api, code, 500)).json()
        assert second["funding_points"] == 1500
        assert (await get_partner(api, code))["funding_points"] == 1500

    async def test_a_retry_with_the_same_key_funds_once(self, api: Api) -> None:
        code = await onboard(api, billing="prepaid")
        body = {"points": 100, "price": eur("1.00"), "reference": "inv-2"}
        first = await api.post(f"/v1/partners/{code}/funding", body, idempotency_key="fund-1")
        again = await api.post(f"/v1/partners/{code}/funding", body, idempotency_key="fund-1")
        assert first.status_code == again.status_code == 201
        assert first.json() == again.json()
        assert (await get_partner(api, code))["funding_points"] == 100

    async def test_a_postpaid_partner_is_422(self, api: Api) -> None:
        code = await onboard(api, billing="postpaid")
        assert problem(await fund(api, code, 100)) == (422, "partner_not_prepaid")
        assert (await get_partner(api, code))["funding_points"] == 0

    async def test_another_currency_is_422(self, api: Api) -> None:
        code = await onboard(api, billing="prepaid", currency="EUR")
        assert problem(await fund(api, code, 100, currency="USD")) == (422, "currency_mismatch")
        assert (await get_partner(api, code))["funding_points"] == 0

    async def test_bad_bodies_unknown_partner_and_non_admin(self, api: Api, other: Api) -> None:
        code = await onboard(api, billing="prepaid")
        for body in (
            {"points": 0, "price": eur("1.00"), "reference": "x"},
            {"points": 10, "price": eur("-1.00"), "reference": "x"},
            {"points": 10, "reference": "x"},
        ):
            response = await api.post(f"/v1/partners/{code}/funding", body)
            assert problem(response) == (422, "validation_error"), body
        assert problem(await fund(api, "nobody-here", 10)) == (404, "partner_not_found")
        assert problem(await fund(other, code, 10)) == (404, "partner_not_found")
        key = await api.key_with("points:earn", "points:adjust")
        response = await api.post(
            f"/v1/partners/{code}/funding", {"points": 10, "price": eur("1.00"), "reference": "x"}, key=key
        )
        assert problem(response) == (403, "forbidden")
        assert (await get_partner(api, code))["funding_points"] == 0


class TestIdempotencyKeysOfAPartner:
    async def test_the_same_key_string_at_two_partners_and_the_program_never_meets(self, api: Api) -> None:
        a, a_key = await partner_with_key(api)
        b, b_key = await partner_with_key(api)
        for code in (a, b):
            await add_rate(api, code, "earn", price_per_point="0.01")
        section = {"base": {"points": 1, "per": "1"}}
        await api.use_rules({"earn": section, "partner_earn": {a: section, b: section}})
        member = await api.enrol()
        at_a = await api.post(
            "/v1/partner/orders", order_body(member, "10.00"), key=a_key, idempotency_key="same"
        )
        at_b = await api.post(
            "/v1/partner/orders", order_body(member, "20.00"), key=b_key, idempotency_key="same"
        )
        own = await api.post("/v1/orders", order_body(member, "30.00"), idempotency_key="same")
        assert (at_a.status_code, at_b.status_code, own.status_code) == (201, 201, 201), (at_b.text, own.text)
        assert [r.json()["points"] for r in (at_a, at_b, own)] == [10, 20, 30]
        assert len({r.json()["entry_id"] for r in (at_a, at_b, own)}) == 3
        assert await api.available(member) == 60

    async def test_the_daily_cap_counts_the_members_orders_with_that_partner(self, api: Api) -> None:
        code, key = await partner_with_key(api)
        await add_rate(api, code, "earn", price_per_point="0.01")
        await api.use_rules(
            {
                "earn": {"base": {"points": 1, "per": "1"}, "caps": {"per_member_per_day": 15}},
                "partner_earn": {
                    code: {"base": {"points": 1, "per": "1"}, "caps": {"per_member_per_day": 25}}
                },
            }
        )
        member = await api.enrol()
        own = await api.post("/v1/orders", order_body(member, "15.00"))
        assert own.json()["points"] == 15
        first = await earned(api, key, member, "20.00")
        second = await earned(api, key, member, "20.00")
        assert (first["points"], second["points"]) == (20, 5)
        assert await api.available(member) == 40


async def draft(api: Api, document: dict[str, Any]) -> int:
    created = await api.post("/v1/rules", document, idempotency_key=None)
    assert created.status_code == 201, created.text
    return int(created.json()["version"])


async def simulate(api: Api, version: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    window = {"from": (now - timedelta(hours=1)).isoformat(), "to": (now + timedelta(hours=1)).isoformat()}
    response = await api.post(f"/v1/rules/{version}/simulate", window, idempotency_key=None)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


class TestSimulationOfPartnerOrders:
    async def test_a_draft_replays_partner_orders_by_its_partner_earn(self, api: Api) -> None:
        code, key = await postpaid(api)
        member = await api.enrol()
        await earned(api, key, member, "10.00")
        assert (await api.post("/v1/orders", order_body(member, "10.00"))).status_code == 201
        base = {"base": {"points": 1, "per": "1"}}
        richer = await draft(api, {"earn": base, "partner_earn": {code: {"base": {"points": 3, "per": "1"}}}})
        result = await simulate(api, richer)
        assert (result["orders"], result["orders_not_earning"]) == (2, 0)
        assert (result["actual_points"], result["simulated_points"], result["delta_points"]) == (20, 40, 20)
        without = await draft(api, {"earn": base})
        result = await simulate(api, without)
        assert (result["orders_not_earning"], result["simulated_points"]) == (1, 10)

    async def test_replaying_the_active_version_reproduces_per_partner_daily_caps(self, api: Api) -> None:
        code, key = await partner_with_key(api)
        await add_rate(api, code, "earn", price_per_point="0.01")
        active = await api.use_rules(
            {
                "earn": {"base": {"points": 1, "per": "1"}, "caps": {"per_member_per_day": 15}},
                "partner_earn": {
                    code: {"base": {"points": 1, "per": "1"}, "caps": {"per_member_per_day": 25}}
                },
            }
        )
        member = await api.enrol()
        assert (await api.post("/v1/orders", order_body(member, "15.00"))).json()["points"] == 15
        await earned(api, key, member, "20.00")
        await earned(api, key, member, "20.00")
        assert await api.available(member) == 40
        result = await simulate(api, active)
        assert (result["actual_points"], result["simulated_points"], result["delta_points"]) == (40, 40, 0)


class TestPartnerOrdersInTheMembersHistory:
    async def test_the_members_orders_name_the_partner(self, api: Api) -> None:
        code, key = await postpaid(api)
        member = await api.enrol()
        order = await earned(api, key, member, "10.00")
        own = await api.post("/v1/orders", order_body(member, "5.00"))
        assert own.status_code == 201, own.text
        response = await api.get(f"/v1/members/{member}/orders")
        assert response.status_code == 200, response.text
        listed = {item["order_id"]: item for item in response.json()["items"]}
        assert listed[order["order_id"]]["partner"] == code
        assert listed[order["order_id"]]["points"] == 10
        assert listed[own.json()["order_id"]]["partner"] is None
