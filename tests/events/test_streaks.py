"""Check-in streaks over HTTP: "check in 7 days in a row to unlock a bonus"."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from app.ledger.verify import verify
from tests.support import Api

BERLIN = ZoneInfo("Europe/Berlin")
STREAKS: dict[str, Any] = {
    "timezone": "Europe/Berlin",
    "earn": {"base": {"points": 1, "per": "1"}},
    "events": {"check_in": {"points": 5, "streak": {"days": 7, "points": 50}}},
}
START = date(2025, 3, 3)


def at(day: date, hour: int = 9, minute: int = 0) -> str:
    """A local wall time in Berlin, as UTC text."""
    return datetime.combine(day, time(hour, minute), tzinfo=BERLIN).astimezone(UTC).isoformat()


async def check_in(api: Api, member: str, occurred_at: str, *, key: str | None = "auto") -> Any:
    response = await api.post(
        f"/v1/members/{member}/events", {"type": "check_in", "occurred_at": occurred_at}, idempotency_key=key
    )
    assert response.status_code == 201, response.text
    return response.json()


async def check_in_days(api: Api, member: str, first: date, days: int) -> list[int]:
    """Check in once a day for `days` days from `first`; the points of each."""
    return [(await check_in(api, member, at(first + timedelta(days=n))))["points"] for n in range(days)]


async def streak_lines(api: Api, member: str) -> list[dict[str, Any]]:
    items = (await api.get(f"/v1/members/{member}/entries", limit=100)).json()["items"]
    return [line for item in items for line in item["explanation"] or [] if line["rule"].endswith(":streak")]


async def unsound(db: asyncpg.Connection) -> dict[str, list[str]]:
    return {outcome.name: outcome.examples for outcome in await verify(db) if outcome.mismatches}


class TestCheckInStreak:
    async def test_seven_days_in_a_row_pay_one_bonus_with_its_own_line(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        await api.use_rules(STREAKS)
        member = await api.enrol()
        assert await check_in_days(api, member, START, 7) == [5, 5, 5, 5, 5, 5, 55]
        assert await api.available(member) == 7 * 5 + 50
        [line] = await streak_lines(api, member)
        assert line == {
            "rule": "event:check_in:streak",
            "points": 50,
            "detail": "+50 for 7 days in a row (2025-03-03 to 2025-03-09)",
        }
        # days 8..14 complete the next streak, not day 8 on its own
        assert await check_in_days(api, member, START + timedelta(days=7), 7) == [5, 5, 5, 5, 5, 5, 55]
        assert await api.available(member) == 14 * 5 + 2 * 50
        assert await unsound(db) == {}

    async def test_two_check_ins_the_same_day_count_once(self, api: Api) -> None:
        await api.use_rules(STREAKS)
        member = await api.enrol()
        points = []
        for n in range(7):
            day = START + timedelta(days=n)
            points.append((await check_in(api, member, at(day, 8)))["points"])
            points.append((await check_in(api, member, at(day, 20)))["points"])
        # 14 check-ins on 7 days: the bonus on the 7th day's first, once
        assert points == [5] * 12 + [55, 5]
        assert len(await streak_lines(api, member)) == 1

    async def test_a_missed_day_restarts_the_streak(self, api: Api) -> None:
        await api.use_rules(STREAKS)
        member = await api.enrol()
        assert await check_in_days(api, member, START, 6) == [5] * 6
        # day 7 missed: day 8 is the first of a new streak, complete on day 14
        again = START + timedelta(days=7)
        assert await check_in_days(api, member, again, 7) == [5] * 6 + [55]
        [line] = await streak_lines(api, member)
        assert line["detail"].endswith("(2025-03-10 to 2025-03-16)")

    async def test_a_retry_with_the_same_key_pays_nothing_more(self, api: Api) -> None:
        await api.use_rules(STREAKS)
        member = await api.enrol()
        await check_in_days(api, member, START, 6)
        body = {"type": "check_in", "occurred_at": at(START + timedelta(days=6))}
        first = await api.post(f"/v1/members/{member}/events", body, idempotency_key="streak-7")
        retries = await asyncio.gather(
            *(api.post(f"/v1/members/{member}/events", body, idempotency_key="streak-7") for _ in range(4))
        )
        assert first.json()["points"] == 55
        assert {r.content for r in retries} == {first.content}
        assert await api.available(member) == 6 * 5 + 55
        assert len(await streak_lines(api, member)) == 1

    async def test_concurrent_check_ins_on_the_seventh_day_pay_one_bonus(self, api: Api) -> None:
        await api.use_rules(STREAKS)
        member = await api.enrol()
        await check_in_days(api, member, START, 6)
        seventh = START + timedelta(days=6)
        answers = await asyncio.gather(*(check_in(api, member, at(seventh, 9, n)) for n in range(6)))
        assert sorted(answer["points"] for answer in answers) == [5, 5, 5, 5, 5, 55]
        assert len(await streak_lines(api, member)) == 1
        assert await api.available(member) == 12 * 5 + 50

    async def test_days_are_the_programs_local_days(self, api: Api) -> None:
        await api.use_rules(STREAKS)
        member = await api.enrol()
        # 23:30 and 00:30 Berlin time are two days (in UTC the same date: 22:30 and 23:30 Z
        # in summer time, 2025-06-01).
        first = date(2025, 6, 1)
        assert (await check_in(api, member, "2025-06-01T21:30:00Z"))["points"] == 5  # 23:30 on 06-01
        assert (await check_in(api, member, "2025-06-01T22:30:00Z"))["points"] == 5  # 00:30 on 06-02
        for n in range(2, 6):
            await check_in(api, member, at(first + timedelta(days=n)))
        # the 7th local day, 06-07, at 00:10 (06-06 in UTC)
        assert (await check_in(api, member, "2025-06-06T22:10:00Z"))["points"] == 55
        [line] = await streak_lines(api, member)
        assert line["detail"].endswith("(2025-06-01 to 2025-06-07)")

    async def test_a_late_check_in_for_an_earlier_day_does_not_move_the_streak(self, api: Api) -> None:
        await api.use_rules(STREAKS)
        member = await api.enrol()
        await check_in_days(api, member, START + timedelta(days=2), 5)  # 03-05 .. 03-09
        # 03-04 reported late: it earns, but the streak counts on from 03-09
        assert (await check_in(api, member, at(START + timedelta(days=1))))["points"] == 5
        assert (await check_in(api, member, at(START + timedelta(days=7))))["points"] == 5  # 6th
        assert (await check_in(api, member, at(START + timedelta(days=8))))["points"] == 55  # 7th

    async def test_a_reversed_check_in_no_longer_counts(self, api: Api) -> None:
        await api.use_rules(STREAKS)
        member = await api.enrol()
        await check_in_days(api, member, START, 5)
        sixth = await check_in(api, member, at(START + timedelta(days=5)))
        assert (await api.reverse(sixth["id"])).status_code == 201
        # without day 6, day 7 starts again
        assert (await check_in(api, member, at(START + timedelta(days=6))))["points"] == 5

    async def test_without_a_streak_in_the_rules_nothing_changes(self, api: Api) -> None:
        await api.use_rules({**STREAKS, "events": {"check_in": {"points": 5}}})
        member = await api.enrol()
        assert await check_in_days(api, member, START, 8) == [5] * 8
        assert await streak_lines(api, member) == []


async def _replay(api: Api, version: int, start: date, days: int) -> Any:
    body = {"from": at(start, 0), "to": at(start + timedelta(days=days), 0)}
    response = await api.post(f"/v1/rules/{version}/simulate", body, idempotency_key=None)
    assert response.status_code == 200, response.text
    return response.json()


class TestWhatIf:
    async def test_a_draft_with_a_streak_shows_the_bonuses_past_check_ins_would_have_paid(
        self, api: Api
    ) -> None:
        await api.use_rules({**STREAKS, "events": {"check_in": {"points": 5}}})
        regular, sporadic = await api.enrol(), await api.enrol()
        await check_in_days(api, regular, START, 15)
        for n in (0, 1, 3, 4, 6):
            await check_in(api, sporadic, at(START + timedelta(days=n)))
        stored = await api.post("/v1/rules", STREAKS, idempotency_key=None)
        draft = stored.json()["version"]
        result = await _replay(api, draft, START, 15)
        assert result["events"] == {
            "events": 20,
            "actual_points": 100,
            "simulated_points": 200,
            "delta_points": 100,
            "streaks_completed": 2,
        }
        # a window that cuts the streak short counts only the days inside it
        assert (await _replay(api, draft, START, 6))["events"]["streaks_completed"] == 0
