"""Partner operations in the event log (after chaining) and in /metrics."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from tests.partners.helpers import (
    add_rate,
    convert_in,
    convert_out,
    earned,
    fund,
    member_with,
    onboard,
    partner_earning,
    partner_with_key,
    redeem_at,
    run_job,
)
from tests.support import Api, chain_program


async def events(api: Api, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        extra = {"limit": 500, **params, **({"cursor": cursor} if cursor else {})}
        response = await api.get("/v1/events", **extra)
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items


class TestPartnerEvents:
    async def test_every_partner_operation_is_in_the_event_log(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        code, key = await partner_with_key(
            api, roles=("earn", "redeem", "convert_out", "convert_in", "donation")
        )
        await add_rate(api, code, "earn", price_per_point="0.01")
        await add_rate(api, code, "redeem", price_per_point="0.01")
        await add_rate(api, code, "convert_out", partner_units_per_point="1")
        await add_rate(api, code, "convert_in", partner_units_per_point="1")
        prepaid = await onboard(api, billing="prepaid")
        await partner_earning(api, code)
        member = await member_with(api, 100)

        funding = (await fund(api, prepaid, 50)).json()
        order = await earned(api, key, member, "10.00")
        redemption = (await redeem_at(api, key, member, 5)).json()
        donation = (await api.post(f"/v1/members/{member}/donations", {"partner": code, "points": 5})).json()
        inbound = (await convert_in(api, key, member, 3)).json()
        confirmed = (await convert_out(api, member, code, 10)).json()
        await api.post(f"/v1/partner/conversions/{confirmed['id']}/confirm", {}, key=key)
        rejected = (await convert_out(api, member, code, 10)).json()
        await api.post(f"/v1/partner/conversions/{rejected['id']}/reject", {"reason": "no"}, key=key)
        failed = (await convert_out(api, member, code, 10)).json()
        summary = await run_job(api, "fail-conversions", datetime.now(UTC) + timedelta(days=8))
        assert summary["counts"] == {"conversions": 1, "points": 10}
        await chain_program(db, api.program)
        statement = await api.post(
            f"/v1/partners/{code}/statements",
            {"period_end": datetime.now(UTC).isoformat()},
            idempotency_key=None,
        )
        assert statement.status_code == 201, statement.text
        await chain_program(db, api.program)

        log = await events(api)
        by_type: dict[str, list[dict[str, Any]]] = {}
        for event in log:
            by_type.setdefault(event["type"], []).append(event)
        assert [event["sequence"] for event in log] == list(range(1, len(log) + 1))
        expected = {
            "points.earn",
            "points.redemption",
            "points.donation",
            "points.conversion",
            "points.funding",
            "conversion.requested",
            "conversion.confirmed",
            "conversion.rejected",
            "conversion.failed",
            "partner.statement_closed",
        }
        assert expected <= set(by_type), sorted(set(by_type))

        def ids(type_: str, field: str = "id") -> list[Any]:
            return [event["data"].get(field) for event in by_type[type_]]

        assert funding["entry_id"] in ids("points.funding")
        assert order["entry_id"] in ids("points.earn")
        assert redemption["id"] in ids("points.redemption")
        assert donation["id"] in ids("points.donation")
        assert inbound["id"] in ids("points.conversion")
        assert sorted(ids("conversion.requested")) == sorted([confirmed["id"], rejected["id"], failed["id"]])
        assert ids("conversion.confirmed") == [confirmed["id"]]
        assert ids("conversion.rejected") == [rejected["id"]]
        assert ids("conversion.failed") == [failed["id"]]
        assert [event["data"]["status"] for event in by_type["conversion.failed"]] == ["failed"]
        assert ids("partner.statement_closed") == [statement.json()["id"]]
        assert by_type["partner.statement_closed"][0]["data"]["partner"] == code

    async def test_conversion_events_concern_the_member(self, api: Api, db: asyncpg.Connection) -> None:
        code, key = await partner_with_key(api)
        await add_rate(api, code, "convert_out", partner_units_per_point="1")
        member = await member_with(api, 100)
        bystander = await member_with(api, 100)
        conversion = (await convert_out(api, member, code, 10)).json()
        await api.post(f"/v1/partner/conversions/{conversion['id']}/confirm", {}, key=key)
        await chain_program(db, api.program)
        mine = await events(api, member=member, type="conversion.*")
        assert [event["type"] for event in mine] == ["conversion.requested", "conversion.confirmed"]
        assert await events(api, member=bystander, type="conversion.*") == []


def gauge(text: str, name: str, program: str, partner: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line[line.index("{") : line.index("}")]))
        if labels.get("program") == program and labels.get("partner") == partner:
            return float(line.rsplit(" ", 1)[1])
    return None


class TestPartnerMetrics:
    async def test_metrics_show_each_partners_funding_and_payable(self, api: Api) -> None:
        code, key = await partner_with_key(api, billing="prepaid")
        await add_rate(api, code, "redeem", price_per_point="0.01")
        await partner_earning(api, code)
        await fund(api, code, 100)
        member = await api.enrol()
        await earned(api, key, member, "30.00")
        assert (await redeem_at(api, key, member, 12)).status_code == 201
        response = await api.client.get("/metrics")
        assert response.status_code == 200, response.text
        assert gauge(response.text, "points_ledger_partner_funding_points", api.program, code) == 70
        assert gauge(response.text, "points_ledger_partner_payable_points", api.program, code) == 12
        idle = await onboard(api)
        again = (await api.client.get("/metrics")).text
        assert gauge(again, "points_ledger_partner_funding_points", api.program, idle) == 0
