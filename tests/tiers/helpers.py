"""Shared pieces of the tier tests: a rules document, instants a whole number of
calendar months apart (UTC, day 10, so no month-end clamping), and short calls."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.support import Api, MovableClock, unique

SILVER: dict[str, Any] = {
    "code": "silver",
    "name": "Silver",
    "rank": 1,
    "qualify": {"orders": 2},
    "retain": {"orders": 1},
}
GOLD: dict[str, Any] = {
    "code": "gold",
    "name": "Gold",
    "rank": 2,
    "qualify": {"orders": 4, "spend": "200.00"},
    "retain": {"orders": 3},
}
PLATINUM: dict[str, Any] = {
    "code": "platinum",
    "name": "Platinum",
    "rank": 3,
    "qualify": {"orders": 6},
    "retain": {"orders": 5},
}
POLICY: dict[str, Any] = {
    "window": "rolling_12_months",
    "term_months": 12,
    "downgrade": "one_down",
    "grace_days": 30,
    "keep_with_points": {"gold": 500},
}


def tier_rules(tiers: list[dict[str, Any]] | None = None, **policy: Any) -> dict[str, Any]:
    """1 point per EUR, doubled for gold members; silver and gold; POLICY with overrides."""
    return {
        "currency": "EUR",
        "timezone": "UTC",
        "earn": {
            "base": {"points": 1, "per": "1"},
            "multipliers": [{"id": "gold", "factor": "2", "when": {"tier": ["gold"]}}],
        },
        "events": {"sign_up": {"points": 60}, "review": {"points": 50}},
        "tiers": [SILVER, GOLD] if tiers is None else tiers,
        "tier_policy": {**POLICY, **policy},
    }


def months_later(instant: datetime, months: int) -> datetime:
    """The same wall time `months` calendar months on, the day clamped to the end of
    a shorter month (Jan 31 + 1 month is Feb 28), as the service counts terms."""
    index = instant.year * 12 + instant.month - 1 + months
    year, month_ = index // 12, index % 12 + 1
    return instant.replace(
        year=year, month=month_, day=min(instant.day, calendar.monthrange(year, month_)[1])
    )


def month(offset: int) -> datetime:
    """Day 10 at 12:00 UTC of the month `offset` months from the current one:
    month(-11) is 10 to 12 months ago, and a term that starts then ends at
    month(1), always in the next few weeks."""
    today = datetime.now(UTC)
    return months_later(datetime(today.year, today.month, 10, 12, tzinfo=UTC), offset)


def move_to(clock: MovableClock, instant: datetime) -> None:
    """Make "now" `instant` (and on from there as real time passes)."""
    clock.offset = instant - datetime.now(UTC)


def iso(instant: datetime) -> str:
    return instant.isoformat()


def same(value: str | None, instant: datetime | None) -> bool:
    """An API timestamp names exactly `instant`."""
    if value is None or instant is None:
        return value is None and instant is None
    return datetime.fromisoformat(value) == instant


async def order(
    api: Api, member: str, total: str, paid_at: datetime, *, order_id: str | None = None
) -> dict[str, Any]:
    body = {
        "order_id": order_id or unique("o"),
        "member": member,
        "total": {"amount": total, "currency": "EUR"},
        "paid_at": iso(paid_at),
    }
    response = await api.post("/v1/orders", body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def refund(api: Api, order_id: str, amount: str) -> dict[str, Any]:
    response = await api.refund(order_id, amount={"amount": amount, "currency": "EUR"})
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def event(api: Api, member: str, kind: str, occurred_at: datetime) -> dict[str, Any]:
    response = await api.post(f"/v1/members/{member}/events", {"type": kind, "occurred_at": iso(occurred_at)})
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def tier_of(api: Api, member: str, **params: Any) -> dict[str, Any]:
    response = await api.get(f"/v1/members/{member}/tier", **params)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def code_of(api: Api, member: str) -> str | None:
    tier = (await tier_of(api, member))["tier"]
    return None if tier is None else str(tier["code"])


async def history(api: Api, member: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await tier_of(api, member, limit=500))["history"]
    return found


async def evaluate(api: Api, as_of: datetime | None = None) -> dict[str, int]:
    body = {} if as_of is None else {"as_of": iso(as_of)}
    response = await api.post("/v1/jobs/evaluate-tiers", body, idempotency_key=None)
    assert response.status_code == 200, response.text
    assert response.json()["job"] == "evaluate-tiers"
    counts: dict[str, int] = response.json()["counts"]
    return counts


async def keep(
    api: Api, member: str, *, key: str | None = None, idempotency_key: str | None = "auto", **body: Any
) -> httpx.Response:
    return await api.post(f"/v1/members/{member}/tier/keep", body, key=key, idempotency_key=idempotency_key)


async def set_tier(
    api: Api,
    member: str,
    tier: str | None,
    reason: str,
    until: datetime | None = None,
    key: str | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {"code": tier, "reason": reason}
    if until is not None:
        body["until"] = iso(until)
    return await api.client.put(f"/v1/members/{member}/tier", json=body, headers=api.headers(key))


async def gold_member(api: Api, qualified_at: datetime, total: str = "50.00") -> str:
    """A member who reaches silver with their 2nd order and gold with their 4th, paid
    at `qualified_at` (the others in the 3 hours before). The window that judges the
    gold term (it ends 12 months later) starts at `qualified_at`: it holds 1 order."""
    member = await api.enrol()
    for hours in (3, 2, 1, 0):
        await order(api, member, total, qualified_at - timedelta(hours=hours))
    assert await code_of(api, member) == "gold"
    return member
