"""Jobs: the ledger's work that runs on a schedule, "as of" an instant.

Each job is idempotent for its `as_of` and works in batches, so it can be rerun,
interrupted and resumed. The same jobs run over HTTP (one program), from the CLI
(every program, or one, with a progress bar) and from `points-ledger worker`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, Field

from app.db import Database
from app.errors import NotFound
from app.holds import service as holds
from app.ledger import expiry
from app.ledger import jobs as ledger_jobs
from app.members import status as member_status
from app.partners import service as partners
from app.partners import settlement as partner_settlement
from app.programs import service as programs
from app.reports import cap, rollups
from app.segments import service as segments
from app.tiers import service as tiers


class UnknownJob(NotFound):
    code, title = "unknown_job", "No such job"


class JobSummary(BaseModel):
    job: str = Field(description="the job that ran", examples=["expire"])
    as_of: datetime = Field(description="the instant it ran as of (UTC)", examples=["2026-11-25T00:00:00Z"])
    counts: dict[str, int] = Field(
        description="what it did: activate-pending counts `credits` and `points`; release-holds "
        "`holds` and `points`; expire `members`, `lots` and `points`; evaluate-tiers `members`, "
        "`changes`, `upgraded`, `retained` and `downgraded`; notify-expiring `members` and `events`; "
        "fail-conversions `conversions` and `points`; close-statements `statements` and `lines`; "
        "lift-statuses `members`; snapshot-segments `programs`, `snapshots`, `members` and "
        "`pruned` (snapshots past the retention); check-cost-cap `programs`, `checked` (programs with a "
        "cap whose last closed month was checked), `exceeded` and `events` (cost.cap_exceeded written); "
        "rollup-reports `programs`, `days` and `figures`",
        examples=[{"members": 12, "lots": 40, "points": 3400}],
    )


class Progress(Protocol):
    """Where a long job reports how far it got (the CLI draws a bar)."""

    def total(self, items: int) -> None: ...

    def advance(self, items: int) -> None: ...


class NoProgress:
    def total(self, items: int) -> None:
        pass

    def advance(self, items: int) -> None:
        pass


async def _programs(db: Database, program_id: int | None) -> list[int]:
    return [program_id] if program_id is not None else await programs.program_ids(db)


async def _activate_pending(
    db: Database, program_id: int | None, as_of: datetime, now: datetime, progress: Progress
) -> dict[str, int]:
    done = await ledger_jobs.activate_pending(
        db, program_id=program_id, as_of=as_of, now=now, on_progress=progress.advance
    )
    return {"credits": done.credits, "points": done.points}


async def _lift_statuses(
    db: Database, program_id: int | None, as_of: datetime, now: datetime, progress: Progress
) -> dict[str, int]:
    done = await member_status.lift_statuses(db, program_id=program_id, as_of=as_of, now=now)
    progress.advance(done.members)
    return {"members": done.members}


async def _release_holds(
    db: Database, program_id: int | None, as_of: datetime, now: datetime, progress: Progress
) -> dict[str, int]:
    done = await holds.release_expired(
        db, program_id=program_id, as_of=as_of, now=now, on_progress=progress.advance
    )
    return {"holds": done.holds, "points": done.points}


async def _expire(
    db: Database, program_id: int | None, as_of: datetime, now: datetime, progress: Progress
) -> dict[str, int]:
    done = await expiry.expire(
        db,
        program_ids=await _programs(db, program_id),
        as_of=as_of,
        now=now,
        on_total=progress.total,
        on_progress=progress.advance,
    )
    return {"members": done.members, "lots": done.lots, "points": done.points}


async def _evaluate_tiers(
    db: Database, program_id: int | None, as_of: datetime, now: datetime, progress: Progress
) -> dict[str, int]:
    done = await tiers.evaluate_tiers(
        db,
        program_ids=await _programs(db, program_id),
        as_of=as_of,
        now=now,
        on_total=progress.total,
        on_progress=progress.advance,
    )
    return {
        "members": done.members,
        "changes": done.changes,
        "upgraded": done.upgraded,
        "retained": done.retained,
        "downgraded": done.downgraded,
    }


async def _notify_expiring(
    db: Database, program_id: int | None, as_of: datetime, now: datetime, progress: Progress
) -> dict[str, int]:
    done = await expiry.notify_expiring(db, program_ids=await _programs(db, program_id), as_of=as_of, now=now)
    progress.advance(done.members)
    return {"members": done.members, "events": done.events}


async def _fail_conversions(
    db: Database, program_id: int | None, as_of: datetime, now: datetime, progress: Progress
) -> dict[str, int]:
    conversions, points = await partners.fail_conversions(
        db,
        program_id=program_id,
        timeout_seconds=db.settings.conversion_timeout_seconds,
        as_of=as_of,
        now=now,
    )
    progress.advance(conversions)
    return {"conversions": conversions, "points": points}


async def _close_statements(
    db: Database, program_id: int | None, as_of: datetime, now: datetime, progress: Progress
) -> dict[str, int]:
    statements, lines = await partner_settlement.close_due(db, program_id=program_id, as_of=as_of, now=now)
    progress.advance(statements)
    return {"statements": statements, "lines": lines}


async def _snapshot_segments(
    db: Database, program_id: int | None, as_of: datetime, now: datetime, progress: Progress
) -> dict[str, int]:
    program_ids = await _programs(db, program_id)
    progress.total(len(program_ids))
    done = await segments.snapshot_segments(
        db,
        program_ids=program_ids,
        as_of=as_of,
        now=now,
        retention_days=db.settings.segment_snapshot_retention_days,
        on_progress=progress.advance,
    )
    return {
        "programs": done.programs,
        "snapshots": done.snapshots,
        "members": done.members,
        "pruned": done.pruned,
    }


async def _check_cost_cap(
    db: Database, program_id: int | None, as_of: datetime, now: datetime, progress: Progress
) -> dict[str, int]:
    program_ids = await _programs(db, program_id)
    progress.total(len(program_ids))
    done = await cap.check_cost_cap(
        db, db.settings, program_ids=program_ids, as_of=as_of, now=now, on_progress=progress.advance
    )
    return {
        "programs": done.programs,
        "checked": done.checked,
        "exceeded": done.exceeded,
        "events": done.events,
    }


async def _rollup_reports(
    db: Database, program_id: int | None, as_of: datetime, now: datetime, progress: Progress
) -> dict[str, int]:
    program_ids = await _programs(db, program_id)
    progress.total(len(program_ids))
    done = await rollups.roll_up(
        db, program_ids=program_ids, as_of=as_of, now=now, on_progress=progress.advance
    )
    return {"programs": done.programs, "days": done.days, "figures": done.figures}


Job = Callable[[Database, int | None, datetime, datetime, Progress], Awaitable[dict[str, int]]]
# In the order the worker runs them: statuses lift first (what they blocked is
# allowed again as soon as the round begins), pending points become available before
# anything expires, and expired holds give their points back first.
JOBS: dict[str, Job] = {
    "lift-statuses": _lift_statuses,
    "activate-pending": _activate_pending,
    "release-holds": _release_holds,
    "expire": _expire,
    "evaluate-tiers": _evaluate_tiers,
    "notify-expiring": _notify_expiring,
    "fail-conversions": _fail_conversions,
    "close-statements": _close_statements,
    "check-cost-cap": _check_cost_cap,
    "snapshot-segments": _snapshot_segments,
    "rollup-reports": _rollup_reports,
}


async def run(
    db: Database,
    name: str,
    *,
    program_id: int | None,
    as_of: datetime,
    now: datetime,
    progress: Progress | None = None,
) -> JobSummary:
    job = JOBS.get(name)
    if job is None:
        raise UnknownJob(f"no job {name}; jobs: {', '.join(JOBS)}")
    counts = await job(db, program_id, as_of, now, progress or NoProgress())
    return JobSummary(job=name, as_of=as_of, counts=counts)
