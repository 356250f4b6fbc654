"""Expiry: the `expire` job, and what a member will lose next (the member view).

Each lot carries the expiry its credit was given (an award's `expires_at`, or the
rules' `rolling` / `end_of_period` policy, decided when the points were earned);
the job expires, per member, the lots whose date has passed. Under an
`inactivity` policy, the job also expires all points of members without an order
for the policy's months; the active rules version decides that, at each run.

The job reads only the members that may have something to expire, each through an
index on a date: lots past their date, and under an inactivity policy the members
whose last activity reached the cutoff since the last run (or whose points moved
since it began). Nothing due, nothing read (bench/due.py measures it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from uuid_utils.compat import uuid7

from app.context import RulesSource
from app.db import Connection, Database
from app.ledger import repository
from app.ledger.jobs import Watermark, set_watermark, snapshot_txid, watermark
from app.metrics import ENTRIES
from app.outbox import emit
from app.rules import RulesDocument
from app.rules.lifecycle import inactivity_cutoffs, inactivity_deadline
from app.rulesets.cache import RulesCache

# Members per batch: each batch is one statement that locks its members until it
# commits, so earning for them waits at most one batch (bench/expire.py measures it).
BATCH = 200


@dataclass(frozen=True, slots=True)
class Expired:
    members: int
    lots: int
    points: int


@dataclass(frozen=True, slots=True)
class _Policy:
    version: int
    rules: RulesDocument

    @property
    def inactivity_months(self) -> int | None:
        expiry = self.rules.expiry
        return expiry.months if expiry.policy == "inactivity" else None


async def _policy(connection: Connection, cache: RulesSource, program_id: int) -> _Policy:
    return _Policy(*await cache.active(connection, program_id))


JOB = "expire"


@dataclass(frozen=True, slots=True)
class _Plan:
    """One program's run: its policy, whom to look at, and the watermark to leave."""

    program_id: int
    policy: _Policy
    members: list[int]
    mark: Watermark | None


async def _plan(
    connection: Connection, cache: RulesSource, program_id: int, as_of: datetime, now: datetime
) -> _Plan:
    policy = await _policy(connection, cache, program_id)
    # Before reading whom to look at: what commits from here on is found next time.
    txid = await snapshot_txid(connection)
    cutoffs = inactivity_cutoffs(policy.rules, as_of)
    if cutoffs is None:
        members = await repository.expiry_candidates(
            connection, program_id, as_of, possibly_inactive=None, inactive_through=None, since_txid=None
        )
        return _Plan(program_id, policy, members, None)
    # Every member whose last activity is at or before `inactive_through` lost
    # their points when the run that left it looked at them, and one given points
    # since has a posting at or after its txid (whatever the rules said meanwhile).
    # So this run looks at those whose last activity reached its cutoff since, and
    # those given points since; then every member at or before its own `surely` is
    # settled the same way.
    last = await watermark(connection, program_id, JOB)
    members = await repository.expiry_candidates(
        connection,
        program_id,
        as_of,
        possibly_inactive=cutoffs.possibly,
        inactive_through=None if last is None else last.inactive_through,
        since_txid=None if last is None else last.txid,
    )
    mark = Watermark(policy.version, as_of, now, txid, inactive_through=cutoffs.surely)
    return _Plan(program_id, policy, members, mark)


