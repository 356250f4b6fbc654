"""Effective-dated partner rates: POST and GET /v1/partners/{code}/rates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.partners.helpers import add_rate, instant, onboard, problem
from tests.support import Api

RATE_FIELDS = {
    "id",
    "kind",
    "effective_from",
    "price_per_point",
    "partner_units_per_point",
    "min_points",
    "increment",
    "rounding",
    "created_at",
}


async def post_rate(api: Api, code: str, document: dict[str, Any], key: str | None = None) -> Any:
    return await api.post(f"/v1/partners/{code}/rates", document, key=key, idempotency_key=None)


class TestAddRate:
    async def test_an_earn_rate_without_effective_from_starts_now(self, api: Api) -> None:
        code = await onboard(api)
        before = datetime.now(UTC)
        rate = await add_rate(api, code, "earn", price_per_point="0.0125")
        assert set(rate) == RATE_FIELDS
        assert (rate["kind"], Decimal(rate["price_per_point"])) == ("earn", Decimal("0.0125"))
        assert (rate["partner_units_per_point"], rate["min_points"], rate["increment"]) == (None, None, None)
        assert rate["rounding"] == "floor"
        assert before <= instant(rate["effective_from"]) <= datetime.now(UTC)
        assert isinstance(rate["id"], int)

    async def test_a_conversion_rate_keeps_its_terms(self, api: Api) -> None:
        code = await onboard(api)
        start = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
        rate = await add_rate(
            api,
            code,
            "convert_out",
            effective_from=start.isoformat(),
            partner_units_per_point="0.5",
            price_per_point="0.008",
            min_points=1000,
            increment=500,
            rounding="half_up",
        )
        assert instant(rate["effective_from"]) == start
        assert Decimal(rate["partner_units_per_point"]) == Decimal("0.5")
        assert Decimal(rate["price_per_point"]) == Decimal("0.008")
        assert (rate["min_points"], rate["increment"], rate["rounding"]) == (1000, 500, "half_up")

    async def test_effective_from_in_the_past_is_422(self, api: Api) -> None:
        code = await onboard(api)
        past = datetime.now(UTC) - timedelta(minutes=1)
        response = await post_rate(
            api, code, {"kind": "earn", "price_per_point": "0.01", "effective_from": past.isoformat()}
        )
        assert problem(response) == (422, "validation_error")
        assert (await api.get(f"/v1/partners/{code}/rates")).json()["items"] == []

    async def test_a_price_as_a_json_number_is_422(self, api: Api) -> None:
        code = await onboard(api)
        response = await post_rate(api, code, {"kind": "earn", "price_per_point": 0.01})
        assert problem(response) == (422, "validation_error")
        units = await post_rate(api, code, {"kind": "convert_in", "partner_units_per_point": 2})
        assert problem(units) == (422, "validation_error")
        assert (await api.get(f"/v1/partners/{code}/rates")).json()["items"] == []

    async def test_incomplete_or_mixed_rates_are_422(self, api: Api) -> None:
        code = await onboard(api)
        cases: list[dict[str, Any]] = [
            {"kind": "earn"},
            {"kind": "redeem", "partner_units_per_point": "2"},
            {"kind": "redeem", "price_per_point": "0.01", "partner_units_per_point": "2"},
            {"kind": "earn", "price_per_point": "0.01", "min_points": 10},
            {"kind": "convert_out", "price_per_point": "0.01"},
            {"kind": "convert_in"},
            {"kind": "convert_in", "partner_units_per_point": "2", "min_points": 10},
            {"kind": "earn", "price_per_point": "0"},
            {"kind": "earn", "price_per_point": "-0.01"},
            {"kind": "earn", "price_per_point": "abc"},
            {"kind": "convert_out", "partner_units_per_point": "1", "rounding": "banker"},
            {"kind": "cashback", "price_per_point": "0.01"},
        ]
        for document in cases:
            response = await post_rate(api, code, document)
            assert problem(response) == (422, "validation_error"), (document, response.text)
        assert (await api.get(f"/v1/partners/{code}/rates")).json()["items"] == []

    async def test_the_same_kind_and_start_twice_is_409(self, api: Api) -> None:
        code = await onboard(api)
        start = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
        await add_rate(api, code, "redeem", effective_from=start, price_per_point="0.01")
        again = await post_rate(
            api, code, {"kind": "redeem", "effective_from": start, "price_per_point": "0.02"}
        )
        assert problem(again) == (409, "rate_exists")
        # another kind may start at the same instant
        await add_rate(api, code, "earn", effective_from=start, price_per_point="0.02")
        items = (await api.get(f"/v1/partners/{code}/rates")).json()["items"]
        assert sorted((item["kind"], item["price_per_point"]) for item in items) == [
            ("earn", "0.02"),
            ("redeem", "0.01"),
        ]

    async def test_unknown_partner_404_and_non_admin_403(self, api: Api, other: Api) -> None:
        response = await post_rate(api, "nobody-here", {"kind": "earn", "price_per_point": "0.01"})
        assert problem(response) == (404, "partner_not_found")
        code = await onboard(api)
        key = await api.key_with("rules:write", "members:write")
        assert problem(await post_rate(api, code, {"kind": "earn", "price_per_point": "0.01"}, key=key)) == (
            403,
            "forbidden",
        )
        foreign = await post_rate(other, code, {"kind": "earn", "price_per_point": "0.01"})
        assert problem(foreign) == (404, "partner_not_found")


class TestListRates:
    async def test_at_an_instant_one_rate_per_kind_in_force(self, api: Api) -> None:
        code = await onboard(api)
        now = datetime.now(UTC)
        first = await add_rate(api, code, "earn", price_per_point="0.01")
        redeem = await add_rate(api, code, "redeem", price_per_point="0.005")
        later = now + timedelta(days=10)
        second = await add_rate(api, code, "earn", effective_from=later.isoformat(), price_per_point="0.02")
        out = await add_rate(
            api,
            code,
            "convert_out",
            effective_from=(now + timedelta(days=20)).isoformat(),
            partner_units_per_point="1",
        )

        at = now + timedelta(days=1)
        response = await api.get(f"/v1/partners/{code}/rates", at=at.isoformat())
        assert response.status_code == 200, response.text
        body = response.json()
        assert instant(body["at"]) == at
        assert sorted((rate["kind"], rate["id"]) for rate in body["rates"]) == [
            ("earn", first["id"]),
            ("redeem", redeem["id"]),
        ]
        in_force = {
            rate["kind"]: rate["id"]
            for rate in (
                await api.get(f"/v1/partners/{code}/rates", at=(now + timedelta(days=30)).isoformat())
            ).json()["rates"]
        }
        assert in_force == {"earn": second["id"], "redeem": redeem["id"], "convert_out": out["id"]}
        exactly = (await api.get(f"/v1/partners/{code}/rates", at=later.isoformat())).json()["rates"]
        assert {rate["kind"]: rate["id"] for rate in exactly}["earn"] == second["id"]
        before = (
            await api.get(f"/v1/partners/{code}/rates", at=(now - timedelta(days=1)).isoformat())
        ).json()
        assert before["rates"] == []

    async def test_without_at_every_rate_newest_start_first(self, api: Api) -> None:
        code = await onboard(api)
        now = datetime.now(UTC)
        a = await add_rate(api, code, "earn", price_per_point="0.01")
        b = await add_rate(
            api, code, "earn", effective_from=(now + timedelta(days=5)).isoformat(), price_per_point="0.02"
        )
        c = await add_rate(
            api, code, "redeem", effective_from=(now + timedelta(days=2)).isoformat(), price_per_point="0.03"
        )
        response = await api.get(f"/v1/partners/{code}/rates")
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"items"}
        assert [item["id"] for item in body["items"]] == [b["id"], c["id"], a["id"]]
        assert body["items"][0] == b

    async def test_at_without_a_timezone_is_422(self, api: Api) -> None:
        code = await onboard(api)
        naive = datetime.now(UTC).replace(tzinfo=None).isoformat()
        assert problem(await api.get(f"/v1/partners/{code}/rates", at=naive)) == (422, "validation_error")

    async def test_rates_are_the_partners_own(self, api: Api) -> None:
        one = await onboard(api)
        two = await onboard(api)
        await add_rate(api, one, "earn", price_per_point="0.01")
        assert (await api.get(f"/v1/partners/{two}/rates")).json()["items"] == []

    async def test_a_non_admin_key_is_403(self, api: Api) -> None:
        code = await onboard(api)
        key = await api.key_with("reports:read", "rules:read")
        assert problem(await api.get(f"/v1/partners/{code}/rates", key=key)) == (403, "forbidden")
