"""docs/tiers.md's "A member's year", played through the API with a moved clock: if
the document's table and the service disagree, this fails."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.support import Api, MovableClock, unique

RULES: dict[str, Any] = {
    "currency": "EUR",
    "earn": {
        "base": {"points": 1, "per": "1.00"},
        "multipliers": [{"id": "gold", "factor": "1.5", "when": {"tier": ["gold"]}}],
    },
    "tiers": [
        {"code": "silver", "name": "Silver", "rank": 1, "qualify": {"orders": 3}, "retain": {"orders": 2}},
        {
            "code": "gold",
            "name": "Gold",
            "rank": 2,
            "qualify": {"orders": 6, "spend": "300.00"},
            "retain": {"orders": 4},
        },
    ],
    "tier_policy": {
        "window": "rolling_12_months",
        "term_months": 12,
        "downgrade": "one_down",
        "grace_days": 30,
        "keep_with_points": {"gold": 1000},
    },
}


def at(day: str) -> datetime:
    return datetime.fromisoformat(f"{day}T10:00:00+00:00")


def move_to(clock: MovableClock, instant: datetime) -> None:
    clock.offset = instant - datetime.now(UTC) + clock.offset


async def order(api: Api, member: str, day: str) -> dict[str, Any]:
    body = {
        "order_id": unique("o"),
        "member": member,
        "total": {"amount": "150.00", "currency": "EUR"},
        "paid_at": at(day).isoformat(),
    }
    response = await api.post("/v1/orders", body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def tier(api: Api, member: str) -> dict[str, Any]:
    response = await api.get(f"/v1/members/{member}/tier")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def evaluate(api: Api, instant: datetime) -> dict[str, int]:
    response = await api.post("/v1/jobs/evaluate-tiers", {"as_of": instant.isoformat()}, idempotency_key=None)
    assert response.status_code == 200, response.text
    counts: dict[str, int] = response.json()["counts"]
    return counts


async def anas_first_year(api: Api) -> tuple[str, list[dict[str, Any]]]:
    await api.use_rules(RULES)
    ana = await api.enrol(enrolled_at=at("2026-01-01").isoformat())
    placed = [await order(api, ana, day) for day in ("2026-01-02", "2026-01-05")]
    assert (await tier(api, ana))["progress"] == {"next_tier": "silver", "missing": {"orders": 1}}
    placed.append(await order(api, ana, "2026-01-10"))
    assert placed[-1]["tier_reached"] == "silver"
    silver = (await tier(api, ana))["tier"]
    assert (silver["code"], silver["term_ends_at"]) == ("silver", "2027-01-10T10:00:00Z")
    placed += [await order(api, ana, day) for day in ("2026-02-01", "2026-02-20")]
    placed.append(await order(api, ana, "2026-03-05"))
    assert placed[-1]["tier_reached"] == "gold"
    assert placed[-1]["points"] == 150  # the multiplier counts from the next order
    assert await api.available(ana) == 900
    seventh = await order(api, ana, "2026-03-20")
    assert (seventh["points"], seventh["tier_reached"]) == (225, None)
    refund = await api.refund(placed[4]["order_id"], amount={"amount": "150.00", "currency": "EUR"})
    assert refund.status_code == 201, refund.text
    assert await api.available(ana) == 975
    assert (await tier(api, ana))["tier"]["code"] == "gold"
    assert (await order(api, ana, "2026-09-14"))["points"] == 225
    assert await api.available(ana) == 1200
    return ana, placed


class TestAnasYear:
    async def test_the_year_as_the_readme_tells_it(self, api: Api, clock: MovableClock) -> None:
        ana, _ = await anas_first_year(api)
        gold = (await tier(api, ana))["tier"]
        assert (gold["since"], gold["term_ends_at"]) == ("2026-03-05T10:00:00Z", "2027-03-05T10:00:00Z")

        counts = await evaluate(api, at("2027-03-20"))
        assert (counts["retained"], counts["downgraded"]) == (0, 0)
        late = (await tier(api, ana))["tier"]
        assert (late["code"], late["grace_ends_at"]) == ("gold", "2027-04-04T10:00:00Z")

        move_to(clock, at("2027-03-25"))
        kept = await api.post(f"/v1/members/{ana}/tier/keep", {})
        assert kept.status_code == 201, kept.text
        assert kept.json()["tier"]["term_ends_at"] == "2028-03-05T10:00:00Z"
        assert kept.json()["tier"]["grace_ends_at"] is None
        assert await api.available(ana) == 200
        history = (await tier(api, ana))["history"]
        assert [change["reason"] for change in history] == ["kept_with_points", "qualified", "qualified"]

    async def test_had_she_not_kept_it(self, api: Api) -> None:
        ana, _ = await anas_first_year(api)
        await evaluate(api, at("2027-03-20"))
        counts = await evaluate(api, at("2027-04-10"))
        assert counts["downgraded"] == 1
        now = await tier(api, ana)
        assert (now["tier"]["code"], now["tier"]["since"], now["tier"]["term_ends_at"]) == (
            "silver",
            "2027-04-04T10:00:00Z",
            "2028-04-04T10:00:00Z",
        )
        drop = now["history"][0]
        assert (drop["reason"], drop["from_tier"], drop["to_tier"], drop["effective_at"]) == (
            "downgraded",
            "gold",
            "silver",
            "2027-04-04T10:00:00Z",
        )
        assert drop["activity"]["orders"] == 3
        assert (drop["activity"]["window_start"], drop["activity"]["window_end"]) == (
            "2026-03-05T10:00:00Z",
            "2027-03-05T10:00:00Z",
        )
        assert (await evaluate(api, at("2027-04-10")))["changes"] == 0
