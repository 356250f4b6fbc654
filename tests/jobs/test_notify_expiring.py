"""The notify-expiring job: a points.expiring_soon event once per member, expiry
date and threshold, in the event log, whatever the reruns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from tests.support import Api, chain_program


async def notify(api: Api, as_of: datetime) -> dict[str, int]:
    response = await api.post("/v1/jobs/notify-expiring", {"as_of": as_of.isoformat()}, idempotency_key=None)
    assert response.status_code == 200, response.text
    counts: dict[str, int] = response.json()["counts"]
    return counts


async def warnings(api: Api, db: asyncpg.Connection) -> list[dict[str, Any]]:
    await chain_program(db, api.program)
    response = await api.get("/v1/events", type="points.expiring_soon")
    assert response.status_code == 200, response.text
    return [event["data"] for event in response.json()["items"]]


def instant(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


async def test_once_per_member_date_and_threshold(api: Api, db: asyncpg.Connection) -> None:
    await api.use_rules(
        {"earn": {"base": {"points": 1, "per": "1"}}, "expiry": {"warn_days_before": [30, 7]}}
    )
    now = datetime.now(UTC).replace(microsecond=0)
    ends = now + timedelta(days=20)
    alice, bob = await api.enrol(), await api.enrol()
    await api.award(alice, 40, expires_at=ends.isoformat())
    await api.award(alice, 2, expires_at=ends.isoformat())
    await api.award(bob, 5, expires_at=(now + timedelta(days=90)).isoformat())  # not yet due

    assert await notify(api, now) == {"members": 1, "events": 1}
    assert await notify(api, now) == {"members": 0, "events": 0}  # idempotent
    assert await notify(api, now + timedelta(days=5)) == {"members": 0, "events": 0}  # still the 30 mark
    assert await warnings(api, db) == [
        {"member": alice, "points": 42, "expires_at": instant(ends), "days_before": 30}
    ]
    # 6 days left: the 7-day threshold is crossed, once
    assert await notify(api, ends - timedelta(days=6)) == {"members": 1, "events": 1}
    assert await notify(api, ends - timedelta(days=1)) == {"members": 0, "events": 0}
    assert [w["days_before"] for w in await warnings(api, db)] == [30, 7]


async def test_a_first_run_close_to_the_date_announces_only_the_tightest(
    api: Api, db: asyncpg.Connection
) -> None:
    await api.use_rules(
        {"earn": {"base": {"points": 1, "per": "1"}}, "expiry": {"warn_days_before": [30, 7]}}
    )
    now = datetime.now(UTC).replace(microsecond=0)
    member = await api.enrol()
    await api.award(member, 9, expires_at=(now + timedelta(days=3)).isoformat())
    assert await notify(api, now) == {"members": 1, "events": 1}
    assert [w["days_before"] for w in await warnings(api, db)] == [7]
    assert await notify(api, now + timedelta(days=1)) == {"members": 0, "events": 0}


async def test_spent_points_and_programs_without_thresholds_are_not_announced(
    api: Api, other: Api, db: asyncpg.Connection
) -> None:
    await api.use_rules({"earn": {"base": {"points": 1, "per": "1"}}, "expiry": {"warn_days_before": [30]}})
    now = datetime.now(UTC).replace(microsecond=0)
    spent = await api.enrol()
    await api.award(spent, 10, expires_at=(now + timedelta(days=10)).isoformat())
    await api.redeem(spent, 10)
    quiet = await other.enrol()  # the default rules: no thresholds
    await other.award(quiet, 10, expires_at=(now + timedelta(days=10)).isoformat())
    assert await notify(api, now) == {"members": 0, "events": 0}
    assert await notify(other, now) == {"members": 0, "events": 0}
    assert await warnings(api, db) == []


async def test_lots_of_one_local_day_are_one_notice(api: Api, db: asyncpg.Connection) -> None:
    """Under a rolling policy every purchase expires at its own instant: a member is
    told once per day (the program's timezone), with the day's points."""
    await api.use_rules({"earn": {"base": {"points": 1, "per": "1"}}, "expiry": {"warn_days_before": [30]}})
    day = (datetime.now(UTC) + timedelta(days=10)).replace(hour=8, minute=0, second=0, microsecond=0)
    member = await api.enrol()
    for hours, points in ((0, 3), (5, 4), (9, 5)):
        await api.award(member, points, expires_at=(day + timedelta(hours=hours)).isoformat())
    await api.award(member, 6, expires_at=(day + timedelta(days=1)).isoformat())
    assert await notify(api, datetime.now(UTC)) == {"members": 1, "events": 2}
    assert [(w["points"], w["expires_at"]) for w in await warnings(api, db)] == [
        (12, instant(day)),
        (6, instant(day + timedelta(days=1))),
    ]
