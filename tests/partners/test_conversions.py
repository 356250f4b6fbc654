"""Conversions to a partner's units (requested by the program, confirmed or rejected
by the partner, failed by the `fail-conversions` job) and from them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from app.config import Environment, Settings
from app.ledger.verify import verify
from app.main import create_app
from app.partners.settlement import VERIFY_CHECKS
from tests.partners.helpers import (
    add_rate,
    convert_in,
    convert_out,
    fund,
    get_partner,
    instant,
    member_with,
    onboard,
    partner_key,
    partner_with_key,
    problem,
    run_job,
)
from tests.support import BOOTSTRAP_KEY, Api, MovableClock, new_program

CONVERSION_FIELDS = {
    "id",
    "direction",
    "status",
    "partner",
    "member",
    "points",
    "partner_units",
    "rate",
    "partner_member_id",
    "reference",
    "reason",
    "created_at",
    "closed_at",
}


async def airline(api: Api, units: str = "0.5", **rate: Any) -> tuple[str, str, dict[str, Any]]:
    """A partner members convert points to: (code, its key, its convert_out rate)."""
    code, key = await partner_with_key(api)
    created = await add_rate(api, code, "convert_out", partner_units_per_point=units, **rate)
    return code, key, created


async def requested(api: Api, member: str, code: str, points: int, **fields: Any) -> dict[str, Any]:
    response = await convert_out(api, member, code, points, **fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def decide(api: Api, key: str, conversion: dict[str, Any], verb: str, **body: Any) -> Any:
    return await api.post(f"/v1/partner/conversions/{conversion['id']}/{verb}", body, key=key)


class TestConversionOut:
    async def test_holds_the_points_and_answers_pending(self, api: Api) -> None:
        code, key, rate = await airline(api)
        member = await member_with(api, 100)
        before = datetime.now(UTC)
        conversion = await requested(api, member, code, 40, partner_member_id="SKY-881")
        assert set(conversion) == CONVERSION_FIELDS
        assert (conversion["direction"], conversion["status"]) == ("out", "pending")
        assert (conversion["partner"], conversion["member"], conversion["points"]) == (code, member, 40)
        assert conversion["partner_units"] == 20
        assert conversion["rate"]["id"] == rate["id"]
        assert Decimal(conversion["rate"]["partner_units_per_point"]) == Decimal("0.5")
        assert conversion["rate"]["rounding"] == "floor"
        assert (conversion["partner_member_id"], conversion["closed_at"], conversion["reason"]) == (
            "SKY-881",
            None,
            None,
        )
        assert before <= instant(conversion["created_at"]) <= datetime.now(UTC)
        assert await api.balances(member) == {"available": 60, "pending": 0, "held": 40, "debt": 0}
        assert (await get_partner(api, code))["payable_points"] == 0
        read = await api.get(f"/v1/partner/conversions/{conversion['id']}", key=key)
        assert read.status_code == 200, read.text
        assert read.json() == conversion
        await decide(api, key, conversion, "reject", reason="cleanup")

    async def test_partner_units_are_rounded_by_the_rates_rule(self, api: Api) -> None:
        member = await member_with(api, 100)
        expected = {"floor": 4, "half_up": 5, "ceil": 5}
        for rounding, units in expected.items():
            code, key, _ = await airline(api, "0.3", rounding=rounding)
            conversion = await requested(api, member, code, 15)  # 4.5 units
            assert conversion["partner_units"] == units, rounding
            assert conversion["rate"]["rounding"] == rounding
            await decide(api, key, conversion, "reject", reason="cleanup")
        code, key, _ = await airline(api, "0.3", rounding="ceil")
        conversion = await requested(api, member, code, 11)  # 3.3 units
        assert conversion["partner_units"] == 4
        await decide(api, key, conversion, "reject", reason="cleanup")
        code, key, _ = await airline(api, "0.3", rounding="half_up")
        conversion = await requested(api, member, code, 11)  # 3.3 units
        assert conversion["partner_units"] == 3
        await decide(api, key, conversion, "reject", reason="cleanup")

    async def test_below_the_minimum_or_off_the_increment_is_422(self, api: Api) -> None:
        code, _, _ = await airline(api, "1", min_points=100, increment=50)
        member = await member_with(api, 1000)
        assert problem(await convert_out(api, member, code, 50)) == (422, "conversion_below_minimum")
        assert problem(await convert_out(api, member, code, 120)) == (422, "conversion_not_in_increments")
        assert await api.balances(member) == {"available": 1000, "pending": 0, "held": 0, "debt": 0}

    async def test_points_worth_less_than_one_unit_are_422(self, api: Api) -> None:
        code, _, _ = await airline(api, "0.1")
        member = await member_with(api, 100)
        assert problem(await convert_out(api, member, code, 9)) == (422, "conversion_below_minimum")
        assert await api.available(member) == 100

    async def test_insufficient_points_is_422(self, api: Api) -> None:
        code, _, _ = await airline(api)
        member = await member_with(api, 10)
        assert problem(await convert_out(api, member, code, 11)) == (422, "insufficient_points")
        assert await api.balances(member) == {"available": 10, "pending": 0, "held": 0, "debt": 0}

    async def test_without_a_rate_role_or_partner(self, api: Api) -> None:
        member = await member_with(api, 100)
        code, _ = await partner_with_key(api)
        assert problem(await convert_out(api, member, code, 10)) == (422, "rate_not_effective")
        no_role = await onboard(api, roles=("earn", "redeem", "convert_in"))
        await add_rate(api, no_role, "convert_out", partner_units_per_point="1")
        assert problem(await convert_out(api, member, no_role, 10)) == (403, "partner_role_not_allowed")
        assert problem(await convert_out(api, member, "nobody-here", 10)) == (404, "partner_not_found")
        reader = await api.key_with("members:read", "points:earn")
        code_ok, _, _ = await airline(api)
        assert problem(await convert_out(api, member, code_ok, 10, key=reader)) == (403, "forbidden")
        assert await api.balances(member) == {"available": 100, "pending": 0, "held": 0, "debt": 0}

    async def test_an_unknown_member_is_404(self, api: Api) -> None:
        code, _, _ = await airline(api)
        assert problem(await convert_out(api, "nobody-here", code, 10)) == (404, "member_not_found")


class TestConfirmAndReject:
    async def test_confirm_spends_the_held_points_into_the_payable(self, api: Api) -> None:
        code, key, _ = await airline(api)
        member = await member_with(api, 100)
        conversion = await requested(api, member, code, 40)
        response = await decide(api, key, conversion, "confirm")
        assert response.status_code == 201, response.text
        confirmed = response.json()
        assert confirmed["status"] == "confirmed"
        assert confirmed["closed_at"] is not None
        assert {k: v for k, v in confirmed.items() if k not in ("status", "closed_at")} == {
            k: v for k, v in conversion.items() if k not in ("status", "closed_at")
        }
        assert await api.balances(member) == {"available": 60, "pending": 0, "held": 0, "debt": 0}
        assert (await get_partner(api, code))["payable_points"] == 40
        assert (await api.get(f"/v1/partner/conversions/{conversion['id']}", key=key)).json() == confirmed

        for verb, body in (("confirm", {}), ("reject", {"reason": "late"})):
            again = await decide(api, key, conversion, verb, **body)
            assert problem(again) == (409, "conversion_not_pending"), verb
        assert await api.balances(member) == {"available": 60, "pending": 0, "held": 0, "debt": 0}
        assert (await get_partner(api, code))["payable_points"] == 40

    async def test_reject_gives_the_points_back(self, api: Api) -> None:
        code, key, _ = await airline(api)
        member = await member_with(api, 100)
        conversion = await requested(api, member, code, 40)
        response = await decide(api, key, conversion, "reject", reason="unknown member")
        assert response.status_code == 201, response.text
        rejected = response.json()
        assert (rejected["status"], rejected["reason"]) == ("rejected", "unknown member")
        assert rejected["closed_at"] is not None
        assert await api.balances(member) == {"available": 100, "pending": 0, "held": 0, "debt": 0}
        assert (await get_partner(api, code))["payable_points"] == 0
        for verb, body in (("reject", {"reason": "again"}), ("confirm", {})):
            assert problem(await decide(api, key, conversion, verb, **body)) == (
                409,
                "conversion_not_pending",
            )
        assert await api.balances(member) == {"available": 100, "pending": 0, "held": 0, "debt": 0}

    async def test_reject_needs_a_reason_and_confirm_an_empty_body(self, api: Api) -> None:
        code, key, _ = await airline(api)
        member = await member_with(api, 100)
        conversion = await requested(api, member, code, 40)
        assert problem(await decide(api, key, conversion, "reject")) == (422, "validation_error")
        assert problem(await decide(api, key, conversion, "confirm", points=40)) == (422, "validation_error")
        assert (await api.get(f"/v1/partner/conversions/{conversion['id']}", key=key)).json()[
            "status"
        ] == "pending"
        await decide(api, key, conversion, "reject", reason="cleanup")

    async def test_unknown_conversion_is_404_and_scope_is_needed(self, api: Api) -> None:
        code, key, _ = await airline(api)
        missing = {"id": str(uuid.uuid4())}
        assert problem(await decide(api, key, missing, "confirm")) == (404, "conversion_not_found")
        assert problem(await api.get(f"/v1/partner/conversions/{missing['id']}", key=key)) == (
            404,
            "conversion_not_found",
        )
        member = await member_with(api, 100)
        conversion = await requested(api, member, code, 40)
        earner = await partner_key(api, code, "partner:earn", "partner:redeem")
        assert problem(await decide(api, earner, conversion, "confirm")) == (403, "forbidden")
        assert problem(await api.get(f"/v1/partner/conversions/{conversion['id']}", key=earner)) == (
            403,
            "forbidden",
        )
        assert (await api.balances(member))["held"] == 40
        await decide(api, key, conversion, "reject", reason="cleanup")

    async def test_a_retry_of_a_confirmation_replays(self, api: Api) -> None:
        code, key, _ = await airline(api)
        member = await member_with(api, 100)
        conversion = await requested(api, member, code, 40)
        path = f"/v1/partner/conversions/{conversion['id']}/confirm"
        first = await api.post(path, {}, key=key, idempotency_key="c-1")
        again = await api.post(path, {}, key=key, idempotency_key="c-1")
        assert first.status_code == again.status_code == 201, again.text
        assert first.json() == again.json()
        assert (await get_partner(api, code))["payable_points"] == 40


class TestFailConversionsJob:
    async def test_a_conversion_left_pending_too_long_fails_and_releases(self, api: Api) -> None:
        code, key, _ = await airline(api)
        member = await member_with(api, 100)
        conversion = await requested(api, member, code, 40)
        created = instant(conversion["created_at"])

        early = await run_job(api, "fail-conversions", created + timedelta(days=6))
        assert early["counts"] == {"conversions": 0, "points": 0}
        assert (await api.balances(member))["held"] == 40

        summary = await run_job(api, "fail-conversions", created + timedelta(days=7, minutes=1))
        assert summary["job"] == "fail-conversions"
        assert summary["counts"] == {"conversions": 1, "points": 40}
        failed = (await api.get(f"/v1/partner/conversions/{conversion['id']}", key=key)).json()
        assert failed["status"] == "failed"
        assert failed["closed_at"] is not None
        assert failed["reason"]
        assert await api.balances(member) == {"available": 100, "pending": 0, "held": 0, "debt": 0}
        assert problem(await decide(api, key, conversion, "confirm")) == (409, "conversion_not_pending")
        again = await run_job(api, "fail-conversions", created + timedelta(days=8))
        assert again["counts"] == {"conversions": 0, "points": 0}
        assert await api.balances(member) == {"available": 100, "pending": 0, "held": 0, "debt": 0}

    async def test_only_pending_ones_of_the_callers_program(self, api: Api, other: Api) -> None:
        code, key, _ = await airline(api)
        member = await member_with(api, 100)
        confirmed = await requested(api, member, code, 10)
        await decide(api, key, confirmed, "confirm")
        theirs, their_key, _ = await airline(other)
        their_member = await member_with(other, 100)
        their_conversion = await requested(other, their_member, theirs, 10)
        summary = await run_job(api, "fail-conversions", datetime.now(UTC) + timedelta(days=30))
        assert summary["counts"] == {"conversions": 0, "points": 0}
        assert (await api.get(f"/v1/partner/conversions/{confirmed['id']}", key=key)).json()[
            "status"
        ] == "confirmed"
        assert (await other.balances(their_member))["held"] == 10
        await decide(other, their_key, their_conversion, "reject", reason="cleanup")


class TestMemberConversions:
    async def test_lists_out_and_in_newest_first_in_pages(self, api: Api) -> None:
        code, key, _ = await airline(api)
        await add_rate(api, code, "convert_in", partner_units_per_point="2")
        member = await member_with(api, 100)
        first = await requested(api, member, code, 10)
        await decide(api, key, first, "confirm")
        second = await requested(api, member, code, 20)
        await decide(api, key, second, "reject", reason="no")
        inbound = (await convert_in(api, key, member, 8)).json()
        response = await api.get(f"/v1/members/{member}/conversions")
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        assert [item["id"] for item in items] == [inbound["id"], second["id"], first["id"]]
        assert [item["status"] for item in items] == ["completed", "rejected", "confirmed"]
        page = (await api.get(f"/v1/members/{member}/conversions", limit=2)).json()
        assert [item["id"] for item in page["items"]] == [inbound["id"], second["id"]]
        rest = (
            await api.get(f"/v1/members/{member}/conversions", limit=2, cursor=page["next_cursor"])
        ).json()
        assert [item["id"] for item in rest["items"]] == [first["id"]]
        assert rest["next_cursor"] is None

    async def test_unknown_member_404_and_scope(self, api: Api) -> None:
        assert problem(await api.get("/v1/members/nobody-here/conversions")) == (404, "member_not_found")
        member = await member_with(api, 1)
        key = await api.key_with("points:earn")
        assert problem(await api.get(f"/v1/members/{member}/conversions", key=key)) == (403, "forbidden")
        reader = await api.key_with("members:read")
        assert (await api.get(f"/v1/members/{member}/conversions", key=reader)).status_code == 200


class TestConversionIn:
    async def test_units_become_points_rounded_down_funded_by_the_partner(self, api: Api) -> None:
        code, key = await partner_with_key(api)
        rate = await add_rate(api, code, "convert_in", partner_units_per_point="3")
        member = await member_with(api, 0)
        response = await api.post(
            "/v1/partner/conversions", {"member": member, "partner_units": 20, "reference": "x-1"}, key=key
        )
        assert response.status_code == 201, response.text
        conversion = response.json()
        assert set(conversion) == CONVERSION_FIELDS
        assert (conversion["direction"], conversion["status"]) == ("in", "completed")
        assert (conversion["points"], conversion["partner_units"], conversion["reference"]) == (6, 20, "x-1")
        assert conversion["rate"]["id"] == rate["id"]
        assert await api.available(member) == 6
        assert (await get_partner(api, code))["funding_points"] == -6
        assert (await api.get(f"/v1/partner/conversions/{conversion['id']}", key=key)).json() == conversion

    async def test_a_prepaid_partner_needs_funding(self, api: Api) -> None:
        code, key = await partner_with_key(api, billing="prepaid")
        await add_rate(api, code, "convert_in", partner_units_per_point="1")
        member = await member_with(api, 0)
        assert problem(await convert_in(api, key, member, 10)) == (422, "partner_funds_insufficient")
        assert await api.available(member) == 0
        await fund(api, code, 10)
        assert (await convert_in(api, key, member, 10)).status_code == 201
        assert (await get_partner(api, code))["funding_points"] == 0
        assert await api.available(member) == 10

    async def test_a_postpaid_partner_stops_at_its_credit_limit(self, api: Api) -> None:
        code, key = await partner_with_key(api, credit_limit_points=5)
        await add_rate(api, code, "convert_in", partner_units_per_point="1")
        member = await member_with(api, 0)
        assert problem(await convert_in(api, key, member, 6)) == (422, "partner_credit_exceeded")
        assert (await convert_in(api, key, member, 5)).status_code == 201
        assert (await get_partner(api, code))["funding_points"] == -5

    async def test_without_a_rate_or_worth_less_than_a_point_is_422(self, api: Api) -> None:
        code, key = await partner_with_key(api)
        member = await member_with(api, 0)
        assert problem(await convert_in(api, key, member, 10)) == (422, "rate_not_effective")
        await add_rate(api, code, "convert_in", partner_units_per_point="5")
        assert problem(await convert_in(api, key, member, 4)) == (422, "conversion_below_minimum")
        assert await api.available(member) == 0
        assert (await get_partner(api, code))["funding_points"] == 0

    async def test_an_unknown_member_is_404(self, api: Api) -> None:
        code, key = await partner_with_key(api)
        await add_rate(api, code, "convert_in", partner_units_per_point="1")
        assert problem(await convert_in(api, key, "nobody-here", 10)) == (404, "member_not_found")
        assert (await get_partner(api, code))["funding_points"] == 0


class TestVerifyWithPendingConversions:
    async def test_a_pending_conversion_is_sound(self, api: Api, db: asyncpg.Connection) -> None:
        """Points held by a pending conversion are legitimately held: verify must not
        flag the member (its hold check counts only point_hold rows)."""
        code, key, _ = await airline(api)
        member = await member_with(api, 100)
        conversion = await requested(api, member, code, 40)
        member_id = await db.fetchval(
            "SELECT m.id FROM member m JOIN program p ON p.id = m.program_id"
            " WHERE p.code = $1 AND m.external_id = $2",
            api.program,
            member,
        )
        try:
            outcomes = await verify(db, VERIFY_CHECKS)
            flagged = [
                (outcome.name, example)
                for outcome in outcomes
                for example in outcome.examples
                if f"member_id={member_id}," in example
            ]
            assert flagged == []
        finally:
            await decide(api, key, conversion, "reject", reason="cleanup")


class TestConversionKeys:
    async def test_a_points_burn_key_requests_conversions(self, api: Api) -> None:
        code, key, _ = await airline(api)
        member = await member_with(api, 100)
        burner = await api.key_with("points:burn")
        conversion = await requested(api, member, code, 10, key=burner)
        assert conversion["status"] == "pending"
        await decide(api, key, conversion, "reject", reason="cleanup")
        assert await api.available(member) == 100


@pytest.fixture
async def short_timeout(migrated_database: str, clock: MovableClock) -> AsyncIterator[httpx.AsyncClient]:
    """The service configured with LEDGER_CONVERSION_TIMEOUT_SECONDS=60."""
    settings = Settings(
        env=Environment.test,
        database_url=None,
        admin_key=SecretStr(BOOTSTRAP_KEY),
        serve_background=False,
        conversion_timeout_seconds=60,
    )
    application = create_app(settings, database_url=migrated_database, clock=clock)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://ledger.test") as client:
            yield client


class TestConfiguredTimeout:
    async def test_the_job_uses_the_services_configured_timeout(
        self, short_timeout: httpx.AsyncClient
    ) -> None:
        api = await new_program(short_timeout)
        code, key, _ = await airline(api)
        member = await member_with(api, 100)
        conversion = await requested(api, member, code, 10)
        created = instant(conversion["created_at"])
        try:
            assert (await run_job(api, "fail-conversions", created + timedelta(seconds=30)))["counts"] == {
                "conversions": 0,
                "points": 0,
            }
            summary = await run_job(api, "fail-conversions", created + timedelta(seconds=61))
            assert summary["counts"] == {"conversions": 1, "points": 10}
            assert await api.balances(member) == {"available": 100, "pending": 0, "held": 0, "debt": 0}
        finally:
            await decide(api, key, conversion, "reject", reason="cleanup")
