"""POST /v1/partners/{code}/statements/{id}/payment: a postpaid partner's credit limit
counts what it gave out on credit and has not paid for, so paying a statement frees
that much credit again."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from tests.partners.helpers import (
    add_rate,
    get_partner,
    partner_earning,
    partner_order,
    partner_with_key,
    problem,
)
from tests.support import Api, MovableClock, chain_program


async def close_now(api: Api, clock: MovableClock, code: str) -> dict[str, Any]:
    clock.offset = timedelta(minutes=1)  # the period ends at a real "now", already passed
    closed = await api.post(
        f"/v1/partners/{code}/statements", {"period_end": datetime.now(UTC).isoformat()}, idempotency_key=None
    )
    assert closed.status_code == 201, closed.text
    body: dict[str, Any] = closed.json()
    return body


class TestPayStatement:
    async def test_paying_a_statement_frees_its_points_of_credit(
        self, api: Api, db: asyncpg.Connection, clock: MovableClock
    ) -> None:
        code, key = await partner_with_key(api, roles=("earn",), credit_limit_points=100)
        await add_rate(api, code, "earn", price_per_point="0.01")
        await partner_earning(api, code)
        member = await api.enrol()
        for _ in range(10):
            assert (await partner_order(api, key, member, "10.00")).status_code == 201
        assert problem(await partner_order(api, key, member, "1.00")) == (422, "partner_credit_exceeded")
        await chain_program(db, api.program)
        statement = await close_now(api, clock, code)
        assert statement["sections"]["earn"]["points"] == 100
        assert statement["paid_at"] is None

        paid = await api.post(
            f"/v1/partners/{code}/statements/{statement['id']}/payment",
            {"reference": "bank-1"},
            idempotency_key=None,
        )
        assert paid.status_code == 201, paid.text
        assert (paid.json()["points"], paid.json()["paid_points"]) == (100, 100)
        partner = await get_partner(api, code)
        assert (partner["funding_points"], partner["paid_points"]) == (-100, 100)
        again = await api.post(
            f"/v1/partners/{code}/statements/{statement['id']}/payment",
            {"reference": "bank-1"},
            idempotency_key=None,
        )
        assert problem(again) == (409, "statement_paid"), again.text
        read = await api.get(f"/v1/partners/{code}/statements/{statement['id']}")
        assert read.json()["paid_at"] is not None

        clock.offset = timedelta()
        for _ in range(10):  # 100 more on credit: the limit again
            assert (await partner_order(api, key, member, "10.00")).status_code == 201
        assert problem(await partner_order(api, key, member, "1.00")) == (422, "partner_credit_exceeded")

    async def test_a_prepaid_partner_pays_in_advance(
        self, api: Api, db: asyncpg.Connection, clock: MovableClock
    ) -> None:
        code, _ = await partner_with_key(api, roles=("earn",), billing="prepaid")
        statement = await close_now(api, clock, code)
        response = await api.post(
            f"/v1/partners/{code}/statements/{statement['id']}/payment",
            {"reference": "x"},
            idempotency_key=None,
        )
        assert problem(response) == (422, "partner_not_postpaid"), response.text

    async def test_an_unknown_statement_is_404(self, api: Api) -> None:
        code, _ = await partner_with_key(api, roles=("earn",))
        response = await api.post(
            f"/v1/partners/{code}/statements/{uuid.uuid4()}/payment",
            {"reference": "x"},
            idempotency_key=None,
        )
        assert problem(response) == (404, "statement_not_found"), response.text
