"""RFM segments as of an instant: the report, a segment's members, and the
snapshots the `snapshot-segments` job keeps for the rules."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import asyncpg

from app.context import AppContext, RulesSource
from app.db import PRIMARY, Connection, Database, ReadFrom
from app.errors import ValidationFailed
from app.principal import Principal
from app.rulesets.cache import RulesCache
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


async def _currency(
    connection: Connection, rules: RulesSource, program_id: int, as_of: datetime, window_days: int
) -> str | None:
    """The currency monetary is measured in (docs/segments.md): the `currency` of
    the rules in force at as_of, else their valuation's, else the one most of the
    window's orders were paid in; None when neither is set and there is no order.
    All of it as recorded by as_of, so a past as_of keeps its currency."""
    version = await repository.version_at(connection, program_id, as_of)
    if version is not None:
        document = await rules.document(connection, program_id, version)
        declared = document.currency or (document.valuation.currency if document.valuation else None)
        if declared is not None:
            return declared
    return await repository.most_used_currency(connection, program_id, as_of, window_days)


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

    async def work(connection: Connection) -> tuple[bool, int, str | None, int, dict[str, int]]:
        program_id = principal.program_id
        from_snapshot, sequence = await _source(connection, program_id, instant, window_days)
        currency = await _currency(connection, context.rules, program_id, instant, window_days)
        window = (connection, program_id, instant, window_days, currency)
        others = await repository.other_currency_orders(*window)
        counts = await repository.counts(*window, from_snapshot)
        return from_snapshot, sequence, currency, others, counts

    from_snapshot, sequence, currency, others, counts = await context.db.read(work, read)
    total = sum(counts.values())
    return SegmentReport(
        as_of=instant,
        window_days=window_days,
        chain_sequence=sequence,
        from_snapshot=from_snapshot,
        currency=currency,
        other_currency_orders=others,
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

    async def work(connection: Connection) -> tuple[int, str | None, list[asyncpg.Record]]:
        from_snapshot, sequence = await _source(connection, principal.program_id, instant, window_days)
        currency = await _currency(connection, context.rules, principal.program_id, instant, window_days)
        rows = await repository.page(
            connection,
            principal.program_id,
            instant,
            window_days,
            currency,
            from_snapshot,
            segment=segment,
            after=after,
            limit=limit + 1,
        )
        return sequence, currency, rows

    sequence, currency, rows = await context.db.read(work, read)
    page = rows[:limit]
    return SegmentMemberPage(
        as_of=instant,
        chain_sequence=sequence,
        currency=currency,
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
    pruned: int


async def snapshot_segments(
    db: Database,
    *,
    program_ids: list[int],
    as_of: datetime,
    now: datetime,
    retention_days: int,
    window_days: int = DEFAULT_WINDOW_DAYS,
    on_progress: Callable[[int], None] | None = None,
) -> Snapshots:
    """Keep each program's segments as of `as_of` (the `snapshot-segments` job): one
    transaction a program; a program that already has a snapshot for as_of is
    left as it is, so a rerun changes nothing. Then prune the program's snapshots
    older than `retention_days` before as_of, but the latest one before that
    cutoff: an order paid since the cutoff reads the snapshot it read before."""
    rules = RulesCache()
    cutoff = as_of - timedelta(days=retention_days)
    snapshots = members = pruned = 0
    for program_id in program_ids:

        async def work(connection: Connection, program_id: int = program_id) -> tuple[int | None, int]:
            currency = await _currency(connection, rules, program_id, as_of, window_days)
            taken = await repository.take_snapshot(connection, program_id, as_of, window_days, currency, now)
            return taken, await repository.prune(connection, program_id, cutoff)

        taken, gone = await db.call(work)
        pruned += gone
        if taken is not None:
            snapshots += 1
            members += taken
        if on_progress is not None:
            on_progress(1)
    return Snapshots(programs=len(program_ids), snapshots=snapshots, members=members, pruned=pruned)
