"""Spending points at a partner (POST /v1/partner/redemptions, their reversal and
reads), the partner's view of a member, and donations to charity partners."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.partners.helpers import (
    add_rate,
    earned,
    eur,
    get_partner,
    instant,
    member_with,
    onboard,
    partner_earning,
    partner_key,
    partner_with_key,
    problem,
    redeem_at,
)
from tests.support import Api

REDEMPTION_FIELDS = {
    "id",
    "partner",
    "member",
    "points",
    "reference",
    "donation",
    "status",
    "created_at",
    "reversed_at",
    "reversal_entry_id",
}


async def redeemer(api: Api, **fields: Any) -> tuple[str, str]:
    code, key = await partner_with_key(api, **fields)
    await add_rate(api, code, "redeem", price_per_point="0.008")
    return code, key


class TestPartnerRedemption:
    async def test_moves_available_points_to_the_partners_payable(self, api: Api) -> None:
        code, key = await redeemer(api)
        member = await member_with(api, 100)
        before = datetime.now(UTC)
        response = await redeem_at(
            api, key, member, 30, reference="till-4-rcpt-991", order_total=eur("12.40")
        )
        assert response.status_code == 201, response.text
        redemption = response.json()
        assert set(redemption) == REDEMPTION_FIELDS
        assert (redemption["partner"], redemption["member"], redemption["points"]) == (code, member, 30)
        assert (redemption["reference"], redemption["donation"], redemption["status"]) == (
            "till-4-rcpt-991",
            False,
            "completed",
        )
        assert (redemption["reversed_at"], redemption["reversal_entry_id"]) == (None, None)
        assert before <= instant(redemption["created_at"]) <= datetime.now(UTC)
        uuid.UUID(redemption["id"])
        assert await api.balances(member) == {"available": 70, "pending": 0, "held": 0, "debt": 0}
        partner = await get_partner(api, code)
        assert (partner["payable_points"], partner["funding_points"]) == (30, 0)
        read = await api.get(f"/v1/partner/redemptions/{redemption['id']}", key=key)
        assert read.status_code == 200, read.text
        assert read.json() == redemption

    async def test_insufficient_points_is_422_and_writes_nothing(self, api: Api) -> None:
        code, key = await redeemer(api)
        member = await member_with(api, 20)
        assert problem(await redeem_at(api, key, member, 21)) == (422, "insufficient_points")
        assert await api.available(member) == 20
        assert (await get_partner(api, code))["payable_points"] == 0

    async def test_without_a_redeem_rate_in_force_is_422(self, api: Api) -> None:
        code, key = await partner_with_key(api)
        member = await member_with(api, 50)
        assert problem(await redeem_at(api, key, member, 10)) == (422, "rate_not_effective")
        assert await api.available(member) == 50
        assert (await get_partner(api, code))["payable_points"] == 0

    async def test_the_rules_redeem_limits_apply(self, api: Api) -> None:
        code, key = await redeemer(api)
        await api.use_rules(
            {
                "earn": {"base": {"points": 1, "per": "1"}},
                "redeem": {
                    "min_points": 20,
                    "increment": 10,
                    "point_value": "0.01",
                    "max_share_of_order": "0.5",
                },
            }
        )
        member = await member_with(api, 500)
        assert problem(await redeem_at(api, key, member, 10)) == (422, "points_below_minimum")
        assert problem(await redeem_at(api, key, member, 25)) == (422, "points_not_in_increments")
        over = await redeem_at(api, key, member, 200, order_total=eur("2.00"))
        assert problem(over) == (422, "points_exceed_order_share")
        assert await api.available(member) == 500
        assert (await redeem_at(api, key, member, 100, order_total=eur("2.00"))).status_code == 201
        assert (await get_partner(api, code))["payable_points"] == 100

    async def test_an_unknown_member_is_404(self, api: Api) -> None:
        code, key = await redeemer(api)
        assert problem(await redeem_at(api, key, "nobody-here", 10)) == (404, "member_not_found")
        assert (await get_partner(api, code))["payable_points"] == 0

    async def test_a_member_of_another_program_is_not_found(self, api: Api, other: Api) -> None:
        _, key = await redeemer(api)
        theirs = await member_with(other, 50)
        assert problem(await redeem_at(api, key, theirs, 10)) == (404, "member_not_found")
        assert await other.available(theirs) == 50

    async def test_a_retry_with_the_same_key_spends_once(self, api: Api) -> None:
        _, key = await redeemer(api)
        member = await member_with(api, 50)
        body = {"member": member, "points": 10, "reference": "r-1"}
        first = await api.post("/v1/partner/redemptions", body, key=key, idempotency_key="red-1")
        again = await api.post("/v1/partner/redemptions", body, key=key, idempotency_key="red-1")
        assert first.status_code == again.status_code == 201
        assert first.json() == again.json()
        assert await api.available(member) == 40

    async def test_an_unknown_redemption_is_404(self, api: Api) -> None:
        _, key = await redeemer(api)
        missing = uuid.uuid4()
        assert problem(await api.get(f"/v1/partner/redemptions/{missing}", key=key)) == (
            404,
            "redemption_not_found",
        )
        reversal = await api.post(f"/v1/partner/redemptions/{missing}/reversal", {}, key=key)
        assert problem(reversal) == (404, "redemption_not_found")


class TestRedemptionReversal:
    async def test_gives_the_points_back_once(self, api: Api) -> None:
        code, key = await redeemer(api)
        member = await member_with(api, 100)
        redemption = (await redeem_at(api, key, member, 30)).json()
        path = f"/v1/partner/redemptions/{redemption['id']}/reversal"
        response = await api.post(path, {"reason": "item returned"}, key=key)
        assert response.status_code == 201, response.text
        reversed_ = response.json()
        assert reversed_["id"] == redemption["id"]
        assert reversed_["status"] == "reversed"
        assert reversed_["reversed_at"] is not None
        assert reversed_["reversal_entry_id"] not in (None, redemption["id"])
        assert await api.available(member) == 100
        assert (await get_partner(api, code))["payable_points"] == 0
        read = (await api.get(f"/v1/partner/redemptions/{redemption['id']}", key=key)).json()
        assert read == reversed_

        again = await api.post(path, {}, key=key)
        assert problem(again) == (409, "already_reversed")
        assert await api.available(member) == 100
        assert (await get_partner(api, code))["payable_points"] == 0

    async def test_needs_partner_redeem(self, api: Api) -> None:
        code, key = await redeemer(api)
        member = await member_with(api, 100)
        redemption = (await redeem_at(api, key, member, 30)).json()
        earner = await partner_key(api, code, "partner:earn")
        response = await api.post(f"/v1/partner/redemptions/{redemption['id']}/reversal", {}, key=earner)
        assert problem(response) == (403, "forbidden")
        assert await api.available(member) == 70


class TestPartnerMemberView:
    async def test_available_points_and_tier(self, api: Api) -> None:
        _, key = await redeemer(api)
        member = await member_with(api, 42)
        response = await api.get(f"/v1/partner/members/{member}", key=key)
        assert response.status_code == 200, response.text
        assert response.json() == {"member": member, "available_points": 42, "tier": None}

    async def test_an_unknown_member_is_404(self, api: Api, other: Api) -> None:
        _, key = await redeemer(api)
        theirs = await member_with(other, 5)
        for member in ("nobody-here", theirs):
            response = await api.get(f"/v1/partner/members/{member}", key=key)
            assert problem(response) == (404, "member_not_found"), member


async def donate(api: Api, member: str, code: str, points: int, key: str | None = None) -> httpx.Response:
    return await api.post(f"/v1/members/{member}/donations", {"partner": code, "points": points}, key=key)


class TestDonation:
    async def test_gives_points_to_a_charity_partner(self, api: Api) -> None:
        code = await onboard(api, roles=("donation",))
        await add_rate(api, code, "redeem", price_per_point="0.01")
        member = await member_with(api, 100)
        burner = await api.key_with("points:burn")
        response = await donate(api, member, code, 25, key=burner)
        assert response.status_code == 201, response.text
        donation = response.json()
        assert set(donation) == REDEMPTION_FIELDS
        assert (donation["partner"], donation["member"], donation["points"]) == (code, member, 25)
        assert (donation["donation"], donation["status"]) == (True, "completed")
        assert await api.available(member) == 75
        assert (await get_partner(api, code))["payable_points"] == 25

    async def test_a_partner_without_the_donation_role_is_403(self, api: Api) -> None:
        code = await onboard(api, roles=("redeem", "earn"))
        await add_rate(api, code, "redeem", price_per_point="0.01")
        member = await member_with(api, 100)
        assert problem(await donate(api, member, code, 10)) == (403, "partner_role_not_allowed")
        assert await api.available(member) == 100

    async def test_needs_a_redeem_rate(self, api: Api) -> None:
        code = await onboard(api, roles=("donation",))
        member = await member_with(api, 100)
        assert problem(await donate(api, member, code, 10)) == (422, "rate_not_effective")
        assert await api.available(member) == 100
        assert (await get_partner(api, code))["payable_points"] == 0

    async def test_insufficient_points_and_redeem_limits(self, api: Api) -> None:
        code = await onboard(api, roles=("donation",))
        await add_rate(api, code, "redeem", price_per_point="0.01")
        await api.use_rules({"earn": {"base": {"points": 1, "per": "1"}}, "redeem": {"min_points": 10}})
        member = await member_with(api, 30)
        assert problem(await donate(api, member, code, 31)) == (422, "insufficient_points")
        assert problem(await donate(api, member, code, 5)) == (422, "points_below_minimum")
        assert await api.available(member) == 30

    async def test_unknown_partner_404_and_missing_scope_403(self, api: Api) -> None:
        code = await onboard(api, roles=("donation",))
        await add_rate(api, code, "redeem", price_per_point="0.01")
        member = await member_with(api, 30)
        assert problem(await donate(api, member, "nobody-here", 5)) == (404, "partner_not_found")
        reader = await api.key_with("members:read", "points:earn")
        assert problem(await donate(api, member, code, 5, key=reader)) == (403, "forbidden")
        _, partner_key_ = await partner_with_key(api)
        assert problem(await donate(api, member, code, 5, key=partner_key_)) == (403, "forbidden")
        assert await api.available(member) == 30


class TestPartnerEntriesAreUndoneOnlyByTheirOwnOperations:
    async def test_generic_reversal_refuses_partner_entries(self, api: Api) -> None:
        code, key = await redeemer(api)
        await add_rate(api, code, "earn", price_per_point="0.01")
        await partner_earning(api, code)
        member = await member_with(api, 100)
        order = await earned(api, key, member, "10.00")
        redemption = (await redeem_at(api, key, member, 30)).json()
        for entry_id in (order["entry_id"], redemption["id"]):
            response = await api.reverse(entry_id)
            assert problem(response) == (422, "entry_not_reversible"), response.text
        assert await api.available(member) == 80
        partner = await get_partner(api, code)
        assert (partner["funding_points"], partner["payable_points"]) == (-10, 30)

    async def test_a_charity_does_not_reverse_a_donation(self, api: Api) -> None:
        code, key = await partner_with_key(api, "partner:redeem", roles=("redeem", "donation"))
        await add_rate(api, code, "redeem", price_per_point="0.01")
        member = await member_with(api, 100)
        donation = (await donate(api, member, code, 25)).json()
        read = await api.get(f"/v1/partner/redemptions/{donation['id']}", key=key)
        assert read.status_code == 200, read.text
        assert read.json()["donation"] is True
        response = await api.post(f"/v1/partner/redemptions/{donation['id']}/reversal", {}, key=key)
        assert problem(response) == (422, "entry_not_reversible")
        assert await api.available(member) == 75
        assert (await get_partner(api, code))["payable_points"] == 25
