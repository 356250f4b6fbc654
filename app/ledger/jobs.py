"""The ledger's own job: pending points whose time has come become available
(`activate-pending`); the batch loop every job shares; and the watermarks that let
`expire` and `evaluate-tiers` read only the members that are due.

A watermark is what a job's last complete run in a program settled: the rules
version it judged by, the instant it ran as of, its clock, and the transaction id
below which every transaction of the database had ended when it began
(repository.SNAPSHOT_TXID). A change committed after the run began has an id at
least that (journal_entry.txid, member_tier.txid), so "members changed since the
last run" is an index range; a long transaction only makes that range larger,
never misses anything. A run that fails midway writes nothing: the next starts
from the watermark before it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from app.db import Connection, Database
from app.ledger import repository
from app.ledger.entries import EntryKind, Leg
from app.ledger.posting import job_entry, post_job_entry
from app.metrics import ENTRIES


@dataclass(frozen=True, slots=True)
class Activated:
    credits: int
    points: int


async def activate_pending(
    db: Database,
    *,
    program_id: int | None,
    as_of: datetime,
    now: datetime,
    batch: int = 500,
    on_progress: Callable[[int], None] | None = None,
) -> Activated:
    """Move pending points whose `pending_until` is at or before `as_of` to available
    (a closed member's to the program's forfeit account, in a `forfeit` entry).

    One `activate` entry per pending credit (so each traces to its order or award),
    written in batches of `batch` credits per transaction: a crash loses at most the
    batch in flight, and a rerun picks up exactly what is left. Running it twice for
    the same instant changes nothing the second time: an activated credit has
    nothing left."""
    work = _activation_batch(program_id, as_of, now, batch)
    credits, points = await run_batches(db, work, "activate", "remaining", on_progress)
    return Activated(credits, points)


async def run_batches(
    db: Database,
    work: Callable[[Connection], Awaitable[list[asyncpg.Record]]],
    kind: str,
    points: str,
    on_progress: Callable[[int], None] | None,
) -> tuple[int, int]:
    """A job's loop: `work` posts one batch of `kind` entries in its own transaction
    (retried whole on deadlock) and answers the rows it handled, until it finds
    none. Returns how many rows, and the sum of their `points` column."""
    rows = total = 0
    while batch := await db.call(work):
        rows += len(batch)
        total += sum(row[points] for row in batch)
        ENTRIES.labels(kind).inc(len(batch))
        if on_progress is not None:
            on_progress(len(batch))
    return rows, total


def _activation_batch(
    program_id: int | None, as_of: datetime, now: datetime, batch: int
) -> Callable[[Connection], Awaitable[list[asyncpg.Record]]]:
    async def work(connection: Connection) -> list[asyncpg.Record]:
        async with connection.transaction():
            due = await repository.due_pending_credits(connection, program_id, as_of, batch)
            entry_ids = []
            # Members in id order, as every other writer locks them: no deadlocks.
            due = sorted(due, key=lambda credit: credit["member_id"])
            # A closed member's pending points are forfeited instead; the status is
            # read under the members' locks, so a closing can't slip in between.
            statuses = (
                await repository.locked_statuses(
                    connection, sorted({(credit["program_id"], credit["member_id"]) for credit in due})
                )
                if due
                else {}
            )
            for credit in due:
                closed = statuses.get(credit["member_id"]) == "closed"
                entry = job_entry(
                    "activate-pending",
                    credit["id"],  # one activation (or forfeit) per credit, ever
                    program_id=credit["program_id"],
                    kind="forfeit" if closed else "activate",
                    occurred_at=credit["pending_until"],
                    now=now,
                    legs=(
                        Leg(credit["member"], "pending", -credit["remaining"]),
                        Leg(None, "forfeit", credit["remaining"])
                        if closed
                        else Leg(credit["member"], "available", credit["remaining"]),
                    ),
                    reason="pending points of a closed member forfeited"
                    if closed
                    else "pending points became available",
                    order_id=credit["order_id"],
                    rules_version=credit["rules_version"],
                    # the lot keeps the expiry decided when the points were earned
                    expires_at=None if closed else credit["expires_at"],
                )
                await post_job_entry(connection, entry)
                entry_ids.append(entry.id)
            await repository.mark_activated(
                connection, [(credit["program_id"], credit["id"]) for credit in due], entry_ids, now
            )
            return due

    return work


@dataclass(frozen=True, slots=True)
class Watermark:
    rules_version: int
    as_of: datetime
    ran_at: datetime
    txid: int
    inactive_through: datetime | None = None


async def snapshot_txid(connection: Connection) -> int:
    """The id below which every transaction has ended: take it before reading what a
    run will look at, and what commits later is found by it next time."""
    return await repository.snapshot_txid(connection)


async def watermark(connection: Connection, program_id: int, job: str) -> Watermark | None:
    row = await repository.watermark(connection, program_id, job)
    if row is None:
        return None
    return Watermark(row["rules_version"], row["as_of"], row["ran_at"], row["txid"], row["inactive_through"])


async def set_watermark(
    connection: Connection, program_id: int, job: str, mark: Watermark, now: datetime
) -> None:
    await repository.set_watermark(
        connection,
        program_id,
        job,
        rules_version=mark.rules_version,
        as_of=mark.as_of,
        ran_at=mark.ran_at,
        txid=mark.txid,
        inactive_through=mark.inactive_through,
        now=now,
    )


async def members_posted_since(
    connection: Connection,
    program_id: int,
    txid: int,
    *,
    kinds: tuple[EntryKind, ...] | None = None,
    other_rules_than: int | None = None,
) -> list[int]:
    """Members of the program with a posting in an entry committed by a transaction
    with an id of at least `txid` (of these `kinds`; decided under another rules
    version than `other_rules_than`)."""
    return await repository.members_posted_since(
        connection,
        program_id,
        txid,
        kinds=None if kinds is None else list(kinds),
        other_rules_than=other_rules_than,
    )
