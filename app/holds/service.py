"""Holds: a checkout reserves points before payment, then captures or releases them.

Placing a hold moves points from available to held (one `hold` entry); capturing
moves what was spent to the redemption account and the rest back to available
(one `capture` entry); releasing, or the worker releasing an expired hold, moves
them all back (one `release` entry). Points that come back return to the lots
they were taken from, with their own expiry dates.

Every close takes the hold's row lock first, so of a capture and a release (or
two captures) racing for one hold, exactly one wins; the other finds it closed:
409 `hold_not_active`."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from uuid_utils.compat import uuid7

from app.context import AppContext
from app.db import PRIMARY, Connection, Database, ReadFrom
from app.errors import AppError, NotFound, ValidationFailed
from app.fields import LATEST
from app.holds import repository
from app.holds.schemas import CaptureIn, HoldIn, HoldOut, HoldPage, ReleaseIn
from app.idempotency import KeyedRequest, StoredResponse
from app.ledger import limits, posting
from app.ledger import service as ledger
from app.ledger.entries import Leg
from app.ledger.jobs import run_batches
from app.principal import Principal


class HoldNotFound(NotFound):
    code, title = "hold_not_found", "Hold not found"


class HoldNotActive(AppError):
    status, code, title = 409, "hold_not_active", "The hold was already captured, released or expired"


class CaptureExceedsHold(AppError):
    status, code, title = 422, "capture_exceeds_hold", "The capture is larger than the hold"


def _out(hold: asyncpg.Record | dict[str, Any], **changes: Any) -> HoldOut:
    fields = {
        "hold_id": hold["id"],
        "member": hold["member"],
        "status": hold["status"],
        "points": hold["points"],
        "captured_points": hold["captured_points"],
        "order_id": hold["order_id"],
        "created_at": hold["created_at"],
        "expires_at": hold["expires_at"],
        "closed_at": hold["closed_at"],
        "entry_id": hold["close_entry_id"] or hold["id"],
    }
    fields.update(changes)
    return HoldOut.model_validate(fields)


async def place(context: AppContext, request: KeyedRequest, member: str, body: HoldIn) -> StoredResponse:
    now = context.clock.now()
    settings = context.settings
    expires_at = (body.expires_at or now + timedelta(seconds=settings.hold_ttl_seconds)).astimezone(UTC)
    program_id = request.principal.program_id

    async def work(connection: Connection) -> StoredResponse:
        try:
            async with connection.transaction():
                found = await posting.stored(connection, request)
                if found is not None:  # a retry: its checks held when it was first made
                    return found
                if expires_at <= now:
                    raise ValidationFailed.on("body.expires_at", "must be in the future")
                if expires_at > now + timedelta(seconds=settings.hold_max_seconds):
                    raise ValidationFailed.on(
                        "body.expires_at", f"a hold lasts at most {settings.hold_max_seconds} seconds"
                    )
                rules_version, rules = await context.rules.active(connection, program_id)
                ledger.check_redeem_limits(rules, body.points, body.order_total)
                # A hold counts against the daily redemption limit when it is placed.
                charges = limits.redeem_charges(rules.limits, member, body.points)
                await limits.charge_or_replay(connection, request, rules, charges, now)
                hold_id = uuid7()
                out = HoldOut(
                    hold_id=hold_id,
                    member=member,
                    status="active",
                    points=body.points,
                    captured_points=0,
                    order_id=body.order_id,
                    created_at=now,
                    expires_at=expires_at,
                    closed_at=None,
                    entry_id=hold_id,
                )
                response = await posting.post_in_transaction(
                    connection,
                    request,
                    "hold",
                    [Leg(member, "available", -body.points), Leg(member, "held", body.points)],
                    now,
                    response_body=out.model_dump_json().encode(),
                    replay_ok=True,
                    entry_id=hold_id,
                    order_id=body.order_id,
                    rules_version=rules_version,
                    reason="points held for a checkout",
                    metadata=body.metadata,
                )
                if response.replayed and charges:
                    raise limits.Replayed(response)  # roll back what this request counted
                if not response.replayed:
                    await repository.insert(
                        connection,
                        hold_id=hold_id,
                        program_id=program_id,
                        member=member,
                        points=body.points,
                        order_id=body.order_id,
                        created_at=now,
                        expires_at=expires_at,
                    )
                return response
        except limits.Replayed as replayed:
            return replayed.response

    return await context.db.call(work)


async def _close(
    context: AppContext,
    request: KeyedRequest,
    hold_id: uuid.UUID,
    *,
    release: bool,
    points: int | None,
    reason: str,
) -> StoredResponse:
    """Release the hold, or capture `points` of it (None: all)."""
    now = context.clock.now()
    program_id = request.principal.program_id

    async def work(connection: Connection) -> StoredResponse:
        async with connection.transaction():
            hold = await repository.locked(connection, program_id, hold_id)
            if hold is None:
                raise HoldNotFound(f"no hold {hold_id} in this program")
            # Under the hold's lock: a retry of a close that committed replays it.
            found = await posting.stored(connection, request)
            if found is not None:
                return found
            if hold["status"] != "active":
                raise HoldNotActive(
                    f"hold {hold_id} is {hold['status']} since {hold['closed_at']:%Y-%m-%dT%H:%M:%SZ}"
                )
            if hold["expires_at"] <= now and not release:
                # Releasing is still fine: it is what the worker will do anyway.
                raise HoldNotActive(
                    f"hold {hold_id} expired at {hold['expires_at']:%Y-%m-%dT%H:%M:%SZ}; "
                    "the worker gives the points back"
                )
            held = hold["points"]
            captured = 0 if release else held if points is None else points
            if captured > held:
                raise CaptureExceedsHold(
                    f"hold {hold_id} holds {held} points; the capture asks for {captured}"
                )
            entry_id = uuid7()
            status = "released" if release else "captured"
            legs = [Leg(hold["member"], "held", -held)]
            if captured:
                legs.append(Leg(None, "redemption", captured))
            if held - captured:
                legs.append(Leg(hold["member"], "available", held - captured))
            out = _out(hold, status=status, captured_points=captured, closed_at=now, entry_id=entry_id)
            response = await posting.post_in_transaction(
                connection,
                request,
                "release" if release else "capture",
                legs,
                now,
                response_body=out.model_dump_json().encode(),
                entry_id=entry_id,
                source_entry_id=hold_id,
                order_id=hold["order_id"],
                reason=reason,
            )
            await repository.close(
                connection,
                hold["program_id"],
                hold_id,
                status=status,
                captured_points=captured,
                closed_at=now,
                entry_id=entry_id,
            )
            return response

    return await context.db.call(work)


async def capture(
    context: AppContext, request: KeyedRequest, hold_id: uuid.UUID, body: CaptureIn
) -> StoredResponse:
    return await _close(
        context, request, hold_id, release=False, points=body.points, reason="points spent at checkout"
    )


async def release(
    context: AppContext, request: KeyedRequest, hold_id: uuid.UUID, body: ReleaseIn
) -> StoredResponse:
    return await _close(
        context, request, hold_id, release=True, points=None, reason=body.reason or "hold released"
    )


async def get(
    context: AppContext, principal: Principal, hold_id: uuid.UUID, read: ReadFrom = PRIMARY
) -> HoldOut:
    async def work(connection: Connection) -> asyncpg.Record | None:
        return await repository.find(connection, principal.program_id, hold_id)

    hold = await context.db.read(work, read)
    if hold is None:
        raise HoldNotFound(f"no hold {hold_id} in this program")
    return _out(hold)


async def member_holds(
    context: AppContext,
    principal: Principal,
    member: str,
    *,
    status: str | None,
    limit: int,
    cursor: str | None,
    read: ReadFrom = PRIMARY,
) -> HoldPage:
    """A member's holds, newest first (GET /v1/members/{id}/holds?status=)."""

    async def work(connection: Connection) -> tuple[str, list[asyncpg.Record]]:
        member_id = await ledger.internal_member_id(connection, principal.program_id, member)
        list_id = f"member-holds:{member_id}:{status}"
        before: tuple[datetime, uuid.UUID] = (LATEST, uuid.UUID(int=2**128 - 1))
        if cursor is not None:
            created, hold_id = context.cursors.read(list_id, cursor)
            before = (datetime.fromisoformat(created), uuid.UUID(hold_id))
        rows = await repository.member_holds(
            connection, principal.program_id, member_id, status=status, before=before, limit=limit + 1
        )
        return list_id, rows

    list_id, rows = await context.db.read(work, read)
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = context.cursors.issue(list_id, page[-1]["created_at"].isoformat(), str(page[-1]["id"]))
    return HoldPage(items=[_out(row) for row in page], next_cursor=next_cursor)


