"""The reports over HTTP, against figures computed by hand on a small ledger: an
order, a partner order, an award that expires, a partial refund, a transfer
(which moves no liability) and a redemption."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from tests.partners.helpers import add_rate, partner_order, partner_with_key
from tests.support import Api, chain_program, new_program

VALUATION = {"cost_per_point": "0.005", "currency": "EUR", "redemption_cost_cap": "0.03"}


def rules(code: str | None = None, **extra: Any) -> dict[str, Any]:
    document: dict[str, Any] = {"earn": {"base": {"points": 1, "per": "1", "rounding": "floor"}}, **extra}
    if code is not None:
        document["partner_earn"] = {code: {"base": {"points": 2, "per": "1", "rounding": "floor"}}}
    return document


@dataclass
class Ledger:
    api: Api
    start: datetime
    end: datetime
    a: str
    b: str


async def small_ledger(api: Api) -> Ledger:
    """A: order 100.00 (100 points), partner order 10.00 (20 points), refund 20.00
    of the order (20 points back), transfer 30 to B, redeem 40: 30 left.
    B: award 50 expiring tomorrow (expired by the job), 30 from A: 30 left."""
    start = datetime.now(UTC) - timedelta(seconds=1)
    code, key = await partner_with_key(api)
    await add_rate(api, code, "earn", price_per_point="0.01")
    await api.use_rules(rules(code, valuation=VALUATION))
    a, b = await api.enrol(), await api.enrol()
    order = await api.order(a, "100.00")
    assert order.status_code == 201, order.text
    assert order.json()["points"] == 100
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert (await api.award(b, 50, expires_at=tomorrow)).status_code == 201
    placed = await partner_order(api, key, a, "10.00")
    assert placed.status_code == 201, placed.text
    assert placed.json()["points"] == 20
    refund = await api.refund(order.json()["order_id"], amount={"amount": "20.00", "currency": "EUR"})
    assert refund.status_code == 201, refund.text
    assert (await api.transfer(a, b, 30)).status_code == 201
    assert (await api.redeem(a, 40)).status_code == 201
    as_of = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    expired = await api.post("/v1/jobs/expire", {"as_of": as_of}, idempotency_key=None)
    assert expired.status_code == 200, expired.text
    assert expired.json()["counts"]["points"] == 50
    assert (await api.available(a), await api.available(b)) == (30, 30)
    return Ledger(api, start, datetime.now(UTC), a, b)


@pytest.fixture
async def ledger(api: Api) -> Ledger:
    return await small_ledger(api)


def period(ledger: Ledger, **more: str) -> dict[str, str]:
    return {"from": ledger.start.isoformat(), "to": ledger.end.isoformat(), **more}


async def report(api: Api, name: str, **params: str) -> dict[str, Any]:
    response = await api.get(f"/v1/reports/{name}", **params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert isinstance(body["chain_sequence"], int)
    return body


def without_sequence(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "chain_sequence"}


class TestLiability:
    async def test_the_outstanding_points_and_their_worth(self, ledger: Ledger) -> None:
        body = await report(ledger.api, "liability", as_of=ledger.end.isoformat())
        assert (body["available"], body["pending"], body["held"], body["outstanding"]) == (60, 0, 0, 60)
        assert body["members_holding"] == 2
        assert body["liability"] == {"amount": "0.300", "currency": "EUR"}
        assert body["valuation"]["cost_per_point"] == "0.005"
        assert len(body["expiring"]) == 14
        assert {row["month"]: row["points"] for row in body["expiring"]}["never"] == 60
        assert sum(row["points"] for row in body["expiring"]) == 60

    async def test_a_past_as_of_reads_the_same_after_more_activity(self, ledger: Ledger) -> None:
        before = await report(ledger.api, "liability", as_of=ledger.end.isoformat())
        assert (await ledger.api.award(ledger.a, 7)).status_code == 201
        assert (await ledger.api.redeem(ledger.b, 5)).status_code == 201
        again = await report(ledger.api, "liability", as_of=ledger.end.isoformat())
        assert without_sequence(again) == without_sequence(before)
        now = await report(ledger.api, "liability")
        assert now["outstanding"] == 62

    async def test_pending_and_held_points(self, api: Api) -> None:
        await api.use_rules(
            rules(None, valuation=VALUATION) | {"earn": {**rules()["earn"], "pending_days": 14}}
        )
        member = await api.enrol()
        assert (await api.order(member, "30.00")).status_code == 201
        assert (await api.award(member, 100)).status_code == 201
        hold = await api.post(f"/v1/members/{member}/holds", {"points": 25})
        assert hold.status_code == 201, hold.text
        body = await report(api, "liability")
        assert (body["available"], body["pending"], body["held"], body["outstanding"]) == (75, 30, 25, 130)
        assert body["liability"] == {"amount": "0.650", "currency": "EUR"}
        # the expiry months count the available points (lots) alone
        assert sum(row["points"] for row in body["expiring"]) == 75
        captured = await api.post(f"/v1/holds/{hold.json()['hold_id']}/capture", {})
        assert captured.status_code == 201, captured.text
        after = await report(api, "liability")
        assert (after["held"], after["outstanding"]) == (0, 105)

    async def test_points_by_expiry_month(self, api: Api) -> None:
        member = await api.enrol()
        in_two_months = datetime.now(UTC) + timedelta(days=62)
        assert (await api.award(member, 10, expires_at=in_two_months.isoformat())).status_code == 201
        assert (
            await api.award(member, 4, expires_at=(datetime.now(UTC) + timedelta(days=800)).isoformat())
        ).status_code == 201
        assert (await api.award(member, 3)).status_code == 201
        body = await report(api, "liability")
        months = {row["month"]: row["points"] for row in body["expiring"]}
        assert months[in_two_months.strftime("%Y-%m")] == 10
        assert (months["later"], months["never"]) == (4, 3)
        assert body["liability"] is None  # no valuation in the rules

    async def test_csv(self, ledger: Ledger) -> None:
        response = await ledger.api.get("/v1/reports/liability", format="csv")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        lines = response.text.splitlines()
        assert lines[0] == "month,points"
        assert lines[-1] == "never,60"
        assert int(response.headers["X-Chain-Sequence"]) >= 0

    async def test_a_future_as_of_is_422(self, api: Api) -> None:
        future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        response = await api.get("/v1/reports/liability", as_of=future)
        assert response.status_code == 422
        assert response.json()["code"] == "validation_error"

    async def test_an_unknown_format_is_422(self, api: Api) -> None:
        response = await api.get("/v1/reports/liability", format="xml")
        assert response.status_code == 422
        body = response.json()
        assert body["code"] == "validation_error"
        assert body["errors"][0]["field"] == "query.format"

    async def test_needs_reports_read(self, api: Api) -> None:
        key = await api.key_with("members:read")
        response = await api.get("/v1/reports/liability", key=key)
        assert response.status_code == 403
        allowed = await api.key_with("reports:read")
        assert (await api.get("/v1/reports/liability", key=allowed)).status_code == 200

    async def test_another_programs_key_sees_its_own_program(self, ledger: Ledger, other: Api) -> None:
        body = await report(other, "liability")
        assert body["outstanding"] == 0


class TestBreakage:
    async def test_by_earn_month(self, ledger: Ledger) -> None:
        body = await report(ledger.api, "breakage", **period(ledger))
        assert len(body["months"]) == 1
        expected = {"issued": 150, "redeemed": 40, "expired": 50, "forfeited": 0, "outstanding": 60}
        month = body["months"][0]
        assert {key: month[key] for key in expected} == expected
        assert month["breakage_rate"] == "0.3333"
        assert body["total"]["month"] == "total"
        assert {key: body["total"][key] for key in expected} == expected

    async def test_reproduces_after_more_activity(self, ledger: Ledger) -> None:
        before = await report(ledger.api, "breakage", **period(ledger))
        assert (await ledger.api.redeem(ledger.a, 10)).status_code == 201
        again = await report(ledger.api, "breakage", **period(ledger))
        assert without_sequence(again) == without_sequence(before)

    async def test_csv(self, ledger: Ledger) -> None:
        response = await ledger.api.get("/v1/reports/breakage", **period(ledger, format="csv"))
        assert response.status_code == 200, response.text
        lines = response.text.splitlines()
        assert lines[0] == "month,issued,redeemed,expired,forfeited,outstanding,breakage_rate"
        assert lines[-1] == "total,150,40,50,0,60,0.3333"

    @pytest.mark.parametrize(
        "params",
        [
            {"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
            {"from": "2026-01-01T00:00:00Z", "to": "2999-01-01T00:00:00Z"},
            {"from": "2000-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
            {"from": "yesterday", "to": "2026-01-01T00:00:00Z"},
            {"to": "2026-01-01T00:00:00Z"},
        ],
    )
    async def test_bad_periods_are_422(self, api: Api, params: dict[str, str]) -> None:
        response = await api.get("/v1/reports/breakage", **params)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "validation_error"


class TestRedemptionCost:
    async def test_cost_revenue_and_headroom(self, ledger: Ledger, db: asyncpg.Connection) -> None:
        body = await report(ledger.api, "redemption-cost", **period(ledger))
        assert body["points_redeemed"] == 40
        assert body["cost"] == {"amount": "0.200", "currency": "EUR"}
        assert body["revenue"] == {"amount": "90.00", "currency": "EUR"}
        assert body["ratio"] == "0.002222"
        assert body["cap"] == "0.03"
        assert body["headroom"] == {"amount": "2.5000", "currency": "EUR"}
        assert body["cap_exceeded"] is False
        assert body["from"] == ledger.start.isoformat().replace("+00:00", "Z")

    async def test_csv(self, ledger: Ledger) -> None:
        response = await ledger.api.get("/v1/reports/redemption-cost", **period(ledger, format="csv"))
        assert response.status_code == 200, response.text
        assert response.text.splitlines() == [
            "points_redeemed,cost,revenue,ratio,cap,headroom,cap_exceeded",
            "40,0.200,90.00,0.002222,0.03,2.5000,False",
        ]
        assert response.headers["X-Period"].startswith(ledger.start.isoformat())

    async def test_a_period_over_the_cap_writes_one_event(self, db: asyncpg.Connection, client: Any) -> None:
        api = await new_program(client)
        await api.use_rules(rules(None, valuation=VALUATION))
        start = datetime.now(UTC) - timedelta(seconds=1)
        member = await api.enrol()
        assert (await api.order(member, "10.00")).status_code == 201
        assert (await api.award(member, 990)).status_code == 201
        assert (await api.redeem(member, 1000)).status_code == 201
        params = {"from": start.isoformat(), "to": datetime.now(UTC).isoformat()}
        bodies = await asyncio.gather(*(report(api, "redemption-cost", **params) for _ in range(4)))
        for body in bodies:
            assert (body["cost"]["amount"], body["revenue"]["amount"], body["cap_exceeded"]) == (
                "5.000",
                "10.00",
                True,
            )
            assert body["headroom"] == {"amount": "-4.7000", "currency": "EUR"}
        await report(api, "redemption-cost", **params)
        events = await db.fetch(
            "SELECT e.data FROM event_log e JOIN program p ON p.id = e.program_id"
            " WHERE p.code = $1 AND e.type = 'cost.cap_exceeded'",
            api.program,
        )
        assert len(events) == 1
        assert json.loads(events[0]["data"])["cost"] == {"amount": "5.000", "currency": "EUR"}
        await chain_program(db, api.program)
        listed = await api.get("/v1/events", type="cost.cap_exceeded")
        assert listed.status_code == 200, listed.text
        (event,) = listed.json()["items"]
        assert event["data"]["from"] == params["from"].replace("+00:00", "Z")
        assert event["data"]["headroom"] == {"amount": "-4.7000", "currency": "EUR"}

    async def test_a_period_under_the_cap_writes_none(self, ledger: Ledger, db: asyncpg.Connection) -> None:
        await report(ledger.api, "redemption-cost", **period(ledger))
        count = await db.fetchval(
            "SELECT count(*) FROM event_log e JOIN program p ON p.id = e.program_id"
            " WHERE p.code = $1 AND e.type = 'cost.cap_exceeded'",
            ledger.api.program,
        )
        assert count == 0


class TestActivity:
    async def test_one_day(self, ledger: Ledger) -> None:
        body = await report(ledger.api, "activity", **period(ledger, granularity="day"))
        assert body["timezone"] == "UTC"
        days = body["buckets"]
        assert days[0]["start"] == ledger.start.date().isoformat()
        totals = {key: sum(day[key] for day in days) for key in days[0] if key not in ("start", "revenue")}
        assert totals == {
            "orders_points": 100,
            "partner_orders_points": 20,
            "conversions_points": 0,
            "events_points": 0,
            "awards_points": 50,
            "imports_points": 0,
            "redeemed": 40,
            "expired": 50,
            "forfeited": 0,
            "refunded": 20,
            "net_change": 60,
            "orders": 2,
            "new_members": 2,
            "active_members": 2,
        }
        if len(days) == 1:  # a run across midnight (UTC) splits the figures over two days
            assert days[0]["revenue"] == {"EUR": "90.00"}

    async def test_net_change_is_the_liability_change(self, ledger: Ledger) -> None:
        body = await report(ledger.api, "activity", **period(ledger, granularity="month"))
        before = await report(ledger.api, "liability", as_of=ledger.start.isoformat())
        after = await report(ledger.api, "liability", as_of=ledger.end.isoformat())
        net = sum(bucket["net_change"] for bucket in body["buckets"])
        assert net == after["outstanding"] - before["outstanding"] == 60

    @pytest.mark.parametrize("granularity", ["day", "week", "month"])
    async def test_buckets_are_in_the_programs_timezone(self, api: Api, granularity: str) -> None:
        # UTC+14: the local day is a day ahead of UTC for ten hours of it
        await api.use_rules(rules(None, timezone="Pacific/Kiritimati"))
        start = datetime.now(UTC) - timedelta(seconds=1)
        member = await api.enrol()
        assert (await api.award(member, 5)).status_code == 201
        local = datetime.now(ZoneInfo("Pacific/Kiritimati")).date()
        first = {
            "day": local,
            "week": local - timedelta(days=local.weekday()),
            "month": local.replace(day=1),
        }[granularity]
        params = {"from": start.isoformat(), "to": datetime.now(UTC).isoformat(), "granularity": granularity}
        body = await report(api, "activity", **params)
        assert body["timezone"] == "Pacific/Kiritimati"
        assert [bucket["start"] for bucket in body["buckets"]] == [first.isoformat()]
        assert body["buckets"][0]["awards_points"] == 5

    async def test_an_unknown_granularity_is_422(self, ledger: Ledger) -> None:
        response = await ledger.api.get("/v1/reports/activity", **period(ledger, granularity="hour"))
        assert response.status_code == 422
        assert response.json()["code"] == "validation_error"

    async def test_too_many_buckets_is_422(self, api: Api) -> None:
        response = await api.get(
            "/v1/reports/activity", **{"from": "2020-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}
        )
        assert response.status_code == 422
        assert "granularity" in response.json()["detail"]

    async def test_csv(self, ledger: Ledger) -> None:
        response = await ledger.api.get(
            "/v1/reports/activity", **period(ledger, granularity="month", format="csv")
        )
        assert response.status_code == 200, response.text
        header, *rows = response.text.splitlines()
        assert header.startswith("start,orders_points,partner_orders_points")
        assert rows
        assert "EUR=90.00" in rows[-1]


class TestOverview:
    async def test_rates(self, ledger: Ledger) -> None:
        body = await report(ledger.api, "overview", **period(ledger))
        assert (body["members_enrolled"], body["members_participating"]) == (2, 2)
        assert body["participation_rate"] == "1.0000"
        assert (body["buyers"], body["repeat_buyers"], body["repeat_purchase_rate"]) == (1, 1, "1.0000")
        assert body["orders"] == 2
        assert body["average_order_value"] == {"EUR": "45.00"}
        assert (body["points_issued"], body["points_per_order"]) == (170, "60.00")
        assert (body["points_redeemed"], body["redemption_rate"]) == (40, "0.2353")

    async def test_needs_reports_read(self, api: Api) -> None:
        key = await api.key_with("events:read")
        response = await api.get(
            "/v1/reports/overview", key=key, **{"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"}
        )
        assert response.status_code == 403


class TestValuationSettings:
    async def test_the_rules_keep_the_valuation(self, api: Api) -> None:
        version = await api.use_rules(rules(None, valuation=VALUATION))
        response = await api.get(f"/v1/rules/{version}")
        assert response.status_code == 200, response.text
        assert response.json()["document"]["valuation"] == VALUATION

    @pytest.mark.parametrize(
        "valuation",
        [
            {"cost_per_point": "-1", "currency": "EUR"},
            {"cost_per_point": "0.0000001", "currency": "EUR"},
            {"cost_per_point": "0.005", "currency": "euro"},
            {"cost_per_point": "0.005", "currency": "EUR", "redemption_cost_cap": "1.5"},
            {"currency": "EUR"},
        ],
    )
    async def test_a_bad_valuation_is_422(self, api: Api, valuation: dict[str, str]) -> None:
        response = await api.post("/v1/rules", rules(None, valuation=valuation), idempotency_key=None)
        assert response.status_code == 422, response.text

    async def test_a_report_uses_the_version_in_force_at_its_instant(self, api: Api) -> None:
        await api.use_rules(rules(None, valuation=VALUATION))
        member = await api.enrol()
        assert (await api.award(member, 1000)).status_code == 201
        then = datetime.now(UTC).isoformat()
        await api.use_rules(rules(None, valuation={**VALUATION, "cost_per_point": "0.01"}))
        past = await report(api, "liability", as_of=then)
        now = await report(api, "liability")
        assert (past["liability"]["amount"], now["liability"]["amount"]) == ("5.000", "10.00")


@pytest.mark.parametrize("name", ["breakage", "redemption-cost", "activity", "overview"])
async def test_a_past_period_reads_the_same_after_more_activity(ledger: Ledger, name: str) -> None:
    before = await report(ledger.api, name, **period(ledger))
    assert (await ledger.api.order(ledger.a, "12.00")).status_code == 201
    assert (await ledger.api.redeem(ledger.b, 3)).status_code == 201
    assert (await ledger.api.transfer(ledger.a, ledger.b, 2)).status_code == 201
    again = await report(ledger.api, name, **period(ledger))
    assert without_sequence(again) == without_sequence(before)
    assert again["chain_sequence"] >= before["chain_sequence"]


class TestForfeits:
    async def test_a_closed_members_points_are_forfeited_not_outstanding(self, ledger: Ledger) -> None:
        """Closing B (30 available) forfeits its points: liability falls by 30, the
        period's activity and breakage count them as forfeited, and the figures for
        the instant before the closing stay as they were."""
        api = ledger.api
        before = await report(api, "liability", as_of=ledger.end.isoformat())
        closed = await api.post(f"/v1/members/{ledger.b}/close", {"reason": "customer left"})
        assert closed.status_code in (200, 201), closed.text
        end = datetime.now(UTC)
        after = await report(api, "liability", as_of=end.isoformat())
        assert (before["outstanding"], after["outstanding"]) == (60, 30)
        assert after["members_holding"] == 1
        assert after["liability"] == {"amount": "0.150", "currency": "EUR"}
        span = {"from": ledger.start.isoformat(), "to": end.isoformat()}
        activity = await report(api, "activity", granularity="month", **span)
        assert sum(bucket["forfeited"] for bucket in activity["buckets"]) == 30
        assert sum(bucket["net_change"] for bucket in activity["buckets"]) == 30
        breakage = await report(api, "breakage", **span)
        assert breakage["total"]["forfeited"] == 30
        again = await report(api, "liability", as_of=ledger.end.isoformat())
        assert without_sequence(again) == without_sequence(before)


class TestTotalsPastSixtyFourBits:
    async def test_sums_over_members_and_entries_may_pass_2_to_the_63(self, api: Api) -> None:
        """A member's balance stays within 64 bits, but what a period issues, or
        what members hold together, may not: the reports answer it exactly.
        (Schemathesis found the overview answering 500.)"""
        most = 2**63 - 1
        await api.use_rules(rules(valuation=VALUATION))
        start = datetime.now(UTC) - timedelta(seconds=1)
        a, b = await api.enrol(), await api.enrol()
        for member in (a, b):  # two members, each holding the most a balance can
            assert (await api.award(member, most)).status_code == 201
        assert (await api.redeem(a, most)).status_code == 201
        assert (await api.award(a, most)).status_code == 201  # issued this period: 3 x most
        end = datetime.now(UTC)
        held = await report(api, "liability")
        assert (held["available"], held["outstanding"], held["members_holding"]) == (2 * most, 2 * most, 2)
        overview = await report(api, "overview", **{"from": start.isoformat(), "to": end.isoformat()})
        assert (overview["points_issued"], overview["points_redeemed"]) == (3 * most, most)
        activity = await report(
            api, "activity", granularity="month", **{"from": start.isoformat(), "to": end.isoformat()}
        )
        assert sum(bucket["awards_points"] for bucket in activity["buckets"]) == 3 * most
