"""A partner's funding under concurrent earning: never below zero (prepaid) or past
the credit limit (postpaid), exactly as many successes as there were points."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime

from tests.partners.helpers import (
    add_rate,
    convert_in,
    convert_out,
    fund,
    get_partner,
    member_with,
    onboard,
    partner_earning,
    partner_order,
    partner_with_key,
    problem,
    redeem_at,
)
from tests.support import Api

N = 10


async def members(api: Api, count: int) -> list[str]:
    return [await api.enrol() for _ in range(count)]


class TestConcurrentEarning:
    async def test_a_prepaid_partner_funds_exactly_n_of_3n_concurrent_earns(self, api: Api) -> None:
        code, key = await partner_with_key(api, billing="prepaid")
        await partner_earning(api, code)
        assert (await fund(api, code, N)).status_code == 201
        earners = await members(api, 3 * N)
        responses = await asyncio.gather(
            *(partner_order(api, key, member, "1.00", order_id=f"c-{i}") for i, member in enumerate(earners))
        )
        outcomes = Counter(
            problem(response) if response.status_code != 201 else (201, None) for response in responses
        )
        assert outcomes == {(201, None): N, (422, "partner_funds_insufficient"): 2 * N}, outcomes
        partner = await get_partner(api, code)
        assert partner["funding_points"] == 0
        balances = [await api.available(member) for member in earners]
        assert sorted(balances) == [0] * (2 * N) + [1] * N
        for response, balance in zip(responses, balances, strict=True):
            assert balance == (1 if response.status_code == 201 else 0)

    async def test_a_postpaid_partner_stops_exactly_at_its_credit_limit(self, api: Api) -> None:
        code, key = await partner_with_key(api, credit_limit_points=N)
        await add_rate(api, code, "earn", price_per_point="0.01")
        await partner_earning(api, code)
        earners = await members(api, 3 * N)
        responses = await asyncio.gather(*(partner_order(api, key, member, "1.00") for member in earners))
        outcomes = Counter(
            problem(response) if response.status_code != 201 else (201, None) for response in responses
        )
        assert outcomes == {(201, None): N, (422, "partner_credit_exceeded"): 2 * N}, outcomes
        assert (await get_partner(api, code))["funding_points"] == -N
        assert sum([await api.available(member) for member in earners]) == N

    async def test_concurrent_earns_and_conversions_in_share_the_funding(self, api: Api) -> None:
        code, key = await partner_with_key(api, billing="prepaid")
        await partner_earning(api, code)
        await add_rate(api, code, "convert_in", partner_units_per_point="1")
        assert (await fund(api, code, N)).status_code == 201
        earners = await members(api, 2 * N)
        calls = [
            partner_order(api, key, member, "1.00") if i % 2 else convert_in(api, key, member, 1)
            for i, member in enumerate(earners)
        ]
        responses = await asyncio.gather(*calls)
        accepted = [response for response in responses if response.status_code == 201]
        refused = {problem(response) for response in responses if response.status_code != 201}
        assert len(accepted) == N
        assert refused == {(422, "partner_funds_insufficient")}
        assert (await get_partner(api, code))["funding_points"] == 0
        assert sum([await api.available(member) for member in earners]) == N


class TestConcurrentOperations:
    async def test_concurrent_fundings_each_answer_the_funding_after_them(self, api: Api) -> None:
        code = await onboard(api, billing="prepaid")
        responses = await asyncio.gather(*(fund(api, code, 10) for _ in range(5)))
        assert [response.status_code for response in responses] == [201] * 5
        assert (await get_partner(api, code))["funding_points"] == 50
        # each funding's answer is the partner's funding right after it: 10, 20, ... 50
        assert sorted(response.json()["funding_points"] for response in responses) == [10, 20, 30, 40, 50]

    async def test_a_redemption_is_reversed_once_under_concurrent_reversals(self, api: Api) -> None:
        code, key = await partner_with_key(api)
        await add_rate(api, code, "redeem", price_per_point="0.01")
        member = await member_with(api, 100)
        redemption = (await redeem_at(api, key, member, 40)).json()
        path = f"/v1/partner/redemptions/{redemption['id']}/reversal"
        responses = await asyncio.gather(*(api.post(path, {}, key=key) for _ in range(4)))
        outcomes = Counter(
            problem(response) if response.status_code != 201 else (201, None) for response in responses
        )
        assert outcomes == {(201, None): 1, (409, "already_reversed"): 3}, outcomes
        assert await api.available(member) == 100
        assert (await get_partner(api, code))["payable_points"] == 0

    async def test_a_conversion_is_decided_once_under_concurrent_confirm_and_reject(self, api: Api) -> None:
        code, key = await partner_with_key(api)
        await add_rate(api, code, "convert_out", partner_units_per_point="1")
        member = await member_with(api, 100)
        conversion = (await convert_out(api, member, code, 40)).json()
        path = f"/v1/partner/conversions/{conversion['id']}"
        responses = await asyncio.gather(
            api.post(f"{path}/confirm", {}, key=key),
            api.post(f"{path}/reject", {"reason": "no"}, key=key),
            api.post(f"{path}/confirm", {}, key=key),
            api.post(f"{path}/reject", {"reason": "no"}, key=key),
        )
        winners = [response for response in responses if response.status_code == 201]
        assert len(winners) == 1, [response.text for response in responses]
        assert {problem(r) for r in responses if r.status_code != 201} == {(409, "conversion_not_pending")}
        status = winners[0].json()["status"]
        payable = (await get_partner(api, code))["payable_points"]
        balances = await api.balances(member)
        if status == "confirmed":
            assert (payable, balances["available"], balances["held"]) == (40, 60, 0)
        else:
            assert (payable, balances["available"], balances["held"]) == (0, 100, 0)

    async def test_concurrent_closes_of_one_period_make_one_statement(self, api: Api) -> None:
        code = await onboard(api)
        end = {"period_end": datetime.now(UTC).isoformat()}
        responses = await asyncio.gather(
            *(api.post(f"/v1/partners/{code}/statements", end, idempotency_key=None) for _ in range(3))
        )
        outcomes = Counter(
            problem(response) if response.status_code != 201 else (201, None) for response in responses
        )
        assert outcomes == {(201, None): 1, (409, "period_closed"): 2}, outcomes
        assert len((await api.get(f"/v1/partners/{code}/statements")).json()["items"]) == 1
