"""Campaign budgets over HTTP: a budgeted multiplier or bonus adds points until its
budget is spent, then is left out of orders (`budget exhausted`); concurrent orders
spend exactly the budget; refunds give back; GET /v1/rules/budgets shows it all."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from app.ledger.verify import CHECKS, verify
from tests.partners.helpers import add_rate, onboard, partner_earning, partner_key, partner_order
from tests.support import Api, new_program, unique


def rules(*, budget: dict[str, Any] | None = None, **earn: Any) -> dict[str, Any]:
    """1 point per 1.00 EUR, and `double` (x2 on every order) with `budget`."""
    double: dict[str, Any] = {"id": "double", "factor": "2"}
    if budget is not None:
        double["budget"] = budget
    return {
        "currency": "EUR",
        "earn": {"base": {"points": 1, "per": "1.00"}, "multipliers": [double], **earn},
    }


def paid_at() -> str:
    return (datetime.now(UTC) - timedelta(minutes=5)).isoformat()


async def order(api: Api, member: str, total: str, **fields: Any) -> dict[str, Any]:
    response = await api.order(member, total, paid_at=paid_at(), **fields)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def budgets(api: Api, key: str | None = None) -> dict[str, dict[str, Any]]:
    response = await api.get("/v1/rules/budgets", key=key)
    assert response.status_code == 200, response.text
    return {item["budget"]: item for item in response.json()["items"]}


def line(result: dict[str, Any], rule: str) -> dict[str, Any]:
    (found,) = [item for item in result["breakdown"] if item["rule"] == rule]
    assert isinstance(found, dict)
    return found


async def sound(db: asyncpg.Connection) -> None:
    assert all(outcome.mismatches == 0 for outcome in await verify(db))


class TestBudgetedMultiplier:
    async def test_orders_spend_the_budget_then_earn_without_the_rule(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        await api.use_rules(rules(budget={"points": 25}))
        member = await api.enrol()
        first = await order(api, member, "10.00")
        assert first["points"] == 20
        assert line(first, "double") == {"rule": "double", "points": 10, "detail": "x2 (always)"}
        assert (await order(api, member, "10.00"))["points"] == 20
        spent = await budgets(api)
        assert spent["earn.multipliers.double"] | {"created_at": None, "updated_at": None} == {
            "budget": "earn.multipliers.double",
            "points": 25,
            "per_member": None,
            "used": 20,
            "remaining": 5,
            "active": True,
            "created_at": None,
            "updated_at": None,
        }
        # 10 more can't come out of the 5 left: the order earns its base only
        third = await order(api, member, "10.00")
        assert third["points"] == 10
        assert line(third, "double") == {"rule": "double", "points": 0, "detail": "budget exhausted"}
        assert sum(item["points"] for item in third["breakdown"]) == 10
        # 5 more do
        assert (await order(api, member, "5.00"))["points"] == 10
        assert (await budgets(api))["earn.multipliers.double"] | {"used": 25, "remaining": 0} == (
            await budgets(api)
        )["earn.multipliers.double"]
        assert await api.available(member) == 20 + 20 + 10 + 10
        await sound(db)

    async def test_the_statement_keeps_the_explanation(self, api: Api) -> None:
        await api.use_rules(rules(budget={"points": 1}))
        member = await api.enrol()
        result = await order(api, member, "10.00")
        statement = (await api.get(f"/v1/members/{member}/entries")).json()["items"]
        assert {"rule": "double", "points": 0, "detail": "budget exhausted"} in statement[0]["explanation"]
        assert result["points"] == 10

    async def test_a_replayed_order_takes_nothing_more(self, api: Api) -> None:
        await api.use_rules(rules(budget={"points": 100}))
        member = await api.enrol()
        body = {"order_id": unique("o"), "member": member, "total": {"amount": "10.00", "currency": "EUR"}}
        body["paid_at"] = paid_at()
        first = await api.post("/v1/orders", body, idempotency_key="same")
        again = await api.post("/v1/orders", body, idempotency_key="same")
        assert (first.status_code, again.status_code) == (201, 201)
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert (await budgets(api))["earn.multipliers.double"]["used"] == 10

    async def test_caps_clip_the_last_added_points_first(self, api: Api) -> None:
        document = rules(budget={"points": 1000}, caps={"per_order": 15})
        document["earn"]["bonuses"] = [{"id": "welcome", "points": 3, "budget": {"points": 1000}}]
        await api.use_rules(document)
        member = await api.enrol()
        result = await order(api, member, "10.00")
        # base 10, double +10, welcome +3 = 23, capped to 15: the bonus and 5 of the double go
        assert result["points"] == 15
        spent = await budgets(api)
        assert spent["earn.multipliers.double"]["used"] == 5
        assert spent["earn.bonuses.welcome"]["used"] == 0

    async def test_the_preview_leaves_out_a_spent_budget(self, api: Api) -> None:
        await api.use_rules(rules(budget={"points": 10}))
        member = await api.enrol()
        body = {"order_id": unique("o"), "member": member, "total": {"amount": "10.00", "currency": "EUR"}}
        body["paid_at"] = paid_at()
        before = (await api.post("/v1/orders/preview", body, idempotency_key=None)).json()
        assert before["points"] == 20
        await order(api, member, "10.00")
        after = (await api.post("/v1/orders/preview", body, idempotency_key=None)).json()
        assert after["points"] == 10
        assert line(after, "double")["detail"] == "budget exhausted"
        assert (await budgets(api))["earn.multipliers.double"]["used"] == 10  # a preview takes nothing


class TestBudgetedBonus:
    async def test_a_bonus_is_paid_while_its_budget_lasts(self, api: Api) -> None:
        document = rules()
        document["earn"]["bonuses"] = [{"id": "launch", "points": 100, "budget": {"points": 250}}]
        await api.use_rules(document)
        member = await api.enrol()
        paid = [(await order(api, member, "1.00"))["points"] for _ in range(3)]
        assert paid == [102, 102, 2]
        spent = (await budgets(api))["earn.bonuses.launch"]
        assert (spent["used"], spent["remaining"]) == (200, 50)


class TestPartnerSections:
    async def test_a_partner_s_budgeted_rule_spends_its_own_budget(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        code = await onboard(api, billing="postpaid")
        await add_rate(api, code, "earn", price_per_point="0.01")
        key = await partner_key(api, code)
        await partner_earning(
            api, code, multipliers=[{"id": "double", "factor": "2", "budget": {"points": 15}}]
        )
        member = await api.enrol()
        first = await partner_order(api, key, member, "10.00")
        assert first.status_code == 201, first.text
        assert first.json()["points"] == 20
        second = await partner_order(api, key, member, "10.00")
        assert second.json()["points"] == 10
        assert line(second.json(), "double")["detail"] == "budget exhausted"
        spent = (await budgets(api))[f"partner_earn.{code}.multipliers.double"]
        assert (spent["used"], spent["remaining"], spent["active"]) == (10, 5, True)
        await sound(db)


class TestPerMember:
    async def test_each_member_gets_at_most_their_share(self, api: Api, db: asyncpg.Connection) -> None:
        await api.use_rules(rules(budget={"points": 1000, "per_member": 15}))
        alice, bob = await api.enrol(), await api.enrol()
        assert (await order(api, alice, "10.00"))["points"] == 20
        second = await order(api, alice, "10.00")
        assert second["points"] == 10
        assert line(second, "double") == {
            "rule": "double",
            "points": 0,
            "detail": "budget exhausted: this member's share (15) is spent",
        }
        assert (await order(api, alice, "5.00"))["points"] == 10  # 5 more fit her share
        assert (await order(api, bob, "10.00"))["points"] == 20
        spent = (await budgets(api))["earn.multipliers.double"]
        assert (spent["per_member"], spent["used"], spent["remaining"]) == (15, 25, 975)
        await sound(db)


class TestRefunds:
    async def test_refunds_give_back_what_they_take_back(self, api: Api, db: asyncpg.Connection) -> None:
        await api.use_rules(rules(budget={"points": 20, "per_member": 20}))
        member = await api.enrol()
        placed = await order(api, member, "10.00")
        assert (await budgets(api))["earn.multipliers.double"]["used"] == 10
        half = await api.refund(placed["order_id"], amount={"amount": "5.00", "currency": "EUR"})
        assert half.status_code == 201, half.text
        assert half.json()["points_reversed"] == 10
        assert (await budgets(api))["earn.multipliers.double"]["used"] == 5
        rest = await api.refund(placed["order_id"], amount={"amount": "5.00", "currency": "EUR"})
        assert rest.status_code == 201
        assert (await budgets(api))["earn.multipliers.double"]["used"] == 0
        # the member's share came back too: 20 more for this member
        assert (await order(api, member, "20.00"))["points"] == 40
        await sound(db)

    async def test_a_line_multiplier_gets_back_only_what_its_lines_took(self, api: Api) -> None:
        document = rules()
        document["earn"]["multipliers"] = [
            {"id": "shoes", "factor": "3", "when": {"category": ["shoes"]}, "budget": {"points": 1000}}
        ]
        await api.use_rules(document)
        member = await api.enrol()
        lines = [
            {
                "sku": "SHOE",
                "category": "shoes",
                "quantity": 1,
                "unit_price": {"amount": "10.00", "currency": "EUR"},
            },
            {
                "sku": "SOCK",
                "category": "socks",
                "quantity": 2,
                "unit_price": {"amount": "5.00", "currency": "EUR"},
            },
        ]
        placed = await order(api, member, "20.00", lines=lines)
        assert placed["points"] == 40  # 20 base, shoes x3 adds 20
        assert (await budgets(api))["earn.multipliers.shoes"]["used"] == 20
        socks = await api.refund(placed["order_id"], lines=[{"sku": "SOCK", "quantity": 2}])
        assert socks.json()["points_reversed"] == 10
        assert (await budgets(api))["earn.multipliers.shoes"]["used"] == 20
        shoe = await api.refund(placed["order_id"], lines=[{"sku": "SHOE", "quantity": 1}])
        assert shoe.json()["points_reversed"] == 30
        assert (await budgets(api))["earn.multipliers.shoes"]["used"] == 0


class TestVersions:
    async def test_a_new_version_with_the_rule_spends_the_same_budget(self, api: Api) -> None:
        await api.use_rules(rules(budget={"points": 30}))
        member = await api.enrol()
        await order(api, member, "10.00")
        await api.use_rules(rules(budget={"points": 50}))  # raised: 20 more to spend
        spent = (await budgets(api))["earn.multipliers.double"]
        assert (spent["points"], spent["used"], spent["remaining"]) == (50, 10, 40)
        await api.use_rules(rules(budget={"points": 5}))  # lowered under what is used
        spent = (await budgets(api))["earn.multipliers.double"]
        assert (spent["points"], spent["used"], spent["remaining"]) == (5, 10, 0)
        assert (await order(api, member, "1.00"))["points"] == 1
        await api.use_rules(rules())  # no budget: the rule is no longer limited
        spent = (await budgets(api))["earn.multipliers.double"]
        assert (spent["active"], spent["used"]) == (False, 10)
        assert (await order(api, member, "10.00"))["points"] == 20
        assert (await budgets(api))["earn.multipliers.double"]["used"] == 10

    async def test_a_document_with_a_bad_budget_is_invalid_rules(self, api: Api) -> None:
        for budget, field in (
            ({"points": 0}, "body.earn.multipliers.0.budget.points"),
            ({"points": 10, "per_member": 11}, "body.earn.multipliers.0.budget"),
            ({"points": "10"}, "body.earn.multipliers.0.budget.points"),
            ({"points": 10, "extra": 1}, "body.earn.multipliers.0.budget.extra"),
        ):
            response = await api.post("/v1/rules", rules(budget=budget), idempotency_key=None)
            assert response.status_code == 422, budget
            assert response.json()["code"] == "invalid_rules"
            assert field in [error["field"] for error in response.json()["errors"]], response.json()


class TestListBudgets:
    async def test_needs_rules_read_and_shows_only_the_programs_own(self, api: Api, client: Any) -> None:
        await api.use_rules(rules(budget={"points": 30}))
        assert (await api.client.get("/v1/rules/budgets")).status_code == 401
        forbidden = await api.get("/v1/rules/budgets", key=await api.key_with("members:read"))
        assert forbidden.status_code == 403
        assert forbidden.json()["code"] == "forbidden"
        assert "earn.multipliers.double" in await budgets(api, await api.key_with("rules:read"))
        other = await new_program(client)
        assert await budgets(other) == {}

    async def test_pages_by_name(self, api: Api) -> None:
        document = rules(budget={"points": 30})
        document["earn"]["bonuses"] = [
            {"id": f"b{n}", "points": 1, "budget": {"points": 10 + n}} for n in range(3)
        ]
        await api.use_rules(document)
        first = (await api.get("/v1/rules/budgets", limit=2)).json()
        assert [item["budget"] for item in first["items"]] == ["earn.bonuses.b0", "earn.bonuses.b1"]
        rest = (await api.get("/v1/rules/budgets", limit=2, cursor=first["next_cursor"])).json()
        assert [item["budget"] for item in rest["items"]] == ["earn.bonuses.b2", "earn.multipliers.double"]
        assert rest["next_cursor"] is None
        bad = await api.get("/v1/rules/budgets", cursor="not-a-cursor")
        assert (bad.status_code, bad.json()["code"]) == (400, "invalid_cursor")


# --- concurrency ------------------------------------------------------------------------------------


class TestConcurrentOrders:
    @pytest.mark.parametrize(("budget", "orders", "charge"), [(50, 30, 10), (100, 30, 7)])
    async def test_concurrent_orders_spend_exactly_the_budget(
        self, api: Api, db: asyncpg.Connection, budget: int, orders: int, charge: int
    ) -> None:
        await api.use_rules(rules(budget={"points": budget}))
        members = [await api.enrol() for _ in range(orders)]
        total = f"{charge}.00"
        responses = await asyncio.gather(*(api.order(member, total, paid_at=paid_at()) for member in members))
        assert [response.status_code for response in responses] == [201] * orders
        points = [response.json()["points"] for response in responses]
        lucky = budget // charge
        assert sorted(points) == [charge] * (orders - lucky) + [2 * charge] * lucky
        spent = (await budgets(api))["earn.multipliers.double"]
        assert (spent["used"], spent["remaining"]) == (lucky * charge, budget - lucky * charge)
        # what the members hold agrees, order by order
        assert [await api.available(member) for member in members] == points
        await sound(db)

    async def test_concurrent_orders_of_mixed_sizes_never_spend_more_than_the_budget(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        # Charges of 3, 5, 7 and 11 against 16 slices of 6 or 7: the takes from one
        # slice, from several, the waits and the takes under every slice's lock
        # interleave; whatever order they land in, the budget ends exact.
        await api.use_rules(rules(budget={"points": 100}))
        sizes = [3, 5, 7, 11] * 10
        members = [await api.enrol() for _ in sizes]
        responses = await asyncio.gather(
            *(
                api.order(member, f"{size}.00", paid_at=paid_at())
                for member, size in zip(members, sizes, strict=True)
            )
        )
        assert [response.status_code for response in responses] == [201] * len(sizes)
        extra = [response.json()["points"] - size for response, size in zip(responses, sizes, strict=True)]
        assert all(points in (0, size) for points, size in zip(extra, sizes, strict=True))
        spent = (await budgets(api))["earn.multipliers.double"]
        assert spent["used"] == sum(extra) <= 100
        assert spent["remaining"] == 100 - sum(extra)
        # every order refused the double would not have fitted in what was left at the end
        assert all(
            size > spent["remaining"] for points, size in zip(extra, sizes, strict=True) if points == 0
        )
        await sound(db)

    async def test_concurrent_orders_of_one_member_against_their_share(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        await api.use_rules(rules(budget={"points": 10**6, "per_member": 25}))
        member = await api.enrol()
        responses = await asyncio.gather(*(api.order(member, "5.00", paid_at=paid_at()) for _ in range(12)))
        assert [response.status_code for response in responses] == [201] * 12
        assert sorted(response.json()["points"] for response in responses) == [5] * 7 + [10] * 5
        assert (await budgets(api))["earn.multipliers.double"]["used"] == 25
        await sound(db)


class TestSlices:
    SLICES = """
        SELECT s.remaining FROM rules_budget_slice s
          JOIN rules_budget b ON b.program_id = s.program_id AND b.id = s.budget_id
          JOIN program p ON p.id = b.program_id
         WHERE p.code = $1 ORDER BY s.slot"""

    async def slices(self, api: Api, db: asyncpg.Connection) -> list[int]:
        return [row["remaining"] for row in await db.fetch(self.SLICES, api.program)]

    async def test_slices_worn_below_a_charge_still_cover_it_together(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        # 100 points over 16 slices: slots 0-3 hold 7, the others 6. Charges of 7 take
        # the four sevens; the fifth takes 6 from slot 4 and 1 from slot 5 (the fullest
        # free slices first), without locking every slice.
        await api.use_rules(rules(budget={"points": 100}))
        assert await self.slices(api, db) == [7] * 4 + [6] * 12
        for _ in range(5):
            assert (await order(api, await api.enrol(), "7.00"))["points"] == 14
        assert await self.slices(api, db) == [0] * 5 + [5] + [6] * 10
        for _ in range(9):
            assert (await order(api, await api.enrol(), "7.00"))["points"] == 14
        assert sum(await self.slices(api, db)) == 2
        assert (await order(api, await api.enrol(), "7.00"))["points"] == 7  # 2 left can't cover 7
        assert sum(await self.slices(api, db)) == 2
        await sound(db)

    async def test_a_take_under_every_slice_s_lock_gathers_what_is_left_in_slices_that_cover_it(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        await api.use_rules(rules(budget={"points": 79}))  # 15 slices of 5, one of 4
        budget_id = await db.fetchval(
            "SELECT b.id FROM rules_budget b JOIN program p ON p.id = b.program_id WHERE p.code = $1",
            api.program,
        )
        program_id = await db.fetchval("SELECT id FROM program WHERE code = $1", api.program)

        async def spread(change: int, at_least: int = 1) -> int | None:
            left: int | None = await db.fetchval(
                "SELECT rules_budget_spread(p_program_id => $1, p_budget_id => $2, p_change => $3,"
                " p_at_least => $4)",
                program_id,
                budget_id,
                change,
                at_least,
            )
            return left

        transaction = db.transaction()
        await transaction.start()
        try:
            # 72 left: ten slices of 8 or 7 (not sixteen of 4 or 5), the rest empty
            assert await spread(-7, 7) == 72
            assert await self.slices(api, db) == [8, 8] + [7] * 8 + [0] * 6
            # by default, every slice evenly
            assert await spread(0) == 72
            assert await self.slices(api, db) == [5] * 8 + [4] * 8
            # a take that what is left can't cover changes nothing
            assert await spread(-73, 73) is None
            assert await self.slices(api, db) == [5] * 8 + [4] * 8
        finally:
            await transaction.rollback()


class TestSimulation:
    async def test_a_draft_s_budget_is_spent_by_the_replayed_orders_in_turn(self, api: Api) -> None:
        await api.use_rules(rules())
        alice, bob = await api.enrol(), await api.enrol()
        start = datetime.now(UTC) - timedelta(hours=1)
        for member in (alice, bob, alice):
            await order(api, member, "10.00")
        draft = await api.post(
            "/v1/rules", rules(budget={"points": 25, "per_member": 10}), idempotency_key=None
        )
        version = draft.json()["version"]
        end = datetime.now(UTC) + timedelta(minutes=1)
        response = await api.post(
            f"/v1/rules/{version}/simulate",
            {"from": start.isoformat(), "to": end.isoformat()},
            idempotency_key=None,
        )
        assert response.status_code == 200, response.text
        result = response.json()
        # alice's second order finds her share of 10 spent; the budget itself had 5 left
        assert (result["actual_points"], result["simulated_points"]) == (60, 50)
        split = {item["rule"]: (item["actual_points"], item["simulated_points"]) for item in result["rules"]}
        assert split["double"] == (30, 20)
        assert await budgets(api) == {}  # a draft's budgets exist once it is activated


class TestVerify:
    async def test_verify_accounts_for_every_point_of_a_budget(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        (check,) = [check for check in CHECKS if check.name.startswith("every campaign budget")]
        await api.use_rules(rules(budget={"points": 100}))
        member = await api.enrol()
        placed = await order(api, member, "10.00")
        assert (
            await api.refund(placed["order_id"], amount={"amount": "3.00", "currency": "EUR"})
        ).status_code == 201
        assert (await budgets(api))["earn.multipliers.double"]["used"] == 7
        assert await db.fetch(check.sql) == []
        transaction = db.transaction()
        await transaction.start()
        try:  # a point appears from nowhere in one slice: verify names the budget
            await db.execute(
                "UPDATE rules_budget_slice SET remaining = remaining + 1 WHERE slot = 0 AND budget_id ="
                " (SELECT b.id FROM rules_budget b JOIN program p ON p.id = b.program_id WHERE p.code = $1)",
                api.program,
            )
            assert [row["key"] for row in await db.fetch(check.sql)] == ["earn.multipliers.double"]
        finally:
            await transaction.rollback()
