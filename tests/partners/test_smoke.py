"""A partner's month in one test: onboard, price, earn, redeem, convert, settle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.partners.helpers import add_rate, fund, onboard, partner_earning, partner_key, partner_order
from tests.support import Api


async def test_a_partner_month(api: Api) -> None:
    code = await onboard(api, billing="postpaid", credit_limit_points=100000)
    key = await partner_key(api, code)
    await add_rate(api, code, "earn", price_per_point="0.01")
    await add_rate(api, code, "redeem", price_per_point="0.008")
    await add_rate(api, code, "convert_out", partner_units_per_point="0.5", price_per_point="0.007")
    await add_rate(api, code, "convert_in", partner_units_per_point="2")
    await partner_earning(api, code, points=2)
    member = await api.enrol()
    start = datetime.now(UTC) - timedelta(seconds=1)

    earned = await partner_order(api, key, member, "50.00")
    assert earned.status_code == 201, earned.text
    assert earned.json()["points"] == 100

    spent = await api.post(
        "/v1/partner/redemptions", {"member": member, "points": 30, "reference": "r1"}, key=key
    )
    assert spent.status_code == 201, spent.text
    out = await api.post(
        f"/v1/members/{member}/conversions", {"partner": code, "points": 40, "partner_member_id": "X1"}
    )
    assert out.status_code == 201, out.text
    assert out.json()["partner_units"] == 20
    confirmed = await api.post(f"/v1/partner/conversions/{out.json()['id']}/confirm", {}, key=key)
    assert confirmed.status_code == 201, confirmed.text
    came_in = await api.post(
        "/v1/partner/conversions", {"member": member, "partner_units": 21, "reference": "x"}, key=key
    )
    assert came_in.status_code == 201, came_in.text
    assert came_in.json()["points"] == 10
    assert await api.available(member) == 100 - 30 - 40 + 10

    end = datetime.now(UTC) + timedelta(seconds=1)
    settled = await api.get(
        f"/v1/partners/{code}/settlement", **{"from": start.isoformat(), "to": end.isoformat()}
    )
    assert settled.status_code == 200, settled.text
    body = settled.json()
    assert body["sections"]["earn"] == {"points": 100, "money": {"amount": "1.00", "currency": "EUR"}}
    assert body["sections"]["redemptions"]["money"]["amount"] == "0.24"
    assert body["sections"]["conversions_out"]["money"]["amount"] == "0.28"
    assert body["totals"]["partner_owes"]["amount"] == "1.00"
    assert body["totals"]["program_owes"]["amount"] == "0.52"
    assert body["totals"]["direction"] == "partner_owes"
    own = await api.get(
        "/v1/partner/settlement", key=key, **{"from": start.isoformat(), "to": end.isoformat()}
    )
    assert own.json()["totals"] == body["totals"]
    partner = (await api.get(f"/v1/partners/{code}")).json()
    assert partner["funding_points"] == -110
    assert partner["payable_points"] == 70


async def test_prepaid_partner_needs_funding(api: Api) -> None:
    code = await onboard(api, billing="prepaid")
    key = await partner_key(api, code)
    await partner_earning(api, code)
    member = await api.enrol()
    refused = await partner_order(api, key, member, "10.00")
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "partner_funds_insufficient"
    funded = await fund(api, code, 15)
    assert funded.status_code == 201, funded.text
    assert (await partner_order(api, key, member, "10.00")).status_code == 201
    assert (await partner_order(api, key, member, "10.00")).json()["code"] == "partner_funds_insufficient"
