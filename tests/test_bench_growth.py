"""bench/growth.py's builder writes a ledger `verify` finds sound, and that
ledger_post() carries on from: the growth benchmark stands on it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg

from app.db import asyncpg_dsn
from app.ledger import chain
from app.ledger.verify import verify
from app.partners.settlement import VERIFY_CHECKS
from bench import growth
from tests.conftest import scratch_database

POST = """
SELECT ledger_post(p_entry_id => gen_random_uuid(), p_program_id => 1, p_kind => 'redemption',
                   p_idempotency_key => $1, p_request_fingerprint => 'f', p_occurred_at => now(),
                   p_recorded_at => now(), p_actor_key_id => NULL, p_reverses_entry_id => NULL,
                   p_reason => 'after the load', p_order_id => NULL, p_rules_version => 1,
                   p_expires_at => NULL, p_pending_until => NULL, p_metadata => '{}',
                   p_members => $2, p_accounts => $3, p_amounts => $4)
"""


async def _build_and_verify(url: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        built = await growth.build(connection, postings=600, now=datetime.now(UTC), hot_entries=40, batch=70)
        assert (built.entries, built.postings, built.hot_entries) == (300, 600, 40)
        assert built.members == 1 + (300 - 40) // growth.ENTRIES_PER_MEMBER
        kinds = await connection.fetch("SELECT DISTINCT kind FROM journal_entry ORDER BY kind")
        assert [row["kind"] for row in kinds] == ["award", "redemption"]
        assert await connection.fetchval("SELECT count(*) FROM posting") == 600
        assert await connection.fetchval("SELECT count(*) FROM lot_use") > 0
        # the chain and the event log end where the load ended, in five transactions
        head = await chain.head(connection, growth.PROGRAM_ID)
        assert (head.sequence, head.event_sequence) == (300, 300)
        assert await connection.fetchval("SELECT count(DISTINCT txid) FROM journal_entry") == 5
        outcomes = await verify(connection, VERIFY_CHECKS)
        assert [o for o in outcomes if o.mismatches] == []
        # ledger_post() carries on from it: a redemption takes from the loaded lots
        available = await connection.fetchval(
            "SELECT b.available FROM member_balance b JOIN member m ON m.id = b.member_id"
            " WHERE m.external_id = 'm-1'"
        )
        await connection.execute(
            POST, "after-the-load", ["m-1", None], ["available", "redemption"], [-available, available]
        )
        outcomes = await verify(connection, VERIFY_CHECKS)
        assert [o for o in outcomes if o.mismatches] == []
    finally:
        await connection.close()


def test_the_growth_builder_writes_a_sound_ledger() -> None:
    with scratch_database("growth") as url:
        asyncio.run(_build_and_verify(url))
