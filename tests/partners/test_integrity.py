"""What keeps a partner's figures whole beyond the happy path: its references are
used once, amounts past what the ledger counts are refused (never a 500), a
settlement pinned to a ledger head is the same whenever asked, and its lines can
be neither repriced nor claimed twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from app.ledger.verify import verify
from app.partners.settlement import VERIFY_CHECKS
from tests.partners.helpers import (
    add_rate,
    member_with,
    partner_earning,
    partner_order,
    partner_with_key,
    period,
    problem,
    redeem_at,
    settlement_of,
)
from tests.support import Api, MovableClock, chain_program, unique


class TestReferencesOnce:
    async def test_a_receipt_is_spent_once_whatever_the_idempotency_key(self, api: Api) -> None:
        code, key = await partner_with_key(api, roles=("redeem",))
        await add_rate(api, code, "redeem", price_per_point="0.01")
        member = await member_with(api, 100)
        first = await redeem_at(api, key, member, 30, reference="rcpt-1")
        assert first.status_code == 201, first.text
        again = await redeem_at(api, key, member, 30, reference="rcpt-1")  # a new Idempotency-Key
        assert problem(again) == (409, "reference_exists"), again.text
        assert await api.available(member) == 70
        other_code, other_key = await partner_with_key(api, roles=("redeem",))
        await add_rate(api, other_code, "redeem", price_per_point="0.01")
        assert (await redeem_at(api, other_key, member, 30, reference="rcpt-1")).status_code == 201

    async def test_a_transfer_of_units_is_credited_once(self, api: Api) -> None:
        code, key = await partner_with_key(api, roles=("convert_in",))
        await add_rate(api, code, "convert_in", partner_units_per_point="2")
        member = await api.enrol()
        body = {"member": member, "partner_units": 100, "reference": "xfer-9"}
        assert (await api.post("/v1/partner/conversions", body, key=key)).status_code == 201
        again = await api.post("/v1/partner/conversions", body, key=key)
        assert problem(again) == (409, "reference_exists"), again.text
        assert await api.available(member) == 50


class TestOutOfRange:
    async def test_a_rate_past_a_million_is_422(self, api: Api) -> None:
        code, _ = await partner_with_key(api, roles=("redeem",))
        response = await api.post(
            f"/v1/partners/{code}/rates",
            {"kind": "redeem", "price_per_point": "1000000.01"},
            idempotency_key=None,
        )
        assert problem(response) == (422, "validation_error"), response.text

    async def test_units_worth_more_points_than_a_balance_holds_are_422(self, api: Api) -> None:
        code, key = await partner_with_key(api, roles=("convert_in",))
        await add_rate(api, code, "convert_in", partner_units_per_point="0.0000000001")
        member = await api.enrol()
        response = await api.post(
            "/v1/partner/conversions",
            {"member": member, "partner_units": 10**18, "reference": unique("x")},
            key=key,
        )
        assert problem(response) == (422, "points_out_of_range"), response.text
        assert await api.available(member) == 0

    async def test_points_worth_more_units_than_the_service_counts_are_422(self, api: Api) -> None:
        code, _ = await partner_with_key(api, roles=("convert_out",))
        await add_rate(api, code, "convert_out", partner_units_per_point="1000000")
        member = await api.enrol()
        assert (await api.award(member, 10**13)).status_code == 201
        response = await api.post(
            f"/v1/members/{member}/conversions", {"partner": code, "points": 10**13, "partner_member_id": "P"}
        )
        assert problem(response) == (422, "points_out_of_range"), response.text
        assert await api.available(member) == 10**13


class TestPinnedSettlement:
    async def test_the_same_head_gives_the_same_figures(self, api: Api, db: asyncpg.Connection) -> None:
        code, key = await partner_with_key(api, roles=("redeem",))
        await add_rate(api, code, "redeem", price_per_point="0.01")
        member = await member_with(api, 100)
        assert (await redeem_at(api, key, member, 10)).status_code == 201
        await chain_program(db, api.program)
        window = period()
        first = await settlement_of(api, code, **window)
        assert first["sections"]["redemptions"]["points"] == 10
        assert (await redeem_at(api, key, member, 20)).status_code == 201
        await chain_program(db, api.program)
        pinned = await settlement_of(api, code, **window, chain_sequence=str(first["chain_sequence"]))
        assert pinned == first
        now = await settlement_of(api, code, **window)
        assert now["sections"]["redemptions"]["points"] == 30
        assert now["chain_sequence"] > first["chain_sequence"]
        ahead = await api.get(
            f"/v1/partners/{code}/settlement", **window, chain_sequence=str(now["chain_sequence"] + 1000)
        )
        assert problem(ahead) == (422, "validation_error"), ahead.text


class TestLinesAreKept:
    async def test_a_line_cannot_be_repriced_or_unclaimed(self, api: Api, db: asyncpg.Connection) -> None:
        code, key = await partner_with_key(api, roles=("redeem",))
        await add_rate(api, code, "redeem", price_per_point="0.01")
        member = await member_with(api, 100)
        entry_id = (await redeem_at(api, key, member, 10)).json()["id"]
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await db.execute("UPDATE partner_line SET price_per_point = 0.02 WHERE entry_id = $1", entry_id)
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await db.execute("DELETE FROM partner_line WHERE entry_id = $1", entry_id)
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await db.execute(
                "UPDATE partner_rate SET price_per_point = 0.02 WHERE partner_id = "
                "(SELECT partner_id FROM partner_line WHERE entry_id = $1)",
                entry_id,
            )

    async def test_verify_finds_a_repriced_line(self, api: Api, db: asyncpg.Connection) -> None:
        code, key = await partner_with_key(api, roles=("redeem",))
        await add_rate(api, code, "redeem", price_per_point="0.01")
        member = await member_with(api, 100)
        entry_id = (await redeem_at(api, key, member, 10)).json()["id"]

        async def edit(price: str) -> None:
            await db.execute("ALTER TABLE partner_line DISABLE TRIGGER partner_line_claim_only")
            try:
                await db.execute(
                    "UPDATE partner_line SET price_per_point = $2::numeric WHERE entry_id = $1",
                    entry_id,
                    price,
                )
            finally:
                await db.execute("ALTER TABLE partner_line ENABLE TRIGGER partner_line_claim_only")

        await edit("0.02")
        try:
            [unsound] = [
                outcome
                for outcome in await verify(db, VERIFY_CHECKS)
                if outcome.name.startswith("each partner entry has its settlement line")
            ]
            assert any(entry_id in example and "priced otherwise" in example for example in unsound.examples)
        finally:
            await edit("0.01")
        outcomes = await verify(db, VERIFY_CHECKS)
        assert not [o for o in outcomes if o.name.startswith("each partner entry") and o.mismatches]


class TestOptionalBodies:
    async def test_confirm_and_reversal_take_no_body(self, api: Api) -> None:
        code, key = await partner_with_key(api, roles=("redeem", "convert_out"))
        await add_rate(api, code, "redeem", price_per_point="0.01")
        await add_rate(api, code, "convert_out", partner_units_per_point="1")
        member = await member_with(api, 100)
        redemption = (await redeem_at(api, key, member, 10)).json()
        headers = api.headers(key, unique("idem"))
        reversed_ = await api.client.post(
            f"/v1/partner/redemptions/{redemption['id']}/reversal", headers=headers
        )
        assert reversed_.status_code == 201, reversed_.text
        conversion = (
            await api.post(
                f"/v1/members/{member}/conversions", {"partner": code, "points": 5, "partner_member_id": "P"}
            )
        ).json()
        confirmed = await api.client.post(
            f"/v1/partner/conversions/{conversion['id']}/confirm", headers=api.headers(key, unique("idem"))
        )
        assert confirmed.status_code == 201, confirmed.text
        assert confirmed.json()["status"] == "confirmed"


class TestFirstOrderPerEarner:
    async def test_a_partner_order_leaves_the_programs_first_order_bonus(self, api: Api) -> None:
        code, key = await partner_with_key(api, roles=("earn",))
        await add_rate(api, code, "earn", price_per_point="0.01")
        first_order = {"id": "first-order", "points": 100, "when": {"first_order": True}}
        await api.use_rules(
            {
                "earn": {"base": {"points": 1, "per": "1", "rounding": "floor"}, "bonuses": [first_order]},
                "partner_earn": {
                    code: {"base": {"points": 1, "per": "1", "rounding": "floor"}, "bonuses": [first_order]}
                },
            }
        )
        member = await api.enrol()
        at_partner = await partner_order(api, key, member, "10.00")
        assert at_partner.json()["points"] == 110, at_partner.text  # its first with this partner
        again = await partner_order(api, key, member, "10.00")
        assert again.json()["points"] == 10
        own = await api.order(member, "10.00")
        assert own.json()["points"] == 110, own.text  # and still its first with the program


class TestTwoDerivationsAgree:
    async def test_the_settlement_sums_as_the_statement_derives_line_by_line(
        self, api: Api, db: asyncpg.Connection, clock: MovableClock
    ) -> None:
        # the settlement endpoint sums in SQL; a statement (and verify) line by line
        # in Python: halves of a cent, positive and negative, round the same way
        code, key = await partner_with_key(api, roles=("earn", "redeem"))
        await add_rate(api, code, "earn", price_per_point="0.005")
        await add_rate(api, code, "redeem", price_per_point="0.0125")
        await partner_earning(api, code)
        member = await api.enrol()
        for total in ("1.00", "3.00", "7.00"):
            order = await partner_order(api, key, member, total, order_id=f"o-{total}")
            assert order.status_code == 201, order.text
        refund = await api.post(
            "/v1/partner/orders/o-3.00/refunds",
            {"refund_id": "r1", "amount": {"amount": "1.00", "currency": "EUR"}},
            key=key,
        )
        assert refund.status_code == 201, refund.text
        for points in (1, 3, 5):
            assert (await redeem_at(api, key, member, points)).status_code == 201
        await chain_program(db, api.program)
        clock.offset = timedelta(minutes=1)
        end = datetime.now(UTC)
        closed = await api.post(
            f"/v1/partners/{code}/statements", {"period_end": end.isoformat()}, idempotency_key=None
        )
        assert closed.status_code == 201, closed.text
        statement = closed.json()
        window = {"from": statement["period_start"], "to": statement["period_end"]}
        summed = await settlement_of(api, code, **window, chain_sequence=str(statement["chain_sequence"]))
        assert summed["sections"] == statement["sections"]
        assert summed["totals"] == statement["totals"]
        assert summed["lines_count"] == statement["lines_count"] == 7
        # 1, 3 and 7 points at 0.005: 0.005, 0.015, 0.035, each rounded half up
        assert statement["sections"]["earn"]["money"]["amount"] == "0.07"
        # 1 point back: -0.005, half away from zero
        assert statement["sections"]["earn_refunds"]["money"]["amount"] == "-0.01"