@dataclass(frozen=True, slots=True)
class Released:
    holds: int
    points: int


async def release_expired(
    db: Database,
    *,
    program_id: int | None,
    as_of: datetime,
    now: datetime,
    batch: int = 500,
    on_progress: Callable[[int], None] | None = None,
) -> Released:
    """Give back the points of every active hold whose expiry is at or before `as_of`.

    One `release` entry per hold, in batches of `batch` holds per transaction (a
    crash loses at most the batch in flight; a rerun picks up the rest). A second
    run for the same instant finds no active hold past its expiry: it changes nothing."""
    work = _release_batch(program_id, as_of, now, batch)
    holds, points = await run_batches(db, work, "release", "points", on_progress)
    return Released(holds, points)


def _release_batch(
    program_id: int | None, as_of: datetime, now: datetime, batch: int
) -> Callable[[Connection], Awaitable[list[asyncpg.Record]]]:
    async def work(connection: Connection) -> list[asyncpg.Record]:
        async with connection.transaction():
            due = await repository.due(connection, program_id, as_of, batch)
            # Members in id order, as every other writer locks them: no deadlocks.
            for hold in sorted(due, key=lambda hold: hold["member_id"]):
                entry = posting.job_entry(
                    "release-holds",
                    hold["id"],  # one expiry release per hold, ever
                    program_id=hold["program_id"],
                    kind="release",
                    occurred_at=hold["expires_at"],
                    now=now,
                    legs=(
                        Leg(hold["member"], "held", -hold["points"]),
                        Leg(hold["member"], "available", hold["points"]),
                    ),
                    reason="hold expired",
                    order_id=hold["order_id"],
                    source_entry_id=hold["id"],
                )
                out = _out(hold, status="expired", closed_at=now, entry_id=entry.id)
                await posting.post_job_entry(connection, entry, out.model_dump_json().encode())
                await repository.close(
                    connection,
                    hold["program_id"],
                    hold["id"],
                    status="expired",
                    captured_points=0,
                    closed_at=now,
                    entry_id=entry.id,
                )
            return due

    return work
