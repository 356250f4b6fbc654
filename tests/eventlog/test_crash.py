"""A worker killed (SIGKILL) in the middle of chaining or of sending webhooks loses
nothing: after a restart the chain and the event log are dense and sound, and every
event reaches the receiver at least once."""

from __future__ import annotations

import os
import subprocess
import sys

import asyncpg

from app.ledger import chain
from tests.support import Api, chain_program, database_url, dsn, program_id, until
from tests.webhooks.receiver import Receiver


def start_worker(**settings: str) -> subprocess.Popen[bytes]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("LEDGER_")} | {
        "LEDGER_DATABASE_URL": database_url(),
        "LEDGER_ENV": "test",
        "LEDGER_WORKER_INTERVAL_SECONDS": "3600",
        "LEDGER_CHAIN_INTERVAL_SECONDS": "0.05",
        **settings,
    }
    return subprocess.Popen(
        [sys.executable, "-c", "from app.cli import main; main()", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)


async def assert_dense_and_sound(db: asyncpg.Connection, pid: int, entries: int) -> None:
    sequences = [
        r["sequence"]
        for r in await db.fetch(
            "SELECT sequence FROM entry_chain WHERE program_id = $1 ORDER BY sequence", pid
        )
    ]
    assert sequences == list(range(1, entries + 1))
    events = [
        r["sequence"]
        for r in await db.fetch("SELECT sequence FROM event_log WHERE program_id = $1 ORDER BY sequence", pid)
    ]
    assert events == list(range(1, len(events) + 1))
    async with db.transaction():
        assert [b for b in await chain.breaks(db) if f"program {pid} " in b] == []


async def test_killed_mid_chaining(api: Api, db: asyncpg.Connection) -> None:
    member = await api.enrol()
    for _ in range(5):
        await api.award(member, 1)
    await chain_program(db, api.program)  # the program's head exists
    for _ in range(40):
        await api.award(member, 1)
    pid = await program_id(db, api.program)
    # Hold the head's row: the worker's chaining transaction writes its entries and
    # events, then waits here to move the head; it dies in the middle of it.
    blocker = await asyncpg.connect(dsn())
    worker = None
    try:
        locked = blocker.transaction()
        await locked.start()
        await blocker.execute("SELECT 1 FROM chain_head WHERE program_id = $1 FOR UPDATE", pid)
        worker = start_worker(LEDGER_CHAIN_BATCH="10")

        async def waiting() -> bool:
            return bool(
                await db.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND query ILIKE '%chain_head%'"
                )
            )

        await until(waiting, seconds=30, every=0.05)
        stop(worker)
        await locked.rollback()
    finally:
        await blocker.close()
        if worker is not None:
            stop(worker)
    assert (await chain.head(db, pid)).sequence == 5  # nothing of the killed batch stayed
    worker = start_worker(LEDGER_CHAIN_BATCH="10")
    try:

        async def chained() -> bool:
            return (await chain.state(db, pid)).entries_unchained == 0

        await until(chained, seconds=30, every=0.05)
    finally:
        stop(worker)
    await assert_dense_and_sound(db, pid, 45)


async def test_killed_mid_dispatch(api: Api, db: asyncpg.Connection, receiver: Receiver) -> None:
    receiver.released.clear()  # every request is held unanswered until the worker is killed
    created = await api.post(
        "/v1/webhooks", {"url": receiver.url, "events": ["points.*"]}, idempotency_key=None
    )
    assert created.status_code == 201, created.text
    member = await api.enrol()
    for _ in range(30):
        await api.award(member, 1)
    pid = await program_id(db, api.program)
    # the killed worker's claims wait out their lease (timeout + 5 s) before anyone retries
    settings = {"LEDGER_WEBHOOK_TIMEOUT_SECONDS": "3", "LEDGER_WEBHOOK_RETRY_SECONDS": "0,0,0"}
    worker = start_worker(**settings)
    try:
        # requests in flight, none answered
        await until(lambda: len(receiver.ids()) >= 5, seconds=30, every=0.05)
    finally:
        stop(worker)
    receiver.released.set()
    worker = start_worker(**settings)
    try:
        events = {
            str(r["id"])
            for r in await db.fetch(
                "SELECT id FROM event_log WHERE program_id = $1 AND type = 'points.award'", pid
            )
        }
        assert len(events) == 30

        async def all_succeeded() -> bool:
            pending = await db.fetchval(
                "SELECT count(*) FROM webhook_delivery d JOIN event_log l ON l.id = d.event_id"
                " WHERE l.program_id = $1 AND d.status <> 'succeeded'",
                pid,
            )
            return receiver.ids() >= events and pending == 0

        await until(all_succeeded, seconds=60, every=0.05)
    finally:
        stop(worker)
    await assert_dense_and_sound(db, pid, 30)
