"""Where points move. Every award, redemption, transfer and reversal is one call
to `_post`: one ledger_post() statement that writes the journal entry and keeps
the first response for its Idempotency-Key, atomically."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from uuid_utils.compat import uuid7

from app.auth.service import Principal
from app.context import AppContext
from app.db import Connection, Database
from app.errors import AppError, FieldError, NotFound, ValidationFailed
from app.fields import Money
from app.idempotency import IdempotencyKeyReused, StoredResponse
from app.ledger import repository
from app.ledger.entries import (
    JOB_KEY_PREFIX as JOB_KEY_PREFIX,
)
from app.ledger.entries import (
    LIFECYCLE_KINDS,
    ORDER_KINDS,
    EntryKind,
    MemberAccount,
    Posted,
)
from app.ledger.entries import Leg as Leg  # re-exported: other domains build legs through the service
from app.ledger.entries import NewEntry as NewEntry
from app.ledger.schemas import (
    AwardIn,
    BalanceOut,
    RedemptionIn,
    ReversalIn,
    StatementItem,
    StatementPage,
    TransferIn,
)
from app.members.errors import MemberNotFound
from app.metrics import ENTRIES
from app.pagination import decode_cursor, encode_cursor
from app.rules import RulesDocument
from app.rules.lifecycle import lot_expiry, redeem_refusal
from app.rulesets.cache import RulesCache
from app.sql import SqlState


class InsufficientPoints(AppError):
    status, code, title = 422, "insufficient_points", "Not enough points"


class PointsOutOfRange(AppError):
    status, code, title = 422, "points_out_of_range", "A balance would leave the 64-bit range"


class EntryNotFound(NotFound):
    code, title = "entry_not_found", "Entry not found"


class AlreadyReversed(AppError):
    status, code, title = 409, "already_reversed", "The entry has already been reversed"


class EntryNotReversible(AppError):
    status, code, title = 422, "entry_not_reversible", "This entry cannot be reversed"


class CurrencyMismatch(AppError):
    status, code, title = 422, "currency_mismatch", "The currency is not the program's or the order's"


class PointsBelowMinimum(AppError):
    status, code, title = 422, "points_below_minimum", "Fewer points than the program redeems at once"


class PointsNotInIncrements(AppError):
    status, code, title = 422, "points_not_in_increments", "Points must be redeemed in set increments"


class PointsExceedOrderShare(AppError):
    status, code, title = 422, "points_exceed_order_share", "Points may pay only part of an order"


_REDEEM_REFUSALS: dict[str, type[AppError]] = {
    cls.code: cls for cls in (PointsBelowMinimum, PointsNotInIncrements, PointsExceedOrderShare)
}
REDEEM_LIMIT_ERRORS = (PointsBelowMinimum, PointsNotInIncrements, PointsExceedOrderShare, CurrencyMismatch)


@dataclass(frozen=True, slots=True)
class Request:
    """One ledger-changing request: who asks, under which key, for what exactly."""

    principal: Principal
    idempotency_key: str
    fingerprint: str


def _insufficient(exc: asyncpg.PostgresError) -> InsufficientPoints:
    try:
        facts: dict[str, Any] = json.loads(getattr(exc, "detail", None) or "{}")
        needed = -int(facts["change_available"])
        return InsufficientPoints(
            f"member {facts['member']} has {facts['available']} available points; this needs {needed}"
        )
    except (ValueError, KeyError, TypeError):
        return InsufficientPoints("a member has not enough available points for this entry")


def as_app_error(exc: asyncpg.PostgresError) -> AppError | None:
    """The problem a database refusal means for the caller; None if it is not the
    caller's (app/sql/README.md lists every SQLSTATE and its problem)."""
    state = exc.sqlstate
    constraint = getattr(exc, "constraint_name", None)
    if state == SqlState.INSUFFICIENT_POINTS:
        return _insufficient(exc)
    if state == SqlState.IDEMPOTENCY_KEY_REUSED or (
        state == SqlState.UNIQUE_VIOLATION and constraint == "pk_idempotency_record"
    ):
        return IdempotencyKeyReused("this Idempotency-Key was used for a different request")
    if state == SqlState.MEMBER_NOT_FOUND:
        return MemberNotFound(f"no member {getattr(exc, 'detail', '')!s} in this program")
    if state == SqlState.NUMERIC_VALUE_OUT_OF_RANGE:
        return PointsOutOfRange("the entry would take a balance beyond 9223372036854775807 points")
    if state == SqlState.UNIQUE_VIOLATION and constraint == "uq_journal_entry_reverses_entry_id":
        return AlreadyReversed(
            "the entry has already been reversed; reverse the reversal's effect with a new award"
        )
    return None


