"""docs/partners.md's worked month with a partner (section "A worked month"), played
as written: every figure the document shows is asserted here."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from tests.partners.helpers import onboard, partner_key
from tests.support import Api, MovableClock, chain_program, unique


def at(clock: MovableClock, instant: str) -> None:
    """Make the service's "now" the document's instant (and on from there)."""
    clock.offset = datetime.fromisoformat(instant) - datetime.now(UTC)


async def order(api: Api, key: str, member: str, order_id: str, total: str, paid_at: str) -> dict[str, Any]:
    body = {
        "order_id": order_id,
        "member": member,
        "total": {"amount": total, "currency": "EUR"},
        "paid_at": paid_at,
    }
    response = await api.post("/v1/partner/orders", body, key=key)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_the_readme_month(api: Api, db: asyncpg.Connection, clock: MovableClock) -> None:
    at(clock, "2026-11-01T09:00:00+00:00")
    code = await onboard(
        api,
        code=unique("coffee").lower(),
        roles=("earn", "redeem"),
        billing="postpaid",
        credit_limit_points=1000000,
    )
    key = await partner_key(api, code, "partner:earn", "partner:redeem")
    for rate in (
        {"kind": "earn", "price_per_point": "0.0100"},
        {"kind": "redeem", "price_per_point": "0.0080"},
    ):
        assert (await api.post(f"/v1/partners/{code}/rates", rate, idempotency_key=None)).status_code == 201
    await api.use_rules(
        {
            "earn": {"base": {"points": 1, "per": "1.00", "rounding": "floor"}},
            "partner_earn": {code: {"base": {"points": 2, "per": "1.00", "rounding": "floor"}}},
        }
    )
    ana = await api.enrol()

    at(clock, "2026-11-03T08:15:00+00:00")
    assert (await order(api, key, ana, "cc-1001", "12.40", "2026-11-03T08:14:00Z"))["points"] == 24
    at(clock, "2026-11-10T17:40:00+00:00")
    assert (await order(api, key, ana, "cc-1002", "30.00", "2026-11-10T17:39:00Z"))["points"] == 60
    at(clock, "2026-11-12T11:00:00+00:00")
    refund = await api.post(
        "/v1/partner/orders/cc-1002/refunds",
        {"refund_id": "r-1", "amount": {"amount": "15.00", "currency": "EUR"}},
        key=key,
    )
    assert refund.status_code == 201, refund.text
    assert refund.json()["points_reversed"] == 30

    at(clock, "2026-11-15T00:00:00+00:00")
    assert (
        await api.post(
            f"/v1/partners/{code}/rates", {"kind": "earn", "price_per_point": "0.0125"}, idempotency_key=None
        )
    ).status_code == 201
    at(clock, "2026-11-20T07:30:00+00:00")
    assert (await order(api, key, ana, "cc-1003", "7.99", "2026-11-20T07:29:00Z"))["points"] == 15

    at(clock, "2026-11-22T12:00:00+00:00")
    spent = await api.post(
        "/v1/partner/redemptions", {"member": ana, "points": 40, "reference": "rcpt-7"}, key=key
    )
    assert spent.status_code == 201, spent.text
    at(clock, "2026-11-26T12:00:00+00:00")
    second = await api.post(
        "/v1/partner/redemptions", {"member": ana, "points": 20, "reference": "rcpt-9"}, key=key
    )
    assert second.status_code == 201, second.text
    reversed_ = await api.post(
        f"/v1/partner/redemptions/{second.json()['id']}/reversal", {"reason": "void"}, key=key
    )
    assert reversed_.status_code == 201, reversed_.text
    assert await api.available(ana) == 24 + 60 - 30 + 15 - 40

    month = {"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}
    settled = await api.get("/v1/partner/settlement", key=key, **month)
    assert settled.status_code == 200, settled.text
    body = settled.json()
    sections = {name: (s["points"], s["money"]["amount"]) for name, s in body["sections"].items()}
    assert sections == {
        "earn": (99, "1.03"),
        "earn_refunds": (-30, "-0.30"),
        "funding": (0, "0.00"),
        "redemptions": (60, "0.48"),
        "redemption_reversals": (-20, "-0.16"),
        "donations": (0, "0.00"),
        "conversions_out": (0, "0.00"),
        "conversions_in": (0, "0.00"),
    }
    totals = body["totals"]
    assert (totals["partner_owes"]["amount"], totals["program_owes"]["amount"], totals["net"]["amount"]) == (
        "0.73",
        "0.32",
        "0.41",
    )
    assert totals["direction"] == "partner_owes"
    assert body["lines_count"] == 7

    # December 1st: the month closes into a statement with the same figures
    await chain_program(db, api.program)
    at(clock, "2026-12-01T00:05:00+00:00")
    closed = await api.post(
        f"/v1/partners/{code}/statements", {"period_end": "2026-12-01T00:00:00Z"}, idempotency_key=None
    )
    assert closed.status_code == 201, closed.text
    statement = closed.json()
    assert statement["totals"] == totals
    assert statement["lines_count"] == 7
    assert statement["period_start"] == "2026-11-01T09:00:00Z" or statement["period_start"].startswith(
        "2026-11-01T09:00"
    )
