"""Tiers: each member's tier state, its changes, and the evaluate-tiers job.

The rules module decides (app/rules/tiers.py: windows, qualification, retention;
app/rules/tier_machine.py: term ends, grace, override ends and upgrades in order,
keeping with points and an operator's override, and the `TierDecision` that records
them); this module reads the member's state and the activity the decisions ask for,
holds the members' locks, and writes the decisions through tier_apply():
- an order or event that qualifies a member for a higher tier upgrades them in
  the same transaction (`upgrade_decision`); the term starts when the window that
  qualified them closed (the order's `paid_at`, the event's `occurred_at`, or now
  for one reported late) and lasts `term_months`;
- the job judges each term at its end, on the activity of the window that ends
  then, whenever it actually runs (`evaluate_tiers`); a miss drops the tier after
  `grace_days`; it also applies upgrades that new rules allow; it reads only the
  members that are due, save after a rules change;
- a member may spend the tier's `keep_with_points` to move the term's end
  forward; an operator may set a tier, with or without an end.
Every change writes a history row with its reason and the activity that decided it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import asyncpg
from uuid_utils.compat import uuid7

from app.context import AppContext, RulesSource
from app.db import PRIMARY, Connection, Database, ReadFrom
from app.errors import AppError, ValidationFailed
from app.idempotency import KeyedRequest, StoredResponse
from app.ledger import jobs as ledger_jobs
from app.ledger import posting
from app.ledger.entries import Leg
from app.ledger.errors import MemberNotFound, status_refusal
from app.pagination import Cursors
from app.principal import Principal
from app.rules import RulesDocument
from app.rules.document import uses_referrals
from app.rules.tier_machine import (
    KeepRefused,
    Outcome,
    TierDecision,
    TierState,
    best_upgrade,
    decision,
    evaluate,
    keep_with_points,
    nothing_above,
    operator_override,
    upgrade_windows,
    window,
)
from app.rules.tiers import Activity, progress, qualified, tier_by_code, window_start
from app.rulesets.cache import RulesCache
from app.tiers import repository
from app.tiers.schemas import (
    ActivityOut,
    KeepIn,
    OverrideIn,
    TierChangeOut,
    TierOut,
    TierProgressOut,
    TierStateOut,
)

BATCH = 500


class NotEligible(AppError):
    status, code, title = 422, "not_eligible", "The member cannot keep their tier with points now"


def _activity(row: tuple[int, Decimal, int, int]) -> Activity:
    return Activity(orders=row[0], spend=row[1], points=row[2], referrals=row[3])


async def activity_in(
    connection: Connection, rules: RulesDocument, program_id: int, member_id: int, end: datetime
) -> Activity:
    w = window(rules, end)
    (row,) = await repository.activity(
        connection, program_id, [(member_id, w.start, w.end)], referrals=uses_referrals(rules)
    )
    return _activity(row)


async def upgrade_decision(
    connection: Connection,
    rules: RulesDocument,
    *,
    program_id: int,
    member_id: int,
    current: str | None,
    at: datetime,
    now: datetime,
    extra: Activity | None = None,
    entry_id: uuid.UUID | None = None,
    recorded: Sequence[Activity] | None = None,
) -> TierDecision | None:
    """The upgrade an order or event at `at` makes, if it qualifies the member for a
    higher tier (app.rules.tier_machine.best_upgrade); `extra` is its own
    activity when it is not yet recorded. Both windows it is judged on are read in
    one query, unless the caller read them already (`recorded`: the activity in
    each of upgrade_windows(rules, at, now), as tier_activity() gives it, under the
    same lock). The caller holds the member's lock and applies the decision in its
    transaction."""
    if nothing_above(rules, current):
        return None  # no tiers, or nothing above this one: no query on the checkout's path
    windows = upgrade_windows(rules, at, now)
    if recorded is None:
        rows = await repository.activity(
            connection,
            program_id,
            [(member_id, w.start, w.end) for w in windows],
            referrals=uses_referrals(rules),
        )
        recorded = [_activity(row) for row in rows]
    return best_upgrade(
        rules,
        member_id=member_id,
        current=current,
        at=at,
        judged=zip(windows, recorded, strict=True),
        extra=extra,
        entry_id=entry_id,
    )


async def apply_upgrade(
    connection: Connection,
    rules: RulesDocument,
    rules_version: int,
    *,
    program_id: int,
    member_id: int,
    at: datetime,
    now: datetime,
    entry_id: uuid.UUID | None,
) -> str | None:
    """For an event: upgrade the member (locked by the caller) if the activity now
    recorded qualifies; the tier reached, or None."""
    if not rules.tiers:
        return None
    row = await repository.state_by_id(connection, program_id, member_id)
    assert row is not None
    found = await upgrade_decision(
        connection,
        rules,
        program_id=program_id,
        member_id=member_id,
        current=row["tier_code"],
        at=at,
        now=now,
        entry_id=entry_id,
    )
    if found is None:
        return None
    await repository.apply(connection, program_id, rules_version, now, [found])
    return found.state.tier


async def apply_referrer_upgrade(
    connection: Connection,
    rules: RulesDocument,
    rules_version: int,
    *,
    program_id: int,
    member_id: int,
    at: datetime,
    now: datetime,
    entry_id: uuid.UUID | None,
) -> str | None:
    """After an order of `member_id` paid at `at` is recorded, in its transaction:
    if the member was referred and this is their first order (none not fully
    refunded paid before it), it is a referral for the member who referred them;
    upgrade that member if their activity now qualifies. The referrer's lock is
    taken only then (after the member's, which the order holds). Nothing to do
    under rules whose tiers name no `referrals`."""
    if not uses_referrals(rules):
        return None
    referrer = await repository.locked_referrer_if_first_order(connection, program_id, member_id, at)
    if referrer is None:
        return None
    return await apply_upgrade(
        connection,
        rules,
        rules_version,
        program_id=program_id,
        member_id=referrer,
        at=at,
        now=now,
        entry_id=entry_id,
    )


async def qualified_counts(
    connection: Connection, rules: RulesDocument, program_id: int, as_of: datetime
) -> dict[str, int]:
    """How many of the program's members qualify for each tier of `rules` (as the
    best they reach) on the activity of the window ending at `as_of`, referrals
    counted when the tiers name them: what a what-if shows of tier rules. Reads
    every member, in batches."""
    counts = {tier.code: 0 for tier in rules.tiers}
    if not rules.tiers:
        return counts
    w = window(rules, as_of)
    after = 0
    while True:
        rows = await repository.batch(connection, program_id, after, BATCH)
        if not rows:
            return counts
        members = [row["member_id"] for row in rows]
        found = await repository.activity(
            connection, program_id, [(m, w.start, w.end) for m in members], referrals=uses_referrals(rules)
        )
        for row in found:
            reached = qualified(rules, _activity(row))
            if reached is not None:
                counts[reached.code] += 1
        after = members[-1]


# -- reading ----------------------------------------------------------------------------------


def _state_out(rules: RulesDocument, state: TierState) -> TierStateOut | None:
    if state.tier is None or state.since is None:
        return None
    tier = tier_by_code(rules, state.tier)
    return TierStateOut(
        code=state.tier,
        name=state.tier if tier is None else tier.name,
        since=state.since,
        term_ends_at=state.term_ends_at,
        grace_ends_at=state.grace_ends_at,
        override_until=state.override_until,
        pinned=state.pinned,
    )


def _progress_out(rules: RulesDocument, state: TierState, activity: Activity) -> TierProgressOut | None:
    ahead = progress(rules, state.tier, activity)
    if ahead is None:
        return None
    return TierProgressOut(next_tier=ahead.next_tier.code, missing=dict(ahead.missing))


@dataclass(frozen=True, slots=True)
class MemberTierView:
    tier: TierStateOut | None
    progress: TierProgressOut | None


async def member_view(
    connection: Connection, cache: RulesSource, program_id: int, member_id: int, now: datetime
) -> MemberTierView:
    """The member view's tier and progress (nothing under rules without tiers)."""
    _, rules = await _active(connection, cache, program_id)
    row = await repository.state_by_id(connection, program_id, member_id)
    assert row is not None
    state = repository.state_of(row)
    if not rules.tiers and state.tier is None:
        return MemberTierView(None, None)
    activity = await activity_in(connection, rules, program_id, member_id, now)
    return MemberTierView(_state_out(rules, state), _progress_out(rules, state, activity))


