"""Jobs: the ledger's work that runs on a schedule, "as of" an instant.

Each job is idempotent for its `as_of` and works in batches, so it can be rerun,
interrupted and resumed. The same jobs run over HTTP (one program), from the CLI
(every program, or one) and, with the lifecycle issue, from the worker."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from pydantic import BaseModel, Field

from app.db import Database
from app.errors import NotFound
from app.ledger import service as ledger


class UnknownJob(NotFound):
    code, title = "unknown_job", "No such job"


class JobSummary(BaseModel):
    job: str = Field(description="the job that ran", examples=["activate-pending"])
    as_of: datetime = Field(description="the instant it ran as of (UTC)", examples=["2026-11-25T00:00:00Z"])
    counts: dict[str, int] = Field(
        description="what it did: activate-pending counts `credits` and `points`",
        examples=[{"credits": 12, "points": 3400}],
    )


async def _activate_pending(
    db: Database, program_id: int | None, as_of: datetime, now: datetime
) -> dict[str, int]:
    done = await ledger.activate_pending(db, program_id=program_id, as_of=as_of, now=now)
    return {"credits": done.credits, "points": done.points}


Job = Callable[[Database, int | None, datetime, datetime], Awaitable[dict[str, int]]]
JOBS: dict[str, Job] = {"activate-pending": _activate_pending}


async def run(
    db: Database, name: str, *, program_id: int | None, as_of: datetime, now: datetime
) -> JobSummary:
    job = JOBS.get(name)
    if job is None:
        raise UnknownJob(f"no job {name}; jobs: {', '.join(sorted(JOBS))}")
    return JobSummary(job=name, as_of=as_of, counts=await job(db, program_id, as_of, now))