def replay(request: Request, posted: Posted) -> StoredResponse:
    """The stored response for a retry of `request`; a different request under the
    same key is 422 `idempotency_key_reused`."""
    if posted.request_fingerprint != request.fingerprint or posted.response_body is None:
        raise IdempotencyKeyReused("this Idempotency-Key was used for a different request")
    return StoredResponse(posted.status_code or 201, bytes(posted.response_body), replayed=True)


async def stored(connection: Connection, request: Request) -> StoredResponse | None:
    """The response already kept for the request's key (a replay), if any."""
    row = await repository.stored_response(connection, request.principal.program_id, request.idempotency_key)
    if row is None:
        return None
    return replay(request, Posted(True, row["request_fingerprint"], row["status_code"], row["response_body"]))


async def replay_or_raise(context: AppContext, request: Request, error: AppError) -> StoredResponse:
    """For checks that depend on the clock: a retry of a request that passed them
    the first time replays its response instead of failing now."""
    async with context.db.pool.acquire() as connection:
        found = await stored(connection, request)
    if found is None:
        raise error
    return found


async def post_in_transaction(
    connection: Connection,
    request: Request,
    kind: EntryKind,
    legs: list[Leg],
    now: datetime,
    *,
    response_body: bytes | None = None,
    replay_ok: bool = False,
    **fields: Any,
) -> StoredResponse:
    """Post an entry inside the caller's transaction (refunds, events, holds). The
    caller has already checked the key; if another request took it meanwhile, that
    is 422 `idempotency_key_reused`, or with `replay_ok`, the first response when it
    was this same request (`replayed` set: the caller must write nothing more)."""
    entry = _new_entry(request, kind, legs, now, fields)
    try:
        posted = await repository.post(connection, entry, response_body=response_body)
    except asyncpg.PostgresError as exc:
        problem = as_app_error(exc)
        if problem is None:
            raise
        raise problem from exc
    if posted.replayed:
        if replay_ok:
            return replay(request, posted)
        raise IdempotencyKeyReused("this Idempotency-Key was used for a different request")
    ENTRIES.labels(kind).inc()
    assert posted.response_body is not None
    return StoredResponse(201, bytes(posted.response_body))


async def keep_response(connection: Connection, request: Request, body: bytes, now: datetime) -> None:
    """Keep the response of a request that moved no points (a refund worth 0 points)
    for its key, inside the caller's transaction."""
    if not await repository.keep_response(
        connection, request.principal.program_id, request.idempotency_key, request.fingerprint, body, now
    ):
        raise IdempotencyKeyReused("this Idempotency-Key was used for a different request")


def _new_entry(
    request: Request, kind: EntryKind, legs: list[Leg], now: datetime, fields: dict[str, Any]
) -> NewEntry:
    return NewEntry(
        id=fields.pop("entry_id", None) or uuid7(),
        program_id=request.principal.program_id,
        kind=kind,
        idempotency_key=request.idempotency_key,
        request_fingerprint=request.fingerprint,
        occurred_at=fields.pop("occurred_at", now),
        recorded_at=now,
        actor_key_id=request.principal.key_id,
        legs=tuple(legs),
        **fields,
    )


async def _post(
    context: AppContext, request: Request, kind: EntryKind, legs: list[Leg], now: datetime, **fields: Any
) -> StoredResponse:
    entry = _new_entry(request, kind, legs, now, fields)

    async def work(connection: Connection) -> Posted:
        try:
            return await repository.post(connection, entry)
        except asyncpg.PostgresError as exc:
            problem = as_app_error(exc)
            if problem is None:
                raise
            raise problem from exc

    # One statement in autocommit: ledger_post() is atomic on its own.
    posted = await context.db.call(work)
    if posted.replayed:
        return replay(request, posted)
    ENTRIES.labels(kind).inc()
    assert posted.response_body is not None
    return StoredResponse(201, bytes(posted.response_body))


