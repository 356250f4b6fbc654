"""`points-ledger worker`: runs every job, as of now, on a schedule, until stopped.

Any number of workers may run (one per machine, say). Each job run takes a
PostgreSQL advisory lock named after the job first, so while one worker runs
`expire`, another skips it for that round instead of doing the same work twice;
and inside a job, batches lock what they work on (SKIP LOCKED or row locks), so
even a run started by hand beside a worker never posts anything twice. A crashed
worker's session ends, and its lock with it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from app.clock import Clock
from app.db import Database
from app.jobs import service

logger = logging.getLogger(__name__)

# The first key of pg_try_advisory_lock(int, int): "PL" for points-ledger; the
# second is hashtext() of the job's name.
LOCK_SPACE = 0x504C

TRY_LOCK = "SELECT pg_try_advisory_lock($1, hashtext($2))"
UNLOCK = "SELECT pg_advisory_unlock($1, hashtext($2))"


@dataclass(slots=True)
class Round:
    """What one round of the worker did: each job's counts, or that it was skipped."""

    ran: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


async def run_round(db: Database, clock: Clock, jobs: list[str] | None = None) -> Round:
    """Run each job once, as of now, unless another worker holds its lock."""
    done = Round()
    for name in jobs or list(service.JOBS):
        # A session lock: on a connection of its own (straight to PostgreSQL when
        # LEDGER_DIRECT_DATABASE_URL is set), held while the job runs elsewhere.
        async with db.own_connection() as lock_connection:
            if not await lock_connection.fetchval(TRY_LOCK, LOCK_SPACE, name):
                logger.info("job %s: another worker is running it; skipped this round", name)
                done.skipped.append(name)
                continue
            try:
                now = clock.now()
                summary = await service.run(db, name, program_id=None, as_of=now, now=now)
                done.ran[name] = summary.counts
                logger.info("job %s as of %s: %s", name, now.isoformat(), summary.counts)
            finally:
                await lock_connection.fetchval(UNLOCK, LOCK_SPACE, name)
    return done


async def run_forever(
    db: Database,
    clock: Clock,
    *,
    interval: float,
    stop: asyncio.Event,
    on_round: Callable[[Round], None] | None = None,
    job_intervals: Mapping[str, float] | None = None,
) -> None:
    """Rounds every `interval` seconds until `stop` is set, each running the jobs
    due (every job every `interval`, or as `job_intervals` says); a round in
    progress finishes its current job's batches first (each batch is its own
    transaction, so stopping between jobs loses nothing)."""
    unknown = set(job_intervals or {}) - set(service.JOBS)
    if unknown:
        logger.warning("worker intervals name no job: %s (jobs: %s)", sorted(unknown), list(service.JOBS))
    every = {name: (job_intervals or {}).get(name, interval) for name in service.JOBS}
    last: dict[str, float] = {}
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        started = loop.time()
        due = [name for name in service.JOBS if name not in last or started - last[name] >= every[name]]
        try:
            finished = await run_round(db, clock, due) if due else Round()
        except Exception:
            # A failing job must not stop the others' schedule; the next round retries.
            logger.exception("worker round failed; retrying in %s s", interval)
        else:
            for name in [*finished.ran, *finished.skipped]:
                last[name] = started
            if on_round is not None and due:
                on_round(finished)
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            pass
