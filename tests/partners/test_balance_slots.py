"""A partner's balance is kept in slots (ledger_post() checks one slot, or all of them
when one cannot cover a debit): the partner's floor holds exactly, whatever slot an
entry lands on, and after its credit limit is lowered under what it already gave out."""

from __future__ import annotations

import asyncio

import asyncpg

from app.partners.repository import BALANCE_SLOTS
from tests.partners.helpers import (
    add_rate,
    get_partner,
    partner_earning,
    partner_order,
    partner_with_key,
    problem,
)
from tests.support import Api, unique


async def slots(db: asyncpg.Connection, code: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT b.slot, b.funding, b.floor FROM partner_balance b JOIN partner p ON p.id = b.partner_id"
        " WHERE p.code = $1 ORDER BY b.slot",
        code,
    )


class TestSlots:
    async def test_a_lowered_credit_limit_refuses_debits_until_the_partner_is_back_under_it(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        code, key = await partner_with_key(api, roles=("earn",), credit_limit_points=100)
        await add_rate(api, code, "earn", price_per_point="0.01")
        await partner_earning(api, code)
        member = await api.enrol()
        orders = [unique("po") for _ in range(9)]
        for order_id in orders:  # 90 points on credit, over whichever slots their ids name
            assert (await partner_order(api, key, member, "10.00", order_id=order_id)).status_code == 201
        lowered = await api.client.patch(
            f"/v1/partners/{code}", json={"credit_limit_points": 50}, headers=api.headers()
        )
        assert lowered.status_code == 200, lowered.text
        assert all(row["floor"] == 2**63 - 1 for row in await slots(db, code))  # every debit checks them all
        refused = await partner_order(api, key, member, "1.00")
        assert problem(refused) == (422, "partner_credit_exceeded"), refused.text
        for order_id in orders[:3]:  # 30 back: funding -60, still under -50
            refund = await api.post(
                f"/v1/partner/orders/{order_id}/refunds",
                {"refund_id": unique("rf"), "amount": {"amount": "10.00", "currency": "EUR"}},
                key=key,
            )
            assert refund.status_code == 201, refund.text
        assert problem(await partner_order(api, key, member, "1.00")) == (422, "partner_credit_exceeded")
        refund = await api.post(
            f"/v1/partner/orders/{orders[3]}/refunds",
            {"refund_id": unique("rf"), "amount": {"amount": "10.00", "currency": "EUR"}},
            key=key,
        )
        assert refund.status_code == 201, refund.text  # funding -50: at the limit, not under
        assert problem(await partner_order(api, key, member, "1.00")) == (422, "partner_credit_exceeded")
        assert (await get_partner(api, code))["funding_points"] == -50
        limit = 50 + BALANCE_SLOTS  # a headroom of one point per slot
        raised = await api.client.patch(
            f"/v1/partners/{code}", json={"credit_limit_points": limit}, headers=api.headers()
        )
        assert raised.status_code == 200, raised.text
        rows = await slots(db, code)
        assert sum(row["funding"] for row in rows) == -50
        assert sum(row["floor"] for row in rows) == -limit
        assert {row["funding"] - row["floor"] for row in rows} == {1}
        results = await asyncio.gather(
            *(partner_order(api, key, member, "1.00") for _ in range(BALANCE_SLOTS + 6))
        )
        assert sorted(response.status_code for response in results) == [201] * BALANCE_SLOTS + [422] * 6
        assert (await get_partner(api, code))["funding_points"] == -limit

    async def test_a_postpaid_partner_without_a_limit_checks_nothing(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        code, key = await partner_with_key(api, roles=("earn",))
        await add_rate(api, code, "earn", price_per_point="0.01")
        await partner_earning(api, code)
        member = await api.enrol()
        assert (await partner_order(api, key, member, "1000.00")).status_code == 201
        rows = await slots(db, code)
        assert len(rows) == BALANCE_SLOTS
        assert all(row["floor"] is None for row in rows)
        assert sum(row["funding"] for row in rows) == -1000