async def award(context: AppContext, request: Request, member: str, body: AwardIn) -> StoredResponse:
    now = context.clock.now()
    if body.expires_at is not None and body.expires_at <= now:
        return await replay_or_raise(
            context, request, ValidationFailed.on("body.expires_at", "must be in the future")
        )
    pending = body.pending_until is not None and body.pending_until > now
    if (
        pending
        and body.expires_at is not None
        and body.pending_until is not None
        and body.pending_until >= body.expires_at
    ):
        raise ValidationFailed.on("body.pending_until", "must be before expires_at")
    account: MemberAccount = "pending" if pending else "available"
    rules_version = None
    expires_at = body.expires_at
    if expires_at is None:
        # The program's expiry policy dates the points from when they are given.
        async with context.db.pool.acquire() as connection:
            rules_version, rules = await active_rules(context.rules, connection, request.principal.program_id)
        expires_at = lot_expiry(rules, now)
        if expires_at is None:
            rules_version = None
        elif pending and body.pending_until is not None and body.pending_until >= expires_at:
            # They would become available already expired.
            problem = ValidationFailed.on(
                "body.pending_until",
                f"must be before {expires_at:%Y-%m-%dT%H:%M:%SZ}, when the rules' expiry policy "
                "ends these points",
            )
            return await replay_or_raise(context, request, problem)
    return await _post(
        context,
        request,
        "award",
        [Leg(member, account, body.points), Leg(None, "issuance", -body.points)],
        now,
        reason=body.reason,
        expires_at=expires_at,
        rules_version=rules_version,
        pending_until=body.pending_until if pending else None,
        metadata=body.metadata,
    )


async def active_rules(
    cache: RulesCache, connection: Connection, program_id: int
) -> tuple[int, RulesDocument]:
    """The program's active rules version and its document."""
    version = await cache.active_version(connection, program_id)
    if version is None:
        raise LookupError(f"program {program_id} has no active rules version")
    return version, await cache.document(connection, program_id, version)


async def program_ids(connection: Connection) -> list[int]:
    """Every program, for jobs that run over all of them."""
    return await repository.program_ids(connection)


def check_redeem_limits(rules: RulesDocument, points: int, order_total: Money | None) -> None:
    """The rules' `redeem` limits for a redemption or a hold of `points`."""
    if order_total is not None and rules.currency is not None and order_total.currency != rules.currency:
        raise CurrencyMismatch(
            f"order_total is in {order_total.currency}; this program redeems against {rules.currency}"
        )
    refusal = redeem_refusal(rules.redeem, points, None if order_total is None else order_total.amount)
    if refusal is not None:
        raise _REDEEM_REFUSALS[refusal.code](
            refusal.message,
            errors=[FieldError(field=refusal.field, message=refusal.message, type=refusal.code)],
        )


async def redeem(context: AppContext, request: Request, member: str, body: RedemptionIn) -> StoredResponse:
    async with context.db.pool.acquire() as connection:
        rules_version, rules = await active_rules(context.rules, connection, request.principal.program_id)
    try:
        check_redeem_limits(rules, body.points, body.order_total)
    except AppError as error:  # a retry passed the limits of its time; they may have changed since
        return await replay_or_raise(context, request, error)
    return await _post(
        context,
        request,
        "redemption",
        [Leg(member, "available", -body.points), Leg(None, "redemption", body.points)],
        context.clock.now(),
        reason=body.reward,
        order_id=body.order_id,
        rules_version=rules_version,
        metadata=body.metadata,
    )


async def transfer(context: AppContext, request: Request, body: TransferIn) -> StoredResponse:
    if body.from_member == body.to_member:
        raise ValidationFailed.on("body.to_member", "must differ from from_member")
    return await _post(
        context,
        request,
        "transfer",
        [
            Leg(body.from_member, "available", -body.points),
            Leg(body.to_member, "available", body.points),
        ],
        context.clock.now(),
        reason=body.reason,
    )


async def reverse(
    context: AppContext, request: Request, entry_id: uuid.UUID, body: ReversalIn
) -> StoredResponse:
    async with context.db.pool.acquire() as connection:
        rows = await repository.entry_with_postings(connection, request.principal.program_id, entry_id)
    if not rows:
        raise EntryNotFound(f"no entry {entry_id} in this program")
    if rows[0]["kind"] == "reversal":
        raise EntryNotReversible("a reversal cannot itself be reversed; post a new entry instead")
    if rows[0]["kind"] in ORDER_KINDS:
        raise EntryNotReversible(f"a {rows[0]['kind']} entry belongs to an order: refund the order instead")
    if rows[0]["kind"] in LIFECYCLE_KINDS:
        raise EntryNotReversible(
            f"a {rows[0]['kind']} entry cannot be reversed: holds are undone by release, expired "
            "points are reinstated with a new award, and a kept tier keeps its term"
        )
    legs = [Leg(row["member"], row["account"], -row["amount"]) for row in rows]
    return await _post(
        context,
        request,
        "reversal",
        legs,
        context.clock.now(),
        reverses=entry_id,
        reason=body.reason,
    )


