"""Partner keys: minting them, what they may call, scopes, roles, other partners'
things, and suspension."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from tests.partners.helpers import (
    add_rate,
    convert_in,
    convert_out,
    earned,
    eur,
    get_partner,
    member_with,
    onboard,
    partner_earning,
    partner_order,
    partner_with_key,
    period,
    problem,
    redeem_at,
)
from tests.support import Api, unique


async def mint(api: Api, document: dict[str, Any]) -> Any:
    return await api.post("/v1/api-keys", {"name": "till", **document}, idempotency_key=None)


async def patch(api: Api, code: str, document: dict[str, Any]) -> Any:
    return await api.client.patch(f"/v1/partners/{code}", json=document, headers=api.headers())


class TestMintPartnerKey:
    async def test_a_key_bound_to_a_partner(self, api: Api) -> None:
        code = await onboard(api)
        response = await mint(api, {"scopes": ["partner:earn", "partner:redeem"], "partner": code})
        assert response.status_code == 201, response.text
        key = response.json()
        assert key["partner"] == code
        assert sorted(key["scopes"]) == ["partner:earn", "partner:redeem"]
        assert key["key"].startswith("plk_")
        listed = (await api.get("/v1/api-keys")).json()["items"]
        assert [item["partner"] for item in listed if item["id"] == key["id"]] == [code]

    async def test_program_scopes_on_a_partner_key_are_422(self, api: Api) -> None:
        code = await onboard(api)
        for scopes in (["partner:earn", "members:read"], ["admin"], ["points:earn"]):
            response = await mint(api, {"scopes": scopes, "partner": code})
            assert problem(response) == (422, "validation_error"), (scopes, response.text)

    async def test_partner_scopes_without_a_partner_are_422(self, api: Api) -> None:
        for scopes in (["partner:earn"], ["partner:convert", "members:read"]):
            response = await mint(api, {"scopes": scopes})
            assert problem(response) == (422, "validation_error"), (scopes, response.text)

    async def test_an_unknown_partner_is_404(self, api: Api, other: Api) -> None:
        response = await mint(api, {"scopes": ["partner:earn"], "partner": "nobody-here"})
        assert problem(response) == (404, "partner_not_found")
        theirs = await onboard(other)
        foreign = await mint(api, {"scopes": ["partner:earn"], "partner": theirs})
        assert problem(foreign) == (404, "partner_not_found")

    async def test_only_an_admin_mints_partner_keys(self, api: Api) -> None:
        code = await onboard(api)
        key = await api.key_with("members:write", "points:earn")
        response = await api.post(
            "/v1/api-keys",
            {"name": "x", "scopes": ["partner:earn"], "partner": code},
            key=key,
            idempotency_key=None,
        )
        assert problem(response) == (403, "forbidden")


class TestWhatAPartnerKeyMayCall:
    async def test_program_endpoints_are_403(self, api: Api) -> None:
        code, key = await partner_with_key(api)
        member = await api.enrol()
        refused = [
            await api.get(f"/v1/members/{member}", key=key),
            await api.post(
                "/v1/orders",
                {
                    "order_id": unique("o"),
                    "member": member,
                    "total": eur("10.00"),
                    "paid_at": "2026-01-01T00:00:00Z",
                },
                key=key,
            ),
            await api.get("/v1/partners", key=key),
            await api.get(f"/v1/partners/{code}", key=key),
            await api.get(f"/v1/partners/{code}/settlement", key=key, **period()),
            await api.post(f"/v1/members/{member}/awards", {"points": 5, "reason": "x"}, key=key),
            await api.get("/v1/events", key=key),
        ]
        for response in refused:
            assert problem(response) == (403, "forbidden"), response.text
        assert await api.available(member) == 0

    async def test_program_keys_even_admin_are_403_on_partner_endpoints(self, api: Api) -> None:
        code, _ = await partner_with_key(api)
        await partner_earning(api, code)
        await add_rate(api, code, "earn", price_per_point="0.01")
        member = await api.enrol()
        reader = await api.key_with("members:read", "points:earn", "points:burn")
        for key in (None, reader):
            responses = [
                await partner_order(api, key or api.key, member, "10.00"),
                await api.get(f"/v1/partner/members/{member}", key=key),
                await api.get("/v1/partner/settlement", key=key, **period()),
                await api.get("/v1/partner/statements", key=key),
                await api.post(
                    "/v1/partner/redemptions", {"member": member, "points": 1, "reference": "r"}, key=key
                ),
            ]
            for response in responses:
                assert problem(response) == (403, "forbidden"), response.text
        assert await api.available(member) == 0

    async def test_a_missing_scope_is_403(self, api: Api) -> None:
        code, key = await partner_with_key(api, "partner:redeem")
        await partner_earning(api, code)
        await add_rate(api, code, "earn", price_per_point="0.01")
        member = await member_with(api, 50)
        assert problem(await partner_order(api, key, member, "10.00")) == (403, "forbidden")
        assert problem(await convert_in(api, key, member, 10)) == (403, "forbidden")
        _, earner = await partner_with_key(api, "partner:earn")
        assert problem(await redeem_at(api, earner, member, 5)) == (403, "forbidden")
        assert problem(await api.get(f"/v1/partner/members/{member}", key=earner)) == (403, "forbidden")
        assert await api.available(member) == 50

    async def test_a_role_the_agreement_lacks_is_403_partner_role_not_allowed(self, api: Api) -> None:
        redeem_only, key = await partner_with_key(api, roles=("redeem",))
        await partner_earning(api, redeem_only)
        await add_rate(api, redeem_only, "earn", price_per_point="0.01")
        await add_rate(api, redeem_only, "convert_in", partner_units_per_point="1")
        member = await member_with(api, 50)
        assert problem(await partner_order(api, key, member, "10.00")) == (403, "partner_role_not_allowed")
        assert problem(await convert_in(api, key, member, 10)) == (403, "partner_role_not_allowed")
        preview = await api.post(
            "/v1/partner/orders/preview",
            {"order_id": "o1", "member": member, "total": eur("1.00"), "paid_at": "2026-01-01T00:00:00Z"},
            key=key,
            idempotency_key=None,
        )
        assert problem(preview) == (403, "partner_role_not_allowed")

        earn_only, earner = await partner_with_key(api, roles=("earn",))
        await add_rate(api, earn_only, "redeem", price_per_point="0.01")
        assert problem(await redeem_at(api, earner, member, 5)) == (403, "partner_role_not_allowed")
        assert await api.available(member) == 50
        assert (await get_partner(api, redeem_only))["funding_points"] == 0
        assert (await get_partner(api, earn_only))["payable_points"] == 0


class TestAnotherPartnersThings:
    async def test_a_conversion_of_another_partner_is_404(self, api: Api) -> None:
        a, a_key = await partner_with_key(api)
        b, b_key = await partner_with_key(api)
        await add_rate(api, b, "convert_out", partner_units_per_point="1")
        member = await member_with(api, 50)
        created = await convert_out(api, member, b, 20)
        assert created.status_code == 201, created.text
        conversion = created.json()
        path = f"/v1/partner/conversions/{conversion['id']}"
        assert problem(await api.get(path, key=a_key)) == (404, "conversion_not_found")
        assert problem(await api.post(f"{path}/confirm", {}, key=a_key)) == (404, "conversion_not_found")
        assert problem(await api.post(f"{path}/reject", {"reason": "no"}, key=a_key)) == (
            404,
            "conversion_not_found",
        )
        assert (await api.get(path, key=b_key)).json()["status"] == "pending"
        assert (await get_partner(api, a))["payable_points"] == 0
        assert await api.balances(member) == {"available": 30, "pending": 0, "held": 20, "debt": 0}
        # closed, so the session's verify does not meet a pending conversion (see test_verify)
        assert (await api.post(f"{path}/reject", {"reason": "done"}, key=b_key)).status_code == 201

    async def test_a_redemption_of_another_partner_is_404(self, api: Api) -> None:
        _, a_key = await partner_with_key(api)
        b, b_key = await partner_with_key(api)
        await add_rate(api, b, "redeem", price_per_point="0.01")
        member = await member_with(api, 50)
        redemption = (await redeem_at(api, b_key, member, 20)).json()
        path = f"/v1/partner/redemptions/{redemption['id']}"
        assert problem(await api.get(path, key=a_key)) == (404, "redemption_not_found")
        assert problem(await api.post(f"{path}/reversal", {}, key=a_key)) == (404, "redemption_not_found")
        assert await api.available(member) == 30
        assert (await api.get(path, key=b_key)).json()["status"] == "completed"

    async def test_a_refund_of_another_partners_order_is_404(self, api: Api) -> None:
        a, a_key = await partner_with_key(api)
        b, b_key = await partner_with_key(api)
        for code in (a, b):
            await add_rate(api, code, "earn", price_per_point="0.01")
        await api.use_rules(
            {
                "earn": {"base": {"points": 1, "per": "1"}},
                "partner_earn": {
                    a: {"base": {"points": 1, "per": "1"}},
                    b: {"base": {"points": 1, "per": "1"}},
                },
            }
        )
        member = await api.enrol()
        order = await earned(api, b_key, member, "10.00")
        response = await api.post(
            f"/v1/partner/orders/{order['order_id']}/refunds",
            {"refund_id": "rf-1", "amount": eur("10.00")},
            key=a_key,
        )
        assert problem(response) == (404, "order_not_found")
        assert await api.available(member) == 10
        assert (await get_partner(api, b))["funding_points"] == -10


class TestSuspendedPartner:
    async def test_every_call_of_its_keys_is_409_until_reactivated(self, api: Api) -> None:
        code, key = await partner_with_key(api)
        await add_rate(api, code, "earn", price_per_point="0.01")
        await add_rate(api, code, "redeem", price_per_point="0.01")
        await partner_earning(api, code)
        member = await member_with(api, 50)
        redemption = (await redeem_at(api, key, member, 5)).json()
        suspended = await patch(api, code, {"status": "suspended"})
        assert suspended.status_code == 200, suspended.text

        calls: list[Callable[[], Awaitable[httpx.Response]]] = [
            lambda: partner_order(api, key, member, "10.00"),
            lambda: redeem_at(api, key, member, 5),
            lambda: api.get(f"/v1/partner/members/{member}", key=key),
            lambda: api.get(f"/v1/partner/redemptions/{redemption['id']}", key=key),
            lambda: api.get("/v1/partner/settlement", key=key, **period()),
            lambda: api.get("/v1/partner/statements", key=key),
            lambda: convert_in(api, key, member, 10),
        ]
        for call in calls:
            response = await call()
            assert problem(response) == (409, "partner_inactive"), response.text
        assert await api.available(member) == 45

        assert (await patch(api, code, {"status": "active"})).status_code == 200
        assert (await partner_order(api, key, member, "10.00")).status_code == 201
        read = await api.get(f"/v1/partner/members/{member}", key=key)
        assert read.status_code == 200, read.text
        assert read.json()["available_points"] == 55

    async def test_a_suspended_partner_takes_no_donations_or_conversions(self, api: Api) -> None:
        code = await onboard(api, roles=("redeem", "donation", "convert_out"))
        await add_rate(api, code, "redeem", price_per_point="0.01")
        await add_rate(api, code, "convert_out", partner_units_per_point="1")
        member = await member_with(api, 50)
        await patch(api, code, {"status": "suspended"})
        donation = await api.post(f"/v1/members/{member}/donations", {"partner": code, "points": 5})
        assert problem(donation) == (409, "partner_inactive")
        assert problem(await convert_out(api, member, code, 5)) == (409, "partner_inactive")
        assert await api.balances(member) == {"available": 50, "pending": 0, "held": 0, "debt": 0}

    async def test_suspension_does_not_stop_the_programs_own_reads(self, api: Api) -> None:
        code = await onboard(api, billing="prepaid")
        await patch(api, code, {"status": "suspended"})
        assert (await api.get(f"/v1/partners/{code}")).status_code == 200
        assert (await api.get(f"/v1/partners/{code}/rates")).status_code == 200
        assert (await api.get(f"/v1/partners/{code}/settlement", **period())).status_code == 200
