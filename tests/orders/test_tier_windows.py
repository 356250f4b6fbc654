"""A checkout's order reads the member's tier windows with the member's facts: one
round trip fewer when the process knows the active rules, the same upgrade
either way, and nothing read for a member who already holds the top tier."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI

from app.orders import repository as orders_repository
from app.tiers import repository as tiers_repository
from tests.support import Api, program_id
from tests.tiers.helpers import code_of, month, order, tier_rules


def _count_activity_queries(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Each separate tier activity query, counted (its windows)."""
    calls: list[int] = []
    real = tiers_repository.activity

    async def counted(connection: Any, program: int, windows: list[Any], *, referrals: bool = False) -> Any:
        calls.append(len(windows))
        return await real(connection, program, windows, referrals=referrals)

    monkeypatch.setattr(tiers_repository, "activity", counted)
    return calls


class TestTierWindowsWithTheFacts:
    async def test_a_known_program_upgrades_with_no_separate_activity_query(
        self, api: Api, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await api.use_rules(tier_rules())
        member = await api.enrol()
        await order(api, member, "30.00", month(-3))  # the process learns the active version
        calls = _count_activity_queries(monkeypatch)
        second = await order(api, member, "45.50", month(-2))
        assert calls == []
        assert second["tier_reached"] == "silver"
        assert await code_of(api, member) == "silver"

    async def test_a_process_that_must_ask_reaches_the_same_upgrade_with_one_more_query(
        self, api: Api, app: FastAPI, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await api.use_rules(tier_rules())
        member = await api.enrol()
        await order(api, member, "30.00", month(-3))
        calls = _count_activity_queries(monkeypatch)
        cache = app.state.context.rules
        monkeypatch.setattr(cache, "cached_active", lambda program: (None, -1))
        second = await order(api, member, "45.50", month(-2))
        assert second["tier_reached"] == "silver"
        assert calls == [2]  # the window ending at paid_at and the one ending now

    async def test_an_activation_between_the_two_is_read_with_the_new_rules(
        self, api: Api, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The process knows version 1 (no tiers); version 2 (tiers) is activated: the
        # next order's facts say 2, so it is judged on version 2's windows.
        await api.use_rules({"currency": "EUR", "earn": {"base": {"points": 1, "per": "1"}}})
        member = await api.enrol()
        await order(api, member, "30.00", month(-3))
        await api.use_rules(tier_rules())
        second = await order(api, member, "45.50", month(-2))
        assert second["tier_reached"] == "silver"


class TestFactsQuery:
    async def test_windows_read_with_the_facts_match_the_tiers_query_and_skip_the_top_tier(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        await api.use_rules(tier_rules())
        member = await api.enrol()
        await order(api, member, "30.00", month(-3))
        await order(api, member, "10.00", month(-1))
        program = await program_id(db, api.program)
        member_id = await db.fetchval(
            "SELECT id FROM member WHERE program_id = $1 AND external_id = $2", program, member
        )
        now = datetime.now(UTC)
        windows: list[tuple[datetime | None, datetime]] = [
            (month(-2) - timedelta(days=1), now),
            (None, now),
            (now - timedelta(days=400), month(-2)),
        ]
        today = date.today()

        facts = await orders_repository.member_facts(
            db, program, member, today, today, windows=windows, top_tier="gold"
        )
        assert facts is not None
        expected = await tiers_repository.activity(
            db, program, [(member_id, start, end) for start, end in windows]
        )
        assert facts.window_activity == tuple(expected)
        assert facts.window_activity == (
            (1, Decimal("10.00"), 10, 0),
            (2, Decimal("40.00"), 40, 0),
            (1, Decimal("30.00"), 30, 0),
        )

        on_top = await orders_repository.member_facts(
            db, program, member, today, today, windows=windows, top_tier=facts.tier
        )
        assert on_top is not None
        assert on_top.tier == "silver"
        assert on_top.window_activity is None
        unasked = await orders_repository.member_facts(db, program, member, today, today)
        assert unasked is not None
        assert unasked.window_activity is None