async def expire(
    db: Database,
    *,
    program_ids: Sequence[int],
    as_of: datetime,
    now: datetime,
    batch: int = BATCH,
    on_total: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Expired:
    """Expire what has expired as of `as_of` in the given programs: one `expire`
    entry per member.

    Batches of `batch` members, each its own transaction, in member id order: a
    crash loses at most the batch in flight, and a rerun (or a second run for the
    same instant) finds only what is still left to expire."""
    cache = RulesCache()
    async with db.pool.acquire() as connection:
        plans = [await _plan(connection, cache, program, as_of, now) for program in program_ids]
    if on_total is not None:
        on_total(sum(len(plan.members) for plan in plans))
    members = lots = points = 0
    for plan in plans:
        for first in range(0, len(plan.members), batch):
            chosen = plan.members[first : first + batch]
            done = await db.call(_batch(plan.program_id, plan.policy, chosen, as_of, now))
            members += done.members
            lots += done.lots
            points += done.points
            ENTRIES.labels("expire").inc(done.members)
            if on_progress is not None:
                on_progress(len(chosen))
        if plan.mark is not None:
            mark = plan.mark
            async with db.pool.acquire() as connection:
                await set_watermark(connection, plan.program_id, JOB, mark, now)
    return Expired(members, lots, points)


def _batch(
    program_id: int, policy: _Policy, member_ids: list[int], as_of: datetime, now: datetime
) -> Callable[[Connection], Awaitable[repository.ExpiredBatch]]:
    async def work(connection: Connection) -> repository.ExpiredBatch:
        return await repository.expire_batch(
            connection,
            program_id=program_id,
            member_ids=member_ids,
            as_of=as_of,
            now=now,
            rules_version=policy.version,
            inactivity_months=policy.inactivity_months,
            timezone=policy.rules.timezone,
            entry_ids=[uuid7() for _ in member_ids],
        )

    return work


@dataclass(frozen=True, slots=True)
class Expiring:
    points: int
    expires_at: datetime


async def expiring(
    connection: Connection, cache: RulesSource, program_id: int, member_id: int, *, limit: int = 10
) -> list[Expiring]:
    """The member's next expiries, soonest first: their lots grouped by date and,
    under an inactivity policy, everything else at the date they would lose it all."""
    policy = await _policy(connection, cache, program_id)
    rows = await repository.expiring_lots(connection, program_id, member_id, limit)
    items = [Expiring(row["points"], row["expires_at"]) for row in rows]
    if policy.inactivity_months is None:
        return items
    last_activity, available = await repository.last_activity(connection, program_id, member_id)
    deadline = inactivity_deadline(policy.rules, last_activity)
    if deadline is None or available == 0:
        return items
    before = [item for item in items if item.expires_at < deadline]
    rest = available - sum(item.points for item in before)
    return [*before, Expiring(rest, deadline)][:limit] if rest > 0 else before


# Each member's lots by local expiry date (the program's timezone: lots of one day
# expire at many instants under a rolling policy) within the widest threshold; for each
# threshold reached (fewer than that many days left), a notice row unless it
# exists. Returns every threshold reached and whether this run wrote its notice.
NOTICES = """
WITH due AS (
    SELECT l.member_id, (l.expires_at AT TIME ZONE $6)::date AS day,
           min(l.expires_at) AS expires_at, sum(l.remaining)::bigint AS points
      FROM point_lot l
     WHERE l.program_id = $1 AND l.remaining > 0
       AND l.expires_at > $2 AND l.expires_at < $2 + make_interval(days => $3)
     GROUP BY l.member_id, (l.expires_at AT TIME ZONE $6)::date
), reached AS (
    SELECT d.member_id, d.day, d.expires_at, d.points, t.days
      FROM due d CROSS JOIN unnest($4::int[]) AS t(days)
     WHERE d.expires_at < $2 + make_interval(days => t.days)
), fresh AS (
    -- one notice per member, local expiry date (kept as its midnight) and threshold
    INSERT INTO expiry_notice (program_id, member_id, expires_at, days_before, created_at)
    SELECT $1, member_id, day::timestamp AT TIME ZONE $6, days, $5 FROM reached
    ON CONFLICT DO NOTHING
    RETURNING member_id, expires_at, days_before
)
SELECT r.member_id, m.external_id, r.expires_at, r.points, r.days,
       EXISTS (SELECT 1 FROM fresh f WHERE (f.member_id, f.expires_at, f.days_before)
                                         = (r.member_id, r.day::timestamp AT TIME ZONE $6, r.days)) AS fresh
  FROM reached r JOIN member m ON m.program_id = $1 AND m.id = r.member_id
 ORDER BY r.member_id, r.expires_at, r.days
"""


@dataclass(frozen=True, slots=True)
class Notified:
    members: int
    events: int


async def notify_expiring(
    db: Database, *, program_ids: Sequence[int], as_of: datetime, now: datetime
) -> Notified:
    """The `notify-expiring` job: a `points.expiring_soon` event
    ({member, points, expires_at, days_before}) per member, local expiry date (the
    first instant that day) and threshold
    of the rules' `expiry.warn_days_before` once fewer than that many days are left
    at `as_of`. When a run finds several thresholds reached at once (the first run,
    or after a pause), only the tightest is announced: a member is not told "30 days
    left" and "7 days left" in the same breath. Idempotent: each notice is written
    once (expiry_notice), in the transaction of its event."""
    members: set[int] = set()
    events = 0
    cache = RulesCache()
    for program_id in program_ids:
        async with db.pool.acquire() as connection, connection.transaction():
            policy = await _policy(connection, cache, program_id)
            thresholds = sorted(set(policy.rules.expiry.warn_days_before))
            if not thresholds:
                continue
            rows = await connection.fetch(
                NOTICES, program_id, as_of, max(thresholds), thresholds, now, policy.rules.timezone
            )
            tightest: dict[tuple[int, datetime], Any] = {}
            for row in rows:  # ordered by days: the first per (member, date) is the tightest
                tightest.setdefault((row["member_id"], row["expires_at"]), row)
            for row in tightest.values():
                if not row["fresh"]:
                    continue
                await emit(
                    connection,
                    program_id,
                    "points.expiring_soon",
                    {
                        "member": row["external_id"],
                        "points": row["points"],
                        "expires_at": row["expires_at"].astimezone(UTC).isoformat().replace("+00:00", "Z"),
                        "days_before": row["days"],
                    },
                    occurred_at=as_of,
                    now=now,
                    members=[row["member_id"]],
                )
                members.add(row["member_id"])
                events += 1
    return Notified(len(members), events)
