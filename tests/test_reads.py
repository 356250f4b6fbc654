"""The read and list endpoints integrators reach for: members (list, find, patch),
orders, a member's orders and holds, rules versions, one entry. Each is tested for
its answer, its paging, another program's key (404, or an empty list) and a key
without the scope (403)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.support import Api

EUR = {"currency": "EUR", "earn": {"base": {"points": 1, "per": "1.00"}, "pending_days": 14}}


def euros(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "EUR"}


def problem(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, str(response.json().get("code"))


async def all_pages(api: Api, path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(50):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        page = (await api.get(path, **query)).json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("too many pages")


class TestListMembers:
    async def test_newest_enrolment_first_in_pages(self, api: Api) -> None:
        now = datetime.now(UTC)
        for days in (3, 1, 2):
            await api.enrol(f"cust-{days}", enrolled_at=(now - timedelta(days=days)).isoformat())
        items = await all_pages(api, "/v1/members", limit=2)
        assert [item["external_id"] for item in items] == ["cust-1", "cust-2", "cust-3"]
        assert "expiring" not in items[0]
        assert items[0]["balances"] == {"available": 0, "pending": 0, "held": 0, "debt": 0}

    async def test_filters_by_prefix_status_and_tier(self, api: Api) -> None:
        await api.use_rules(
            {"earn": {"base": {"points": 1, "per": "1.00"}},
             "tiers": [{"code": "gold", "name": "Gold", "rank": 1, "qualify": {"orders": 100}}]}
        )  # fmt: skip
        for name in ("shop_a-1", "shop_a-2", "shopxa-3", "web-1"):
            await api.enrol(name)
        set_gold = await api.client.put(
            "/v1/members/web-1/tier", json={"code": "gold", "reason": "vip"}, headers=api.headers()
        )
        assert set_gold.status_code == 200, set_gold.text
        prefixed = await all_pages(api, "/v1/members", external_id_prefix="shop_a")
        assert sorted(item["external_id"] for item in prefixed) == ["shop_a-1", "shop_a-2"]
        gold = await all_pages(api, "/v1/members", tier="gold")
        assert [item["external_id"] for item in gold] == ["web-1"]
        assert gold[0]["tier"]["code"] == "gold"
        active = await all_pages(api, "/v1/members", status="active")
        assert len(active) == 4
        assert await all_pages(api, "/v1/members", status="closed") == []

    async def test_a_cursor_belongs_to_its_filters(self, api: Api) -> None:
        for name in ("a-1", "a-2", "b-1"):
            await api.enrol(name)
        cursor = (await api.get("/v1/members", limit=1)).json()["next_cursor"]
        response = await api.get("/v1/members", limit=1, cursor=cursor, external_id_prefix="a")
        assert problem(response) == (400, "invalid_cursor")

    async def test_another_program_sees_none_and_the_scope_is_required(self, api: Api, other: Api) -> None:
        await api.enrol("mine-1")
        assert await all_pages(other, "/v1/members") == []
        key = await api.key_with("points:earn")
        assert problem(await api.get("/v1/members", key=key)) == (403, "forbidden")


class TestPatchMember:
    async def test_merge_patch_sets_clears_and_merges(self, api: Api) -> None:
        await api.enrol("patch-1", birthday="1990-04-17", metadata={"city": "Berlin", "note": "x"})
        response = await api.client.patch(
            "/v1/members/patch-1",
            content=b'{"metadata": {"note": null, "lang": "de"}}',
            headers={**api.headers(), "Content-Type": "application/merge-patch+json"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["metadata"] == {"city": "Berlin", "lang": "de"}
        assert response.json()["birthday"] == "1990-04-17"
        cleared = await api.client.patch(
            "/v1/members/patch-1", json={"birthday": None, "metadata": None}, headers=api.headers()
        )
        assert (cleared.json()["birthday"], cleared.json()["metadata"]) == (None, {})

    async def test_other_fields_are_refused_and_change_nothing(self, api: Api) -> None:
        await api.enrol("patch-2")
        for body in ({"external_id": "renamed"}, {"status": "closed"}, {"birthday": 19900417}):
            response = await api.client.patch("/v1/members/patch-2", json=body, headers=api.headers())
            assert problem(response) == (422, "validation_error"), body
        assert (await api.get("/v1/members/patch-2")).json()["external_id"] == "patch-2"

    async def test_another_programs_member_is_404_and_the_scope_is_required(
        self, api: Api, other: Api
    ) -> None:
        await api.enrol("patch-3")
        response = await other.client.patch(
            "/v1/members/patch-3", json={"birthday": None}, headers=other.headers()
        )
        assert problem(response) == (404, "member_not_found")
        reader = await api.key_with("members:read")
        response = await api.client.patch("/v1/members/patch-3", json={}, headers=api.headers(reader))
        assert problem(response) == (403, "forbidden")


class TestOrders:
    async def test_an_order_as_recorded_with_its_refunds(self, api: Api) -> None:
        await api.use_rules(EUR)
        member = await api.enrol()
        lines = [
            {"sku": "SHOE-1", "category": "shoes", "quantity": 1, "unit_price": euros("80.00")},
            {"sku": "SOCK-1", "quantity": 2, "unit_price": euros("10.00")},
        ]
        placed = await api.order(member, "100.00", order_id="read-1", lines=lines, channel="app")
        assert placed.status_code == 201, placed.text
        await api.refund("read-1", refund_id="rf-a", lines=[{"sku": "SOCK-1", "quantity": 1}])
        order = (await api.get("/v1/orders/read-1")).json()
        assert order["member"] == member
        assert order["total"] == {"amount": "100.00", "currency": "EUR"}
        assert [line["sku"] for line in order["lines"]] == ["SHOE-1", "SOCK-1"]
        assert order["channel"] == "app"
        assert (order["points"], order["points_refunded"], order["status"]) == (100, 10, "pending")
        assert order["breakdown"] == placed.json()["breakdown"]
        assert order["entry_id"] == placed.json()["entry_id"]
        assert [(r["refund_id"], r["amount"], r["points_reversed"]) for r in order["refunds"]] == [
            ("rf-a", {"amount": "10.00", "currency": "EUR"}, 10)
        ]

    async def test_unknown_and_another_programs_order_is_404(self, api: Api, other: Api) -> None:
        await api.use_rules(EUR)
        await api.order(await api.enrol(), "5.00", order_id="read-2")
        assert problem(await api.get("/v1/orders/nope")) == (404, "order_not_found")
        assert problem(await other.get("/v1/orders/read-2")) == (404, "order_not_found")
        key = await api.key_with("points:earn")
        assert problem(await api.get("/v1/orders/read-2", key=key)) == (403, "forbidden")

    async def test_a_members_orders_newest_payment_first(self, api: Api, other: Api) -> None:
        await api.use_rules(EUR)
        member = await api.enrol()
        now = datetime.now(UTC)
        for days in (5, 1, 3):
            await api.order(
                member, "1.00", order_id=f"m-{days}", paid_at=(now - timedelta(days=days)).isoformat()
            )
        items = await all_pages(api, f"/v1/members/{member}/orders", limit=2)
        assert [item["order_id"] for item in items] == ["m-1", "m-3", "m-5"]
        assert problem(await other.get(f"/v1/members/{member}/orders")) == (404, "member_not_found")


class TestHolds:
    async def test_a_members_holds_newest_first_by_status(self, api: Api, other: Api) -> None:
        member = await api.enrol()
        await api.award(member, 100)
        first = (await api.post(f"/v1/members/{member}/holds", {"points": 10})).json()
        second = (await api.post(f"/v1/members/{member}/holds", {"points": 20})).json()
        await api.post(f"/v1/holds/{first['hold_id']}/release", {})
        everything = await all_pages(api, f"/v1/members/{member}/holds", limit=1)
        assert [h["hold_id"] for h in everything] == [second["hold_id"], first["hold_id"]]
        active = await all_pages(api, f"/v1/members/{member}/holds", status="active")
        assert [h["hold_id"] for h in active] == [second["hold_id"]]
        bad = await api.get(f"/v1/members/{member}/holds", status="lost")
        assert problem(bad) == (422, "validation_error")
        assert problem(await other.get(f"/v1/members/{member}/holds")) == (404, "member_not_found")


class TestRulesVersions:
    async def test_every_version_newest_first(self, api: Api, other: Api) -> None:
        second = await api.use_rules(EUR)
        items = await all_pages(api, "/v1/rules/versions", limit=1)
        assert [(v["version"], v["active"]) for v in items] == [(second, True), (1, False)]
        assert items[0]["activated_at"] is not None
        assert [v["version"] for v in await all_pages(other, "/v1/rules/versions")] == [1]
        key = await api.key_with("members:read")
        assert problem(await api.get("/v1/rules/versions", key=key)) == (403, "forbidden")


class TestEntries:
    async def test_an_entry_as_the_post_answered_it(self, api: Api, other: Api) -> None:
        giver, taker = await api.enrol("ent-b"), await api.enrol("ent-a")
        await api.award(giver, 100)
        moved = await api.transfer(giver, taker, 30)
        entry = await api.get(f"/v1/entries/{moved.json()['id']}")
        assert entry.status_code == 200
        # as the POST answered, plus its place in the chain (not reached yet)
        assert entry.json() == {**moved.json(), "sequence": None, "hash": None, "canonical": None}
        missing = "00000000-0000-7000-8000-000000000000"
        assert problem(await api.get(f"/v1/entries/{missing}")) == (404, "entry_not_found")
        assert problem(await other.get(f"/v1/entries/{moved.json()['id']}")) == (404, "entry_not_found")
        key = await api.key_with("points:earn")
        assert problem(await api.get(f"/v1/entries/{moved.json()['id']}", key=key)) == (403, "forbidden")
