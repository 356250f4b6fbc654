"""The ledger's own job: pending points whose time has come become available
(`activate-pending`), and the batch loop every job shares."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from app.db import Connection, Database
from app.ledger import repository
from app.ledger.entries import Leg
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
    """Move pending points whose `pending_until` is at or before `as_of` to available.

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
            for credit in due:
                entry = job_entry(
                    "activate-pending",
                    credit["id"],  # one activation per credit, ever
                    program_id=credit["program_id"],
                    kind="activate",
                    occurred_at=credit["pending_until"],
                    now=now,
                    legs=(
                        Leg(credit["member"], "pending", -credit["remaining"]),
                        Leg(credit["member"], "available", credit["remaining"]),
                    ),
                    reason="pending points became available",
                    order_id=credit["order_id"],
                    rules_version=credit["rules_version"],
                    # the lot keeps the expiry decided when the points were earned
                    expires_at=credit["expires_at"],
                )
                await post_job_entry(connection, entry)
                entry_ids.append(entry.id)
            await repository.mark_activated(
                connection, [(credit["program_id"], credit["id"]) for credit in due], entry_ids, now
            )
            return due

    return work