async def member_views(
    connection: Connection, cache: RulesSource, program_id: int, member_ids: list[int], now: datetime
) -> dict[int, MemberTierView]:
    """member_view() for a page of members: two queries, whatever the page's size."""
    _, rules = await _active(connection, cache, program_id)
    states = {
        row["member_id"]: repository.state_of(row)
        for row in await repository.states_by_ids(connection, program_id, member_ids)
    }
    judged = [m for m in member_ids if rules.tiers or states[m].tier is not None]
    w = window(rules, now)
    windows = [(m, w.start, w.end) for m in judged]
    rows = (
        await repository.activity(connection, program_id, windows, referrals=uses_referrals(rules))
        if judged
        else []
    )
    views = {m: MemberTierView(None, None) for m in member_ids}
    for member_id, row in zip(judged, rows, strict=True):
        state = states[member_id]
        views[member_id] = MemberTierView(
            _state_out(rules, state), _progress_out(rules, state, _activity(row))
        )
    return views


async def _active(connection: Connection, cache: RulesSource, program_id: int) -> tuple[int, RulesDocument]:
    return await cache.active(connection, program_id)


def _change_out(row: asyncpg.Record) -> TierChangeOut:
    data = None if row["activity"] is None else json.loads(row["activity"])
    activity = None
    if data is not None:
        activity = ActivityOut(
            orders=data["orders"],
            spend=data["spend"],
            points=data["points"],
            referrals=data.get("referrals", 0),
            window_start=data["window_start"],
            window_end=data["window_end"],
        )
    return TierChangeOut(
        from_tier=row["from_tier"],
        to_tier=row["to_tier"],
        reason=row["reason"],
        effective_at=row["effective_at"],
        recorded_at=row["recorded_at"],
        term_ends_at=row["term_ends_at"],
        activity=activity,
        rules_version=row["rules_version"],
        entry_id=row["entry_id"],
        note=row["note"],
    )


