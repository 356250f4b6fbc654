"""Chaining a program until everything it committed is in its event log.

tests/support.py's chain_program stops at the first batch that takes nothing; but
the chainer only takes what transactions older than every running one wrote (the
cluster's snapshot xmin), so any other transaction on the server (another test run,
a benchmark) can make a batch take nothing for a moment. The webhook tests need the
events in the log before the dispatcher runs, so they wait for them, briefly."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from app.ledger.chain import state
from tests.support import chain_program, program_id

UNSEQUENCED = "SELECT count(*) FROM event_log WHERE program_id = $1 AND sequence IS NULL"


async def chain_settled(db: asyncpg.Connection, program: str, seconds: float = 10.0) -> None:
    """Chain `program` until no committed entry or event of it waits for the chainer."""
    pid = await program_id(db, program)
    deadline = time.monotonic() + seconds
    while True:
        await chain_program(db, program)
        waiting = (await state(db, pid)).entries_unchained + int(await db.fetchval(UNSEQUENCED, pid))
        if waiting == 0:
            return
        assert time.monotonic() < deadline, f"{waiting} entries and events of {program} still unchained"
        await asyncio.sleep(0.02)
