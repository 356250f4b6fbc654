"""After a mix of tier activity the ledger still passes `points-ledger verify`, and
each member's tier history is one unbroken chain that ends at the stored tier."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from app.ledger.verify import verify
from tests.support import Api, MovableClock, unique
from tests.tiers.helpers import (
    evaluate,
    event,
    gold_member,
    keep,
    month,
    months_later,
    move_to,
    order,
    refund,
    set_tier,
    tier_rules,
)


async def failing(db: asyncpg.Connection) -> dict[str, list[str]]:
    return {outcome.name: outcome.examples for outcome in await verify(db) if outcome.mismatches}


async def broken_chains(db: asyncpg.Connection, program: str) -> list[str]:
    """Members whose changes do not follow on from each other or end elsewhere than their tier."""
    rows = await db.fetch(
        """
        SELECT m.external_id, c.from_tier, c.to_tier,
               lag(c.to_tier) OVER (PARTITION BY c.member_id ORDER BY c.id) AS previous,
               row_number() OVER (PARTITION BY c.member_id ORDER BY c.id) AS n,
               row_number() OVER (PARTITION BY c.member_id ORDER BY c.id DESC) AS from_end,
               t.tier_code
          FROM tier_change c
          JOIN member m ON m.id = c.member_id
          JOIN program p ON p.id = m.program_id
          LEFT JOIN member_tier t ON t.member_id = c.member_id
         WHERE p.code = $1
        """,
        program,
    )
    broken = []
    for row in rows:
        if row["n"] > 1 and row["from_tier"] != row["previous"]:
            broken.append(f"{row['external_id']}: {row['previous']} then {row['from_tier']}")
        if row["n"] == 1 and row["from_tier"] is not None:
            broken.append(f"{row['external_id']}: starts at {row['from_tier']}")
        if row["from_end"] == 1 and row["to_tier"] != row["tier_code"]:
            broken.append(f"{row['external_id']}: ends at {row['to_tier']}, holds {row['tier_code']}")
    return broken


async def unpaired_keeps(db: asyncpg.Connection, program: str) -> int:
    """tier_keep entries without their kept_with_points change, and the reverse."""
    count = await db.fetchval(
        """
        SELECT count(*)
          FROM (SELECT e.id FROM journal_entry e JOIN program p ON p.id = e.program_id
                 WHERE p.code = $1 AND e.kind = 'tier_keep') k
          FULL JOIN (SELECT c.entry_id FROM tier_change c JOIN program p ON p.id = c.program_id
                      WHERE p.code = $1 AND c.reason = 'kept_with_points') c ON c.entry_id = k.id
         WHERE k.id IS NULL OR c.entry_id IS NULL
        """,
        program,
    )
    return int(count)


class TestSoundnessAfterTiers:
    async def test_a_mix_of_tier_activity_leaves_a_sound_ledger_and_history(
        self, api: Api, db: asyncpg.Connection, clock: MovableClock
    ) -> None:
        await api.use_rules(tier_rules())
        qualified = month(-11)
        ends = months_later(qualified, 12)
        keeper = await gold_member(api, qualified)
        assert (await api.award(keeper, 400)).status_code == 201
        lapsing = await gold_member(api, qualified)
        pinned = await api.enrol()
        refunded = await api.enrol()
        first = await order(api, refunded, "80.00", qualified - timedelta(days=1))
        await order(api, refunded, "20.00", qualified)
        await refund(api, first["order_id"], "80.00")
        await event(api, pinned, "sign_up", month(-1))
        assert (await set_tier(api, pinned, "silver", "partner")).status_code == 200

        key = unique("keep")
        assert (await keep(api, keeper, idempotency_key=key)).status_code == 201
        assert (await keep(api, keeper, idempotency_key=key)).status_code == 201  # replay
        assert (await keep(api, keeper)).status_code == 422  # 100 left
        assert (await keep(api, lapsing)).status_code == 422

        await evaluate(api, ends + timedelta(days=1))
        move_to(clock, ends + timedelta(days=3))
        await order(api, lapsing, "50.00", ends + timedelta(days=2))
        await evaluate(api, ends + timedelta(days=31))
        await evaluate(api, months_later(ends, 12) + timedelta(days=31))
        await evaluate(api, months_later(ends, 12) + timedelta(days=31))

        assert await failing(db) == {}
        assert await broken_chains(db, api.program) == []
        assert await unpaired_keeps(db, api.program) == 0
        assert await api.available(keeper) == 100