async def get(
    context: AppContext,
    principal: Principal,
    member: str,
    *,
    limit: int,
    cursor: str | None,
    read: ReadFrom = PRIMARY,
) -> TierOut:
    async def work(connection: Connection) -> TierOut:
        row = await repository.state(connection, principal.program_id, member)
        if row is None:
            raise MemberNotFound(f"no member {member} in this program")
        list_id = f"tier-history:{row['member_id']}"
        (before,) = [2**63 - 1] if cursor is None else context.cursors.read(list_id, cursor)
        _, rules = await _active(connection, context.rules, principal.program_id)
        return await _view(
            connection,
            context.cursors,
            rules,
            principal.program_id,
            member,
            row["member_id"],
            context.clock.now(),
            limit,
            before,
        )

    return await context.db.read(work, read)


async def _view(
    connection: Connection,
    cursors: Cursors,
    rules: RulesDocument,
    program_id: int,
    member: str,
    member_id: int,
    now: datetime,
    limit: int = 50,
    before: int = 2**63 - 1,
) -> TierOut:
    row = await repository.state_by_id(connection, program_id, member_id)
    assert row is not None
    state = repository.state_of(row)
    activity = await activity_in(connection, rules, program_id, member_id, now)
    rows = await repository.history(connection, program_id, member_id, before, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return TierOut(
        member=member,
        tier=_state_out(rules, state),
        progress=_progress_out(rules, state, activity),
        activity=ActivityOut(
            orders=activity.orders,
            spend=str(activity.spend),
            points=activity.points,
            referrals=activity.referrals,
            window_start=window_start(rules, now),
            window_end=now,
        ),
        history=[_change_out(r) for r in rows],
        next_cursor=cursors.issue(f"tier-history:{member_id}", rows[-1]["id"]) if more else None,
    )


# -- keeping and overriding -------------------------------------------------------------------


async def keep(context: AppContext, request: KeyedRequest, member: str, body: KeepIn) -> StoredResponse:
    """Spend the tier's `keep_with_points` to move the term's end forward by
    `term_months` (POST /v1/members/{id}/tier/keep)."""
    now = context.clock.now()
    program_id = request.principal.program_id

    async def work(connection: Connection) -> StoredResponse:
        async with connection.transaction():
            row = await repository.state(connection, program_id, member, lock=True)
            if row is None:
                raise MemberNotFound(f"no member {member} in this program")
            found = await posting.stored(connection, request)
            if found is not None:
                return found
            rules_version, rules = await _active(connection, context.rules, program_id)
            state = repository.state_of(row)
            entry_id = uuid7()
            kept = keep_with_points(
                rules, member_id=row["member_id"], state=state, now=now, entry_id=entry_id
            )
            if isinstance(kept, KeepRefused):
                raise _not_eligible(member, state, kept)
            # The change first, so the answer (kept for the key) shows the tier as it is
            # after it; the entry it names follows in the same transaction (the
            # foreign key is checked at commit), and a refusal undoes both.
            await repository.apply(connection, program_id, rules_version, now, [kept.decision])
            out = await _view(connection, context.cursors, rules, program_id, member, row["member_id"], now)
            return await posting.post_in_transaction(
                connection,
                request,
                "tier_keep",
                [Leg(member, "available", -kept.price), Leg(None, "redemption", kept.price)],
                now,
                response_body=out.model_dump_json().encode(),
                entry_id=entry_id,
                reason=f"kept tier {state.tier} until {kept.renewed:%Y-%m-%d}",
                rules_version=rules_version,
                metadata=body.metadata,
            )

    return await context.db.call(work)


def _not_eligible(member: str, state: TierState, refused: KeepRefused) -> NotEligible:
    if refused.reason == "not_for_sale":
        return NotEligible(f"member {member}'s tier ({state.tier or 'none'}) cannot be kept with points")
    if refused.reason == "set_by_operator":
        return NotEligible(f"member {member}'s tier is set by an operator; it has no term to extend")
    return NotEligible(f"member {member}'s term ended at {state.term_ends_at:%Y-%m-%dT%H:%M:%SZ}")


async def override(context: AppContext, principal: Principal, member: str, body: OverrideIn) -> TierOut:
    """Set a member's tier by hand (PUT /v1/members/{id}/tier). With `until`, the
    normal rules apply again from then (judged as at a term's end); without, the
    tier stays until changed again (an upgrade the member earns still applies)."""
    now = context.clock.now()
    if body.until is not None and body.until <= now:
        raise ValidationFailed.on("body.until", "must be in the future")

    async def work(connection: Connection) -> None:
        async with connection.transaction():
            row = await repository.state(connection, principal.program_id, member, lock=True)
            if row is None:
                raise MemberNotFound(f"no member {member} in this program")
            if await repository.member_status(connection, principal.program_id, row["member_id"]) == "closed":
                raise status_refusal(member, "closed")
            rules_version, rules = await _active(connection, context.rules, principal.program_id)
            if body.code is not None and tier_by_code(rules, body.code) is None:
                known = ", ".join(tier.code for tier in rules.tiers) or "none"
                raise ValidationFailed.on(
                    "body.code", f"no tier {body.code} in the active rules (tiers: {known})"
                )
            found = operator_override(
                member_id=row["member_id"],
                state=repository.state_of(row),
                code=body.code,
                until=body.until,
                now=now,
                actor_key_id=principal.key_id,
                note=body.reason,
            )
            if found is None:
                return  # already so: setting it again changes nothing
            await repository.apply(connection, principal.program_id, rules_version, now, [found])

    await context.db.call(work)
    return await get(context, principal, member, limit=50, cursor=None)


# -- the job ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Evaluated:
    members: int
    changes: int
    upgraded: int
    retained: int
    downgraded: int


JOB = "evaluate-tiers"
# Clocks of the service's processes may disagree by this much: a change recorded
# by another process a moment after this run read its clock, yet committed before
# the run began, may be dated up to this far past the run's clock.
CLOCK_SKEW = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class _Plan:
    """One program's run: whom to judge (None: every member), how many members the
    program has, and the watermark to leave."""

    program_id: int
    rules_version: int
    txid: int
    due: list[int] | None
    members: int | None


def _judges_only_the_due(last: ledger_jobs.Watermark | None, rules_version: int, as_of: datetime) -> bool:
    """Whether a run may judge only the due members and know the rest unchanged.

    A member's tier changes in the job at a term's end, an override's end or in
    grace (all found by date), or by an upgrade. Upgrades happen at once when an
    order or event qualifies the member, judged on the windows ending at its time
    and at its recording: for an instant as late as every recording, a later
    window holds no more than those did (activity leaves a window, it never comes
    back), and no more than the last run's window since it judged. So the job
    only has to judge, beside the due, the members whose tier or activity changed
    since the last run began: a tier written since (member_tier.txid), an order or
    event decided under other rules than the active ones (one in flight when they
    were activated). All of that holds under the rules the last run judged by,
    for instants no earlier than its own and than its clock (plus CLOCK_SKEW);
    otherwise the run judges every member, as after a rules change."""
    return (
        last is not None
        and last.rules_version == rules_version
        and as_of >= last.as_of
        and as_of >= last.ran_at + CLOCK_SKEW
    )


async def _plan(
    connection: Connection, cache: RulesSource, program_id: int, as_of: datetime, count: bool
) -> _Plan:
    version, _ = await _active(connection, cache, program_id)
    # Before reading whom to judge: what commits from here on is found next time.
    txid = await ledger_jobs.snapshot_txid(connection)
    last = await ledger_jobs.watermark(connection, program_id, JOB)
    if last is None or not _judges_only_the_due(last, version, as_of):
        members = await repository.count_members(connection, program_id) if count else None
        return _Plan(program_id, version, txid, None, members)
    due = set(await repository.due_members(connection, program_id, as_of, last.txid))
    due.update(
        await ledger_jobs.members_posted_since(
            connection, program_id, last.txid, kinds=("earn", "event"), other_rules_than=version
        )
    )
    # The members the run covers: those due judged, the others known unchanged.
    members = await repository.count_members(connection, program_id)
    return _Plan(program_id, version, txid, sorted(due), members)


async def evaluate_tiers(
    db: Database,
    *,
    program_ids: Sequence[int],
    as_of: datetime,
    now: datetime,
    batch: int = BATCH,
    on_total: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Evaluated:
    """Judge the members of the given programs as of `as_of`: term ends, grace
    ends, override ends, and upgrades the active rules allow. Only the members
    that are due are read (`_judges_only_the_due`); after a rules change, or a
    run as of an earlier instant than the last, every member is. Batches of
    `batch` members in id order, each in its own transaction holding those
    members' locks; running again for the same instant finds nothing left to change."""
    cache = RulesCache()
    async with db.pool.acquire() as connection:
        plans = [
            await _plan(connection, cache, program, as_of, on_total is not None) for program in program_ids
        ]
    if on_total is not None:
        on_total(sum(len(plan.due) if plan.due is not None else plan.members or 0 for plan in plans))
    totals = {"members": 0, "changes": 0, "qualified": 0, "retained": 0, "downgraded": 0}
    for plan in plans:
        # Every member: batches after the last member id read. The due: the next
        # `batch` of them.
        position = 0
        while True:
            if plan.due is None:
                read = _after(plan.program_id, position, batch)
            else:
                read = _these(plan.program_id, plan.due[position : position + batch])
            done = await db.call(_evaluate_batch(cache, plan.program_id, read, as_of, now))
            if done is None:
                break
            position = done.last_member_id if plan.due is None else position + batch
            for key, value in done.counts.items():
                totals[key] += value
            if on_progress is not None:
                on_progress(done.counts["members"])
        if plan.due is not None:
            # The count of members covered: those not due are known unchanged.
            totals["members"] += (plan.members or 0) - len(plan.due)
        async with db.pool.acquire() as connection:
            await ledger_jobs.set_watermark(
                connection,
                plan.program_id,
                JOB,
                ledger_jobs.Watermark(plan.rules_version, as_of, now, plan.txid),
                now,
            )
    return Evaluated(
        totals["members"], totals["changes"], totals["qualified"], totals["retained"], totals["downgraded"]
    )


Reader = Callable[[Connection], Awaitable[list[asyncpg.Record]]]


def _after(program_id: int, after: int, batch: int) -> Reader:
    async def read(connection: Connection) -> list[asyncpg.Record]:
        return await repository.batch(connection, program_id, after, batch)

    return read


def _these(program_id: int, member_ids: list[int]) -> Reader:
    async def read(connection: Connection) -> list[asyncpg.Record]:
        return await repository.states_by_ids(connection, program_id, member_ids) if member_ids else []

    return read


@dataclass(frozen=True, slots=True)
class _Batch:
    last_member_id: int
    counts: dict[str, int]


async def _outcomes(
    connection: Connection,
    rules: RulesDocument,
    program_id: int,
    states: dict[int, TierState],
    as_of: datetime,
) -> dict[int, Outcome]:
    """Each member's outcome, asking the database for the windows the decisions need
    (most members need one; a term end judged late, two or more)."""
    # Members with no tier under rules with no tiers have nothing to judge.
    pending = {m: s for m, s in states.items() if rules.tiers or s.tier is not None}
    known: dict[int, dict[datetime, Activity]] = {m: {} for m in pending}
    outcomes: dict[int, Outcome] = {}
    while pending:
        asked: list[tuple[int, datetime]] = []
        for member_id, state in pending.items():
            outcome = evaluate(rules, state, as_of, known[member_id])
            if outcome.needs is None:
                outcomes[member_id] = outcome
            else:
                asked.append((member_id, outcome.needs))
        starts = {end: window_start(rules, end) for end in {end for _, end in asked}}  # most share as_of
        windows = [(m, starts[end], end) for m, end in asked]
        found = await repository.activity(connection, program_id, windows, referrals=uses_referrals(rules))
        for (member_id, end), row in zip(asked, found, strict=True):
            known[member_id][end] = _activity(row)
        pending = {m: pending[m] for m, _ in asked}
    return outcomes


def _evaluate_batch(
    cache: RulesSource, program_id: int, read: Reader, as_of: datetime, now: datetime
) -> Callable[[Connection], Awaitable[_Batch | None]]:
    async def work(connection: Connection) -> _Batch | None:
        rows = await read(connection)
        if not rows:
            return None
        rules_version, rules = await _active(connection, cache, program_id)
        counts = {"members": len(rows), "changes": 0, "qualified": 0, "retained": 0, "downgraded": 0}
        # First without locks: most members change nothing on most runs, and locking
        # them would only make earning wait. Those that do change are then locked,
        # read again and judged again, so a decision is never made on stale state.
        seen = {row["member_id"]: repository.state_of(row) for row in rows}
        first = await _outcomes(connection, rules, program_id, seen, as_of)
        changing = [m for m, outcome in first.items() if decision(m, seen[m], outcome) is not None]
        if changing:
            async with connection.transaction():
                locked = await repository.locked_members(connection, program_id, changing)
                states = {row["member_id"]: repository.state_of(row) for row in locked}
                decisions = []
                outcomes = await _outcomes(connection, rules, program_id, states, as_of)
                for member_id, outcome in outcomes.items():
                    found = decision(member_id, states[member_id], outcome)
                    if found is None:
                        continue
                    decisions.append(found)
                    for change in outcome.changes:
                        counts["changes"] += 1
                        counts[change.reason] += 1
                await repository.apply(connection, program_id, rules_version, now, decisions)
        return _Batch(max(row["member_id"] for row in rows), counts)

    return work