async def _member_id(connection: Connection, program_id: int, member: str) -> int:
    found = await repository.member_id(connection, program_id, member)
    if found is None:
        raise MemberNotFound(f"no member {member} in this program")
    return found


async def statement(
    context: AppContext, principal: Principal, member: str, *, limit: int, cursor: str | None
) -> StatementPage:
    before = 2**63 - 1
    if cursor is not None:
        (value,) = decode_cursor(cursor, 1)
        if not isinstance(value, int) or value <= 0:
            raise ValidationFailed.on("query.cursor", "not a cursor this API issued")
        before = value
    async with context.db.pool.acquire() as connection:
        member_id = await _member_id(connection, principal.program_id, member)
        rows = await repository.statement_postings(
            connection, member_id, before_posting_id=before, limit=4 * limit + 1
        )
    groups: list[list[asyncpg.Record]] = []
    for row in rows:
        if groups and groups[-1][0]["entry_id"] == row["entry_id"]:
            groups[-1].append(row)
        else:
            groups.append([row])
    more = len(groups) > limit
    groups = groups[:limit]
    items = [_statement_item(group) for group in groups]
    next_cursor = encode_cursor(groups[-1][-1]["posting_id"]) if more else None
    return StatementPage(items=items, next_cursor=next_cursor)


def _statement_item(postings: list[asyncpg.Record]) -> StatementItem:
    first = postings[0]
    change = {"available": 0, "pending": 0, "held": 0, "debt": 0}
    for posting in postings:
        change[posting["account"]] += posting["amount"]
    return StatementItem(
        id=first["entry_id"],
        kind=first["kind"],
        points=change["available"],
        pending_points=change["pending"],
        held_points=change["held"],
        debt_points=-change["debt"],
        balance_after=first["available_after"],
        pending_after=first["pending_after"],
        held_after=first["held_after"],
        occurred_at=first["occurred_at"],
        recorded_at=first["recorded_at"],
        reason=first["reason"],
        order_id=first["order_id"],
        reverses=first["reverses_entry_id"],
        rules_version=first["rules_version"],
        explanation=json.loads(first["explanation"]) if first["explanation"] is not None else None,
    )


async def balance(
    context: AppContext, principal: Principal, member: str, as_of: datetime | None
) -> BalanceOut:
    now = context.clock.now()
    async with context.db.pool.acquire() as connection:
        if as_of is None or as_of >= now:
            row = await repository.balance_now(connection, principal.program_id, member)
            if row is None:
                raise MemberNotFound(f"no member {member} in this program")
            return BalanceOut(
                member=member,
                as_of=now,
                available=row["available"],
                pending=row["pending"],
                held=row["held"],
            )
        member_id = await _member_id(connection, principal.program_id, member)
        past = await repository.balance_as_of(connection, member_id, as_of)
    values = (
        (0, 0, 0) if past is None else (past["available_after"], past["pending_after"], past["held_after"])
    )
    return BalanceOut(member=member, as_of=as_of, available=values[0], pending=values[1], held=values[2])


async def post_job_entry(connection: Connection, entry: NewEntry, response_body: bytes | None = None) -> None:
    """Post a job's entry inside the job's batch transaction. Its key names the one
    thing it may happen to once (a credit, a hold), so finding it taken means the
    job's own bookkeeping is wrong: stop rather than write around it."""
    posted = await repository.post(connection, entry, response_body=response_body)
    if posted.replayed:
        raise RuntimeError(f"{entry.kind} {entry.idempotency_key} was already posted")


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
                entry = NewEntry(
                    id=uuid7(),
                    program_id=credit["program_id"],
                    kind="activate",
                    # One activation per credit, ever: the key says which. Job keys
                    # start with "job·", which no client key can (printable ASCII only).
                    idempotency_key=f"{JOB_KEY_PREFIX}activate-pending:{credit['id']}",
                    request_fingerprint="job:activate-pending",
                    occurred_at=credit["pending_until"],
                    recorded_at=now,
                    actor_key_id=None,
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
            await repository.mark_activated(connection, [credit["id"] for credit in due], entry_ids, now)
            return due

    return work
