"""`verify` agrees with what holds did to balances and lots."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg

from app.ledger.verify import verify
from tests.holds.helpers import capture, funded_member, get_hold, new_hold, release, release_holds_job
from tests.holds.test_lots import ROLLING_12_MONTHS
from tests.support import Api, MovableClock


async def failing(db: asyncpg.Connection) -> dict[str, list[str]]:
    return {outcome.name: outcome.examples for outcome in await verify(db) if outcome.mismatches}


class TestVerifyAfterHolds:
    async def test_a_mix_of_holds_leaves_a_sound_ledger(
        self, api: Api, db: asyncpg.Connection, clock: MovableClock
    ) -> None:
        await api.use_rules(ROLLING_12_MONTHS)
        member, friend = await funded_member(api, 100), await api.enrol()
        clock.offset = timedelta(days=3)
        assert (await api.award(member, 60)).status_code == 201
        now = datetime.now(UTC) + clock.offset
        partly = await new_hold(api, member, 120)
        released = await new_hold(api, member, 10)
        lapsing = await new_hold(api, member, 20, expires_at=(now + timedelta(minutes=1)).isoformat())
        raced = await new_hold(api, member, 10)
        assert (await capture(api, partly["hold_id"], 45)).status_code == 201
        assert (await release(api, released["hold_id"])).status_code == 201
        await asyncio.gather(capture(api, raced["hold_id"], 5), release(api, raced["hold_id"]))
        assert (await api.transfer(member, friend, 40)).status_code == 201
        await release_holds_job(api, now + timedelta(minutes=2))
        assert (await get_hold(api, lapsing["hold_id"]))["status"] == "expired"
        assert (await api.balances(member))["held"] == 0
        assert await failing(db) == {}
