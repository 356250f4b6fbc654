"""What a partner owes and is owed: GET .../settlement and .../settlement/lines,
by admin and by the partner's own keys, checked against hand computations."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.partners.helpers import (
    add_rate,
    convert_in,
    convert_out,
    earned,
    eur,
    fund,
    get_partner,
    instant,
    member_with,
    partner_earning,
    partner_key,
    partner_with_key,
    period,
    problem,
    redeem_at,
    settlement_of,
)
from tests.support import Api, MovableClock

SECTIONS = (
    "earn",
    "earn_refunds",
    "funding",
    "redemptions",
    "redemption_reversals",
    "donations",
    "conversions_out",
    "conversions_in",
)


def section(points: int, amount: str, currency: str = "EUR") -> dict[str, Any]:
    return {"points": points, "money": {"amount": amount, "currency": currency}}


def sections(currency: str = "EUR", zero: str = "0.00", **given: dict[str, Any]) -> dict[str, Any]:
    return {name: given.get(name, section(0, zero, currency)) for name in SECTIONS}


async def lines_of(api: Api, code: str, key: str | None = None, **params: Any) -> list[dict[str, Any]]:
    path = "/v1/partner/settlement/lines" if key else f"/v1/partners/{code}/settlement/lines"
    items: list[dict[str, Any]] = []
    cursor = None
    window = period()
    while True:
        extra = {**window, **params, **({"cursor": cursor} if cursor else {})}
        response = await api.get(path, key=key, **extra)
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items


class TestSettlementArithmetic:
    async def test_each_line_is_rounded_half_up_then_summed(self, api: Api) -> None:
        # 3 points at 0.0125 = 0.0375 -> 0.04 a line (0.11 if summed first);
        # 5 points at 0.005 = 0.025 -> 0.03 a line half up (0.02 half even)
        code, key = await partner_with_key(api)
        await add_rate(api, code, "earn", price_per_point="0.0125")
        await add_rate(api, code, "redeem", price_per_point="0.005")
        await partner_earning(api, code, points=3)
        member = await member_with(api, 10)
        for _ in range(3):
            assert (await earned(api, key, member, "1.00"))["points"] == 3
        for _ in range(2):
            spent = await redeem_at(api, key, member, 5)
            assert spent.status_code == 201, spent.text

        body = await settlement_of(api, code)
        assert set(body) == {
            "partner",
            "from",
            "to",
            "currency",
            "sections",
            "totals",
            "lines_count",
            "chain_sequence",
        }
        assert (body["partner"], body["currency"], body["lines_count"]) == (code, "EUR", 5)
        assert body["sections"] == sections(earn=section(9, "0.12"), redemptions=section(10, "0.06"))
        assert body["totals"] == {
            "partner_owes": eur("0.12"),
            "program_owes": eur("0.06"),
            "net": eur("0.06"),
            "direction": "partner_owes",
        }
        lines = await lines_of(api, code)
        assert [(line["section"], line["points"], line["money"]["amount"]) for line in lines] == [
            ("earn", 3, "0.04"),
            ("earn", 3, "0.04"),
            ("earn", 3, "0.04"),
            ("redemptions", 5, "0.03"),
            ("redemptions", 5, "0.03"),
        ]
        assert [Decimal(line["price_per_point"]) for line in lines] == [Decimal("0.0125")] * 3 + [
            Decimal("0.005")
        ] * 2

    async def test_the_partners_own_view_is_the_same(self, api: Api) -> None:
        code, key = await partner_with_key(api)
        await add_rate(api, code, "earn", price_per_point="0.0125")
        await partner_earning(api, code, points=3)
        member = await api.enrol()
        await earned(api, key, member, "1.00")
        window = period()
        admin = await settlement_of(api, code, **window)
        reader = await partner_key(api, code, "partner:convert")  # any partner scope reads it
        own = await settlement_of(api, code, key=reader, **window)
        assert own == admin
        assert await lines_of(api, code, key=reader) == await lines_of(api, code)

    async def test_a_currency_without_decimals_rounds_to_whole_units(self, api: Api) -> None:
        code, key = await partner_with_key(api, currency="JPY")
        await add_rate(api, code, "earn", price_per_point="0.5")
        await partner_earning(api, code, points=3)
        member = await api.enrol()
        await earned(api, key, member, "1.00")
        await earned(api, key, member, "1.00")
        body = await settlement_of(api, code)
        assert body["currency"] == "JPY"
        assert body["sections"]["earn"] == section(6, "4", "JPY")  # 1.5 -> 2, twice
        assert body["totals"]["partner_owes"] == {"amount": "4", "currency": "JPY"}


class TestSettlementSections:
    async def test_every_section_of_a_postpaid_partner(self, api: Api) -> None:
        code, key = await partner_with_key(
            api, roles=("earn", "redeem", "convert_out", "convert_in", "donation")
        )
        await add_rate(api, code, "earn", price_per_point="0.01")
        await add_rate(api, code, "redeem", price_per_point="0.02")
        await add_rate(api, code, "convert_out", partner_units_per_point="1", price_per_point="0.005")
        await add_rate(api, code, "convert_in", partner_units_per_point="2", price_per_point="0.004")
        await partner_earning(api, code)
        member = await member_with(api, 100)

        order = await earned(api, key, member, "100.00")
        refund = await api.post(
            f"/v1/partner/orders/{order['order_id']}/refunds",
            {"refund_id": "rf-1", "amount": eur("50.00")},
            key=key,
        )
        assert refund.status_code == 201, refund.text
        undone = (await redeem_at(api, key, member, 40)).json()
        reversal = await api.post(f"/v1/partner/redemptions/{undone['id']}/reversal", {}, key=key)
        assert reversal.status_code == 201, reversal.text
        assert (await redeem_at(api, key, member, 10)).status_code == 201
        donation = await api.post(f"/v1/members/{member}/donations", {"partner": code, "points": 20})
        assert donation.status_code == 201, donation.text
        out = (await convert_out(api, member, code, 30)).json()
        assert (
            await api.post(f"/v1/partner/conversions/{out['id']}/confirm", {}, key=key)
        ).status_code == 201
        dropped = (await convert_out(api, member, code, 5)).json()
        assert (
            await api.post(f"/v1/partner/conversions/{dropped['id']}/reject", {"reason": "no"}, key=key)
        ).status_code == 201
        assert (await convert_in(api, key, member, 21)).status_code == 201
        assert await api.available(member) == 100
        partner = await get_partner(api, code)
        assert (partner["funding_points"], partner["payable_points"]) == (-60, 60)

        response = await api.get(f"/v1/partners/{code}/settlement", **period())
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["sections"] == sections(
            earn=section(100, "1.00"),
            earn_refunds=section(-50, "-0.50"),
            redemptions=section(50, "1.00"),
            redemption_reversals=section(-40, "-0.80"),
            donations=section(20, "0.40"),
            conversions_out=section(30, "0.15"),
            conversions_in=section(10, "0.04"),
        )
        assert body["totals"] == {
            "partner_owes": eur("0.54"),
            "program_owes": eur("0.75"),
            "net": {"amount": "-0.21", "currency": "EUR"},
            "direction": "program_owes",
        }
        assert body["lines_count"] == 8

    async def test_a_program_that_owes_shows_a_negative_net(self, api: Api) -> None:
        code, key = await partner_with_key(api)
        await add_rate(api, code, "redeem", price_per_point="0.02")
        member = await member_with(api, 100)
        assert (await redeem_at(api, key, member, 40)).status_code == 201
        response = await api.get(f"/v1/partners/{code}/settlement", **period())
        assert response.status_code == 200, response.text
        totals = response.json()["totals"]
        assert totals == {
            "partner_owes": eur("0.00"),
            "program_owes": eur("0.80"),
            "net": {"amount": "-0.80", "currency": "EUR"},
            "direction": "program_owes",
        }

    async def test_a_reversal_is_priced_as_the_redemption_it_undoes(self, api: Api) -> None:
        code, key = await partner_with_key(api)
        await add_rate(api, code, "redeem", price_per_point="0.02")
        member = await member_with(api, 100)
        redemption = (await redeem_at(api, key, member, 40)).json()
        await api.post(f"/v1/partner/redemptions/{redemption['id']}/reversal", {}, key=key)
        response = await api.get(f"/v1/partners/{code}/settlement/lines", **period())
        assert response.status_code == 200, response.text
        lines = response.json()["items"]
        assert [(line["section"], line["points"], line["money"]["amount"]) for line in lines] == [
            ("redemptions", 40, "0.80"),
            ("redemption_reversals", -40, "-0.80"),
        ]
        assert lines[1]["undoes"] == redemption["id"]
        assert lines[1]["rate_id"] == lines[0]["rate_id"]

    async def test_a_prepaid_partner_pays_through_funding(self, api: Api) -> None:
        code, key = await partner_with_key(api, billing="prepaid")
        await add_rate(api, code, "earn", price_per_point="0.01")
        await add_rate(api, code, "convert_in", partner_units_per_point="1", price_per_point="0.004")
        await partner_earning(api, code)
        assert (await fund(api, code, 100, amount="7.35")).status_code == 201
        member = await api.enrol()
        await earned(api, key, member, "30.00")
        assert (await convert_in(api, key, member, 5)).status_code == 201
        body = await settlement_of(api, code)
        assert body["sections"] == sections(
            earn=section(30, "0.00"), funding=section(100, "7.35"), conversions_in=section(5, "0.00")
        )
        assert body["totals"] == {
            "partner_owes": eur("7.35"),
            "program_owes": eur("0.00"),
            "net": eur("7.35"),
            "direction": "partner_owes",
        }
        lines = await lines_of(api, code)
        assert [line["section"] for line in lines] == ["funding", "earn", "conversions_in"]
        assert lines[0]["money"] == eur("7.35")

    async def test_a_prepaid_refund_carries_no_money(self, api: Api) -> None:
        code, key = await partner_with_key(api, billing="prepaid")
        await partner_earning(api, code)
        await fund(api, code, 100, amount="5.00")
        member = await api.enrol()
        order = await earned(api, key, member, "30.00")
        refund = await api.post(
            f"/v1/partner/orders/{order['order_id']}/refunds",
            {"refund_id": "rf-1", "amount": eur("10.00")},
            key=key,
        )
        assert refund.status_code == 201, refund.text
        body = await settlement_of(api, code)
        assert body["sections"]["earn_refunds"]["points"] == -10
        assert Decimal(body["sections"]["earn_refunds"]["money"]["amount"]) == 0
        assert body["totals"]["partner_owes"] == eur("5.00")

    async def test_pending_and_rejected_conversions_are_not_settled(self, api: Api) -> None:
        code, key = await partner_with_key(api)
        await add_rate(api, code, "convert_out", partner_units_per_point="1", price_per_point="0.01")
        member = await member_with(api, 100)
        pending = (await convert_out(api, member, code, 30)).json()
        body = await settlement_of(api, code)
        assert (body["lines_count"], body["sections"]["conversions_out"]) == (0, section(0, "0.00"))
        await api.post(f"/v1/partner/conversions/{pending['id']}/reject", {"reason": "no"}, key=key)
        assert (await settlement_of(api, code))["lines_count"] == 0


class TestRateChange:
    async def test_lines_keep_the_rate_in_force_when_recorded(self, api: Api, clock: MovableClock) -> None:
        code, key = await partner_with_key(api)
        first = await add_rate(api, code, "earn", price_per_point="0.01")
        later = datetime.now(UTC) + timedelta(hours=1)
        second = await add_rate(api, code, "earn", price_per_point="0.02", effective_from=later.isoformat())
        await partner_earning(api, code)
        member = await api.enrol()
        start = datetime.now(UTC) - timedelta(minutes=1)
        await earned(api, key, member, "10.00")
        clock.offset = timedelta(hours=2)
        await earned(api, key, member, "10.00")
        end = datetime.now(UTC) + timedelta(hours=3)

        whole = await settlement_of(api, code, **{"from": start.isoformat(), "to": end.isoformat()})
        assert whole["sections"]["earn"] == section(20, "0.30")
        lines = await lines_of(api, code, **{"from": start.isoformat(), "to": end.isoformat()})
        assert [(line["rate_id"], line["money"]["amount"]) for line in lines] == [
            (first["id"], "0.10"),
            (second["id"], "0.20"),
        ]
        after = await settlement_of(api, code, **{"from": later.isoformat(), "to": end.isoformat()})
        assert after["sections"]["earn"] == section(10, "0.20")

    async def test_a_refund_after_a_rate_change_is_priced_at_the_orders_rate(
        self, api: Api, clock: MovableClock
    ) -> None:
        code, key = await partner_with_key(api)
        first = await add_rate(api, code, "earn", price_per_point="0.01")
        later = datetime.now(UTC) + timedelta(hours=1)
        await add_rate(api, code, "earn", price_per_point="0.02", effective_from=later.isoformat())
        await partner_earning(api, code)
        member = await api.enrol()
        order = await earned(api, key, member, "10.00")
        clock.offset = timedelta(hours=2)
        refund = await api.post(
            f"/v1/partner/orders/{order['order_id']}/refunds",
            {"refund_id": "rf-1", "amount": eur("5.00")},
            key=key,
        )
        assert refund.status_code == 201, refund.text
        window = {"from": later.isoformat(), "to": (datetime.now(UTC) + timedelta(hours=3)).isoformat()}
        response = await api.get(f"/v1/partners/{code}/settlement/lines", **window)
        assert response.status_code == 200, response.text
        [line] = response.json()["items"]
        assert (line["section"], line["points"], line["rate_id"]) == ("earn_refunds", -5, first["id"])
        assert Decimal(line["price_per_point"]) == Decimal("0.01")
        assert line["money"] == {"amount": "-0.05", "currency": "EUR"}


class TestSettlementPeriodAndLines:
    async def test_from_is_included_and_to_excluded(self, api: Api) -> None:
        code, key = await partner_with_key(api)
        await add_rate(api, code, "earn", price_per_point="0.01")
        await partner_earning(api, code)
        member = await api.enrol()
        await earned(api, key, member, "10.00")
        [line] = await lines_of(api, code)
        recorded = instant(line["recorded_at"])
        at = recorded.isoformat()
        before = (recorded - timedelta(hours=1)).isoformat()
        after = (recorded + timedelta(hours=1)).isoformat()
        assert (await settlement_of(api, code, **{"from": at, "to": after}))["lines_count"] == 1
        assert (await settlement_of(api, code, **{"from": before, "to": at}))["lines_count"] == 0
        empty = await settlement_of(api, code, **{"from": before, "to": at})
        assert empty["sections"] == sections()
        assert empty["totals"]["direction"] == "none"
        assert empty["totals"]["net"] == eur("0.00")

    async def test_to_not_after_from_is_422(self, api: Api) -> None:
        code, key = await partner_with_key(api)
        now = datetime.now(UTC).isoformat()
        for path, k in ((f"/v1/partners/{code}/settlement", None), ("/v1/partner/settlement", key)):
            response = await api.get(path, key=k, **{"from": now, "to": now})
            assert problem(response) == (422, "validation_error"), path
        missing = await api.get(f"/v1/partners/{code}/settlement", to=now)
        assert problem(missing) == (422, "validation_error")

    async def test_lines_page_and_csv(self, api: Api) -> None:
        code, key = await partner_with_key(api)
        rate = await add_rate(api, code, "earn", price_per_point="0.0125")
        await partner_earning(api, code, points=3)
        member = await api.enrol()
        orders = [await earned(api, key, member, "1.00") for _ in range(3)]
        window = period()
        first = await api.get(f"/v1/partners/{code}/settlement/lines", limit=2, **window)
        assert first.status_code == 200, first.text
        page = first.json()
        assert len(page["items"]) == 2
        assert page["next_cursor"]
        line = page["items"][0]
        assert set(line) == {
            "entry_id",
            "section",
            "kind",
            "recorded_at",
            "points",
            "price_per_point",
            "money",
            "rate_id",
            "undoes",
        }
        assert (line["entry_id"], line["section"], line["kind"], line["rate_id"], line["undoes"]) == (
            orders[0]["entry_id"],
            "earn",
            "earn",
            rate["id"],
            None,
        )
        rest = await api.get(
            f"/v1/partners/{code}/settlement/lines", limit=2, cursor=page["next_cursor"], **window
        )
        assert [item["entry_id"] for item in page["items"] + rest.json()["items"]] == [
            order["entry_id"] for order in orders
        ]
        assert rest.json()["next_cursor"] is None

        for path, k in (
            (f"/v1/partners/{code}/settlement/lines", None),
            ("/v1/partner/settlement/lines", key),
        ):
            response = await api.get(path, key=k, format="csv", **window)
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith("text/csv")
            rows = list(csv.DictReader(io.StringIO(response.text)))
            assert [row["entry_id"] for row in rows] == [order["entry_id"] for order in orders]
            assert {(row["section"], row["points"], row["money"], row["currency"]) for row in rows} == {
                ("earn", "3", "0.04", "EUR")
            }
            assert {row["rate_id"] for row in rows} == {str(rate["id"])}

    async def test_a_partner_key_sees_only_its_own_lines(self, api: Api) -> None:
        a, a_key = await partner_with_key(api)
        b, b_key = await partner_with_key(api)
        for code in (a, b):
            await add_rate(api, code, "earn", price_per_point="0.01")
        section_ = {"base": {"points": 1, "per": "1"}}
        await api.use_rules({"earn": section_, "partner_earn": {a: section_, b: section_}})
        member = await api.enrol()
        await earned(api, a_key, member, "10.00")
        await earned(api, b_key, member, "20.00")
        assert (await settlement_of(api, a, key=a_key))["sections"]["earn"] == section(10, "0.10")
        assert (await settlement_of(api, b, key=b_key))["sections"]["earn"] == section(20, "0.20")
        assert [line["points"] for line in await lines_of(api, a, key=a_key)] == [10]

    async def test_unknown_partner_and_non_admin(self, api: Api, other: Api) -> None:
        code, _ = await partner_with_key(api)
        assert problem(await api.get("/v1/partners/nobody-here/settlement", **period())) == (
            404,
            "partner_not_found",
        )
        assert problem(await other.get(f"/v1/partners/{code}/settlement", **period())) == (
            404,
            "partner_not_found",
        )
        reader = await api.key_with("reports:read", "members:read")
        for path in (f"/v1/partners/{code}/settlement", f"/v1/partners/{code}/settlement/lines"):
            assert problem(await api.get(path, key=reader, **period())) == (403, "forbidden")


class TestReversalRounding:
    async def test_a_reversed_redemption_nets_to_zero_money(self, api: Api) -> None:
        # 5 points at 0.005 = 0.025: 0.03 half up; its reversal must undo exactly that
        code, key = await partner_with_key(api)
        await add_rate(api, code, "redeem", price_per_point="0.005")
        member = await member_with(api, 10)
        redemption = (await redeem_at(api, key, member, 5)).json()
        reversal = await api.post(f"/v1/partner/redemptions/{redemption['id']}/reversal", {}, key=key)
        assert reversal.status_code == 201, reversal.text
        body = await settlement_of(api, code)
        assert body["sections"]["redemptions"] == section(5, "0.03")
        assert body["sections"]["redemption_reversals"] == section(-5, "-0.03")
        assert body["totals"]["program_owes"] == eur("0.00")
        assert body["totals"]["direction"] == "none"
