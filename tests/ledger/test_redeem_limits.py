"""The rules' `redeem` limits on redemptions and on holds."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support import Api

BASE: dict[str, Any] = {"earn": {"base": {"points": 1, "per": "1", "rounding": "floor"}}}
LIMITS: dict[str, Any] = {
    **BASE,
    "redeem": {"min_points": 100, "increment": 10, "point_value": "0.01", "max_share_of_order": "0.5"},
}
LIMITS_IN_EUR: dict[str, Any] = {**LIMITS, "currency": "EUR"}
BALANCE = 10_000

# Both ways of spending points: straight away, or held for a checkout.
SPENDS = ["redemptions", "holds"]


def euros(amount: str, currency: str = "EUR") -> dict[str, str]:
    return {"amount": amount, "currency": currency}


async def spend(
    api: Api, how: str, member: str, points: int, *, idempotency_key: str | None = "auto", **fields: Any
) -> httpx.Response:
    return await api.post(
        f"/v1/members/{member}/{how}", {"points": points, **fields}, idempotency_key=idempotency_key
    )


async def member_under(api: Api, rules: dict[str, Any] | None) -> str:
    """A member with BALANCE points, in a program whose active rules are `rules`."""
    if rules is not None:
        await api.use_rules(rules)
    member = await api.enrol()
    assert (await api.award(member, BALANCE)).status_code == 201
    return member


async def assert_refused(api: Api, member: str, response: httpx.Response, code: str) -> None:
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == code
    if code != "currency_mismatch":
        assert problem["errors"][0]["field"] == "body.points"
    assert await api.balances(member) == {"available": BALANCE, "pending": 0, "held": 0, "debt": 0}


async def assert_spent(api: Api, member: str, how: str, response: httpx.Response, points: int) -> None:
    assert response.status_code == 201, response.text
    balances = await api.balances(member)
    if how == "holds":
        assert (balances["available"], balances["held"]) == (BALANCE - points, points)
    else:
        assert (balances["available"], balances["held"]) == (BALANCE - points, 0)


@pytest.mark.parametrize("how", SPENDS)
class TestMinimum:
    async def test_fewer_points_are_refused(self, api: Api, how: str) -> None:
        member = await member_under(api, LIMITS)
        response = await spend(api, how, member, 90)
        await assert_refused(api, member, response, "points_below_minimum")
        assert "100" in response.json()["detail"]

    async def test_the_minimum_itself_is_accepted(self, api: Api, how: str) -> None:
        member = await member_under(api, LIMITS)
        await assert_spent(api, member, how, await spend(api, how, member, 100), 100)

    async def test_is_checked_before_the_increment(self, api: Api, how: str) -> None:
        member = await member_under(api, LIMITS)
        await assert_refused(api, member, await spend(api, how, member, 95), "points_below_minimum")


@pytest.mark.parametrize("how", SPENDS)
class TestIncrement:
    async def test_points_between_increments_are_refused(self, api: Api, how: str) -> None:
        member = await member_under(api, LIMITS)
        await assert_refused(api, member, await spend(api, how, member, 105), "points_not_in_increments")

    async def test_a_multiple_is_accepted(self, api: Api, how: str) -> None:
        member = await member_under(api, LIMITS)
        await assert_spent(api, member, how, await spend(api, how, member, 110), 110)


@pytest.mark.parametrize("how", SPENDS)
class TestShareOfOrder:
    async def test_more_than_the_share_is_refused(self, api: Api, how: str) -> None:
        member = await member_under(api, LIMITS)
        response = await spend(api, how, member, 6010, order_total=euros("120.00"))
        await assert_refused(api, member, response, "points_exceed_order_share")
        assert "at most 6000 points" in response.json()["detail"]

    async def test_exactly_the_share_is_accepted(self, api: Api, how: str) -> None:
        member = await member_under(api, LIMITS)
        response = await spend(api, how, member, 6000, order_total=euros("120.00"))
        await assert_spent(api, member, how, response, 6000)

    async def test_without_an_order_total_the_share_does_not_apply(self, api: Api, how: str) -> None:
        member = await member_under(api, LIMITS)
        await assert_spent(api, member, how, await spend(api, how, member, 7000), 7000)


@pytest.mark.parametrize("how", SPENDS)
class TestCurrency:
    async def test_an_order_in_another_currency_is_refused(self, api: Api, how: str) -> None:
        member = await member_under(api, LIMITS_IN_EUR)
        response = await spend(api, how, member, 100, order_total=euros("120.00", "USD"))
        await assert_refused(api, member, response, "currency_mismatch")

    async def test_an_order_in_the_rules_currency_is_accepted(self, api: Api, how: str) -> None:
        member = await member_under(api, LIMITS_IN_EUR)
        response = await spend(api, how, member, 100, order_total=euros("120.00"))
        await assert_spent(api, member, how, response, 100)

    async def test_rules_without_a_currency_accept_any(self, api: Api, how: str) -> None:
        member = await member_under(api, LIMITS)
        response = await spend(api, how, member, 100, order_total=euros("120.00", "USD"))
        await assert_spent(api, member, how, response, 100)


@pytest.mark.parametrize("how", SPENDS)
class TestDefaultRules:
    async def test_there_are_no_limits(self, api: Api, how: str) -> None:
        member = await member_under(api, None)
        assert (await spend(api, how, member, 1)).status_code == 201
        assert (await spend(api, how, member, 7)).status_code == 201
        assert (await spend(api, how, member, 5000, order_total=euros("0.01", "USD"))).status_code == 201
        assert (await api.available(member)) == BALANCE - 5008

    async def test_limits_end_with_the_version_that_set_them(self, api: Api, how: str) -> None:
        member = await member_under(api, LIMITS)
        await assert_refused(api, member, await spend(api, how, member, 7), "points_below_minimum")
        await api.use_rules(BASE)
        await assert_spent(api, member, how, await spend(api, how, member, 7), 7)


@pytest.mark.parametrize("how", SPENDS)
class TestRetriesAcrossRulesVersions:
    async def test_a_retry_that_passed_keeps_replaying_after_the_limits_change(
        self, api: Api, how: str
    ) -> None:
        member = await member_under(api, None)
        first = await spend(api, how, member, 50, idempotency_key="spend-50")
        await assert_spent(api, member, how, first, 50)
        await api.use_rules(LIMITS)
        retry = await spend(api, how, member, 50, idempotency_key="spend-50")
        assert (retry.status_code, retry.content) == (201, first.content)
        assert retry.headers["Idempotent-Replayed"] == "true"
        assert await api.available(member) == BALANCE - 50
        assert (await spend(api, how, member, 50)).json()["code"] == "points_below_minimum"

    async def test_a_refused_request_passes_once_the_limits_are_lifted(self, api: Api, how: str) -> None:
        member = await member_under(api, LIMITS)
        refused = await spend(api, how, member, 50, idempotency_key="spend-again")
        await assert_refused(api, member, refused, "points_below_minimum")
        await api.use_rules(BASE)
        retry = await spend(api, how, member, 50, idempotency_key="spend-again")
        await assert_spent(api, member, how, retry, 50)
        assert "Idempotent-Replayed" not in retry.headers
