"""RFM segments as of an instant: the report, a segment's members, and the
snapshots the `snapshot-segments` job keeps for the rules."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

import asyncpg

from app.context import AppContext
from app.db import PRIMARY, Connection, Database, ReadFrom
from app.errors import ValidationFailed
from app.principal import Principal
from app.segments import repository
from app.segments.schemas import SEGMENTS, SegmentCount, SegmentMember, SegmentMemberPage, SegmentReport

DEFAULT_WINDOW_DAYS = 365


def _as_of(context: AppContext, as_of: datetime | None) -> datetime:
    now = context.clock.now()
    if as_of is None:
        return now
    as_of = as_of.astimezone(UTC)
    if as_of > now:
        raise ValidationFailed.on("query.as_of", "must not be in the future")
    return as_of


async def _source(
    connection: Connection, program_id: int, as_of: datetime, window_days: int
) -> tuple[bool, int]:
    """(from a snapshot, chain sequence): a snapshot kept for as_of over the same window serves."""
    kept = await repository.snapshot(connection, program_id, as_of)
    if kept is not None and kept["window_days"] == window_days:
        return True, kept["chain_sequence"]
    return False, await repository.chain_sequence(connection, program_id, as_of)


def _share(part: int, whole: int) -> str:
    if whole == 0:
        return "0.0000"
    return str((Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


async def report(
    context: AppContext,
    principal: Principal,
    as_of: datetime | None,
    window_days: int,
    read: ReadFrom = PRIMARY,
) -> SegmentReport:
    """GET /v1/reports/segments."""
    instant = _as_of(context, as_of)

    async def work(connection: Connection) -> tuple[bool, int, dict[str, int]]:
        from_snapshot, sequence = await _source(connection, principal.program_id, instant, window_days)
        counts = await repository.counts(
            connection, principal.program_id, instant, window_days, from_snapshot
        )
        return from_snapshot, sequence, counts

    from_snapshot, sequence, counts = await context.db.read(work, read)
    total = sum(counts.values())
    return SegmentReport(
        as_of=instant,
        window_days=window_days,
        chain_sequence=sequence,
        from_snapshot=from_snapshot,
        members=total,
        segments=[
            SegmentCount(segment=name, members=counts.get(name, 0), share=_share(counts.get(name, 0), total))
            for name in SEGMENTS
        ],
    )


def _member(row: asyncpg.Record) -> SegmentMember:
    return SegmentMember(
        member=row["external_id"],
        segment=row["segment"],
        recency_days=row["recency_days"],
        frequency=row["frequency"],
        monetary=str(row["monetary"]),
        r=row["r"],
        f=row["f"],
        m=row["m"],
    )


async def members(
    context: AppContext,
    principal: Principal,
    *,
    segment: str,
    as_of: datetime | None,
    window_days: int,
    limit: int,
    cursor: str | None,
    read: ReadFrom = PRIMARY,
) -> SegmentMemberPage:
    """GET /v1/reports/segments/members: one segment's members by member id. With
    no as_of the first page fixes it (the cursor carries it), so every page reads
    the same instant."""
    list_id = f"segment-members:{principal.program_id}:{json.dumps([segment, window_days])}"
    after = 0
    if cursor is not None:
        at, after = context.cursors.read(list_id, cursor)
        instant = datetime.fromisoformat(at)
    else:
        instant = _as_of(context, as_of)

    async def work(connection: Connection) -> tuple[int, list[asyncpg.Record]]:
        from_snapshot, sequence = await _source(connection, principal.program_id, instant, window_days)
        rows = await repository.page(
            connection,
            principal.program_id,
            instant,
            window_days,
            from_snapshot,
            segment=segment,
            after=after,
            limit=limit + 1,
        )
        return sequence, rows

    sequence, rows = await context.db.read(work, read)
    page = rows[:limit]
    return SegmentMemberPage(
        as_of=instant,
        chain_sequence=sequence,
        items=[_member(row) for row in page],
        next_cursor=None
        if len(rows) <= limit
        else context.cursors.issue(list_id, instant.isoformat(), page[-1]["member_id"]),
    )


@dataclass(frozen=True, slots=True)
class Snapshots:
    programs: int
    snapshots: int
    members: int


async def snapshot_segments(
    db: Database,
    *,
    program_ids: list[int],
    as_of: datetime,
    now: datetime,
    window_days: int = DEFAULT_WINDOW_DAYS,
    on_progress: Callable[[int], None] | None = None,
) -> Snapshots:
    """Keep each program's segments as of `as_of` (the `snapshot-segments` job): one
    transaction a program; a program that already has a snapshot for as_of is
    left as it is, so a rerun changes nothing."""
    snapshots = members = 0
    for program_id in program_ids:

        async def work(connection: Connection, program_id: int = program_id) -> int | None:
            return await repository.take_snapshot(connection, program_id, as_of, window_days, now)

        taken = await db.call(work)
        if taken is not None:
            snapshots += 1
            members += taken
        if on_progress is not None:
            on_progress(1)
    return Snapshots(programs=len(program_ids), snapshots=snapshots, members=members)
