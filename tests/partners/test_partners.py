"""Onboarding partners: POST/GET/PATCH /v1/partners, admin only, one program's own."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.partners.helpers import (
    add_rate,
    earned,
    get_partner,
    instant,
    onboard,
    partner_earning,
    partner_key,
    partner_order,
    problem,
)
from tests.support import Api, unique

PARTNER_FIELDS = {
    "code",
    "name",
    "roles",
    "billing",
    "currency",
    "credit_limit_points",
    "timezone",
    "settlement_period",
    "status",
    "funding_points",
    "payable_points",
    "paid_points",
    "created_at",
    "updated_at",
}


def body(code: str, **fields: Any) -> dict[str, Any]:
    return {
        "code": code,
        "name": f"Partner {code}",
        "roles": ["earn", "redeem"],
        "billing": "postpaid",
        "currency": "EUR",
        **fields,
    }


async def create(api: Api, document: dict[str, Any], key: str | None = None) -> Any:
    return await api.post("/v1/partners", document, key=key, idempotency_key=None)


class TestCreatePartner:
    async def test_answers_the_agreement_with_empty_balances(self, api: Api) -> None:
        code = unique("pa").lower()
        before = datetime.now(UTC)
        response = await create(
            api,
            body(
                code,
                name="Sky Air",
                roles=["earn", "convert_out", "donation"],
                credit_limit_points=5000,
                timezone="Europe/Berlin",
                settlement_period="week",
            ),
        )
        assert response.status_code == 201, response.text
        partner = response.json()
        assert set(partner) == PARTNER_FIELDS
        assert partner["code"] == code
        assert partner["name"] == "Sky Air"
        assert partner["roles"] == ["earn", "convert_out", "donation"]
        assert (partner["billing"], partner["currency"], partner["credit_limit_points"]) == (
            "postpaid",
            "EUR",
            5000,
        )
        assert (partner["timezone"], partner["settlement_period"], partner["status"]) == (
            "Europe/Berlin",
            "week",
            "active",
        )
        assert (partner["funding_points"], partner["payable_points"]) == (0, 0)
        assert before <= instant(partner["created_at"]) <= datetime.now(UTC)
        assert partner["updated_at"] == partner["created_at"]
        assert await get_partner(api, code) == partner

    async def test_defaults_utc_month_and_no_credit_limit(self, api: Api) -> None:
        code = unique("pa").lower()
        response = await create(api, body(code, billing="prepaid"))
        assert response.status_code == 201, response.text
        partner = response.json()
        assert (partner["timezone"], partner["settlement_period"]) == ("UTC", "month")
        assert partner["credit_limit_points"] is None
        assert partner["billing"] == "prepaid"

    async def test_a_duplicate_code_is_409_and_keeps_the_first(self, api: Api) -> None:
        code = await onboard(api, roles=("earn",))
        again = await create(api, body(code, name="Impostor", roles=["redeem"]))
        assert problem(again) == (409, "partner_exists")
        partner = await get_partner(api, code)
        assert (partner["name"], partner["roles"]) == (f"Partner {code}", ["earn"])

    async def test_the_same_code_in_another_program_is_another_partner(self, api: Api, other: Api) -> None:
        code = await onboard(api)
        response = await create(other, body(code, currency="USD"))
        assert response.status_code == 201, response.text
        assert (await get_partner(api, code))["currency"] == "EUR"
        assert (await get_partner(other, code))["currency"] == "USD"

    async def test_an_unknown_timezone_is_422_and_creates_nothing(self, api: Api) -> None:
        code = unique("pa").lower()
        response = await create(api, body(code, timezone="Mars/Olympus_Mons"))
        assert problem(response) == (422, "validation_error")
        assert "timezone" in response.text
        assert problem(await api.get(f"/v1/partners/{code}")) == (404, "partner_not_found")

    async def test_a_credit_limit_on_a_prepaid_partner_is_422(self, api: Api) -> None:
        code = unique("pa").lower()
        response = await create(api, body(code, billing="prepaid", credit_limit_points=100))
        assert problem(response) == (422, "validation_error")
        assert problem(await api.get(f"/v1/partners/{code}")) == (404, "partner_not_found")

    async def test_malformed_agreements_are_422(self, api: Api) -> None:
        cases = [
            body(unique("pa").lower(), roles=["earn", "teleport"]),
            body(unique("pa").lower(), roles=[]),
            body(unique("pa").lower(), roles=["earn", "earn"]),
            body(unique("pa").lower(), billing="weekly"),
            body(unique("pa").lower(), currency="euro"),
            body(unique("pa").lower(), settlement_period="day"),
            body("Upper-Case"),
            body(unique("pa").lower(), credit_limit_points=-1),
            body(unique("pa").lower(), colour="red"),
        ]
        for document in cases:
            response = await create(api, document)
            assert problem(response) == (422, "validation_error"), (document, response.text)
        listed = await api.get("/v1/partners")
        assert listed.json()["items"] == []

    async def test_a_non_admin_key_is_403(self, api: Api) -> None:
        key = await api.key_with("members:read", "members:write", "points:earn", "points:burn", "rules:write")
        response = await create(api, body(unique("pa").lower()), key=key)
        assert problem(response) == (403, "forbidden")


class TestListPartners:
    async def test_pages_by_code_with_balances(self, api: Api, other: Api) -> None:
        codes = sorted([await onboard(api, code=f"{unique('pa').lower()}-{n}") for n in "cab"])
        await onboard(other)
        first = await api.get("/v1/partners", limit=2)
        assert first.status_code == 200, first.text
        page = first.json()
        assert [item["code"] for item in page["items"]] == codes[:2]
        assert set(page["items"][0]) == PARTNER_FIELDS
        assert page["next_cursor"]
        second = (await api.get("/v1/partners", limit=2, cursor=page["next_cursor"])).json()
        assert [item["code"] for item in second["items"]] == codes[2:]
        assert second["next_cursor"] is None
        everything = (await api.get("/v1/partners")).json()
        assert [item["code"] for item in everything["items"]] == codes
        assert everything["next_cursor"] is None

    async def test_shows_funding_and_payable(self, api: Api) -> None:
        code = await onboard(api)
        key = await partner_key(api, code)
        await add_rate(api, code, "earn", price_per_point="0.01")
        await partner_earning(api, code, points=2)
        member = await api.enrol()
        await earned(api, key, member, "5.00")
        [item] = (await api.get("/v1/partners")).json()["items"]
        assert (item["funding_points"], item["payable_points"]) == (-10, 0)

    async def test_a_non_admin_key_is_403(self, api: Api) -> None:
        key = await api.key_with("members:read", "reports:read")
        assert problem(await api.get("/v1/partners", key=key)) == (403, "forbidden")


class TestGetPartner:
    async def test_an_unknown_code_is_404(self, api: Api) -> None:
        assert problem(await api.get("/v1/partners/nobody-here")) == (404, "partner_not_found")

    async def test_another_programs_admin_key_gets_404(self, api: Api, other: Api) -> None:
        code = await onboard(api)
        assert problem(await other.get(f"/v1/partners/{code}")) == (404, "partner_not_found")
        assert problem(await other.get(f"/v1/partners/{code}/rates")) == (404, "partner_not_found")
        patched = await other.client.patch(
            f"/v1/partners/{code}", json={"status": "suspended"}, headers=other.headers()
        )
        assert problem(patched) == (404, "partner_not_found")
        assert (await get_partner(api, code))["status"] == "active"

    async def test_a_non_admin_key_is_403(self, api: Api) -> None:
        code = await onboard(api)
        key = await api.key_with("members:read")
        assert problem(await api.get(f"/v1/partners/{code}", key=key)) == (403, "forbidden")


async def patch(api: Api, code: str, document: dict[str, Any], key: str | None = None) -> Any:
    return await api.client.patch(f"/v1/partners/{code}", json=document, headers=api.headers(key))


class TestUpdatePartner:
    async def test_renames_and_moves_updated_at(self, api: Api) -> None:
        code = await onboard(api)
        created = await get_partner(api, code)
        response = await patch(api, code, {"name": "Coffee Co Europe"})
        assert response.status_code == 200, response.text
        partner = response.json()
        assert partner["name"] == "Coffee Co Europe"
        assert partner["created_at"] == created["created_at"]
        assert instant(partner["updated_at"]) > instant(created["updated_at"])
        assert {k: v for k, v in partner.items() if k not in ("name", "updated_at")} == {
            k: v for k, v in created.items() if k not in ("name", "updated_at")
        }
        assert await get_partner(api, code) == partner

    async def test_suspends_and_reactivates(self, api: Api) -> None:
        code = await onboard(api)
        suspended = await patch(api, code, {"status": "suspended"})
        assert suspended.status_code == 200, suspended.text
        assert suspended.json()["status"] == "suspended"
        assert (await get_partner(api, code))["status"] == "suspended"
        active = await patch(api, code, {"status": "active"})
        assert active.json()["status"] == "active"

    async def test_a_new_credit_limit_applies_to_the_next_order(self, api: Api) -> None:
        code = await onboard(api, credit_limit_points=10)
        key = await partner_key(api, code)
        await add_rate(api, code, "earn", price_per_point="0.01")
        await partner_earning(api, code)
        member = await api.enrol()
        await earned(api, key, member, "10.00")
        assert problem(await partner_order(api, key, member, "1.00")) == (422, "partner_credit_exceeded")
        raised = await patch(api, code, {"credit_limit_points": 25})
        assert raised.json()["credit_limit_points"] == 25
        await earned(api, key, member, "15.00")
        assert problem(await partner_order(api, key, member, "1.00")) == (422, "partner_credit_exceeded")
        unlimited = await patch(api, code, {"credit_limit_points": None})
        assert unlimited.status_code == 200, unlimited.text
        assert unlimited.json()["credit_limit_points"] is None
        await earned(api, key, member, "500.00")
        assert (await get_partner(api, code))["funding_points"] == -525

    async def test_a_credit_limit_for_a_prepaid_partner_is_422(self, api: Api) -> None:
        code = await onboard(api, billing="prepaid")
        assert problem(await patch(api, code, {"credit_limit_points": 10})) == (422, "validation_error")
        assert (await get_partner(api, code))["credit_limit_points"] is None

    async def test_malformed_updates_are_422(self, api: Api) -> None:
        code = await onboard(api)
        for document in ({}, {"status": "closed"}, {"status": None}, {"name": None}, {"billing": "prepaid"}):
            response = await patch(api, code, document)
            assert problem(response) == (422, "validation_error"), (document, response.text)
        partner = await get_partner(api, code)
        assert (partner["status"], partner["billing"], partner["name"]) == (
            "active",
            "postpaid",
            f"Partner {code}",
        )

    async def test_an_unknown_partner_is_404(self, api: Api) -> None:
        assert problem(await patch(api, "nobody-here", {"name": "x"})) == (404, "partner_not_found")

    async def test_a_non_admin_key_is_403(self, api: Api) -> None:
        code = await onboard(api)
        key = await api.key_with("members:write", "points:adjust")
        assert problem(await patch(api, code, {"status": "suspended"}, key=key)) == (403, "forbidden")
        assert (await get_partner(api, code))["status"] == "active"
