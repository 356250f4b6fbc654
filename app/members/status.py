"""A member's status and closing: freezing, suspending, lifting (by hand or at
`until`, the `lift-statuses` job), closing with its forfeit, and the history.

Where a status is enforced: every client entry's ledger_post() reads the statuses of
the members it touches under their balance-row locks (app/ledger/entries.py,
MEMBER_CHECKS); an order reads the status with its facts, and the balance row's
version, which every change here moves on, tells ledger_post_order() that they are
stale. So a change here and a posting never pass each other: whichever takes the
member's balance row first goes first, and the other sees what it did."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from uuid_utils.compat import uuid7

from app.context import AppContext
from app.db import Connection, Database
from app.errors import ValidationFailed
from app.idempotency import KeyedRequest, StoredResponse
from app.ledger import posting
from app.ledger.entries import Leg, NewEntry
from app.ledger.errors import MemberNotFound, status_refusal
from app.members import repository
from app.members.errors import MemberHasActiveHolds
from app.members.schemas import (
    CloseIn,
    ClosureOut,
    StatusChangeIn,
    StatusChangeOut,
    StatusHistoryPage,
)
from app.outbox import emit
from app.principal import Principal

# The forfeit entry's Idempotency-Key: one per member, ever (a member closes once);
# "·" keeps it out of the clients' printable-ASCII keys.
FORFEIT_KEY = "member\u00b7close:{member_id}"
LIFTED_REASON = "the status's `until` was reached"


def _rfc3339(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Forfeit:
    """The entry that took a closed member's available points to the program's
    forfeit account."""

    entry_id: uuid.UUID
    points: int


@dataclass(frozen=True, slots=True)
class _Change:
    member_id: int
    out: StatusChangeOut


async def _record_change(
    connection: Connection,
    *,
    program_id: int,
    member_id: int,
    member: str,
    status: str,
    previous_status: str,
    reason: str,
    until: datetime | None,
    actor_key_id: uuid.UUID | None,
    changed_at: datetime,
    now: datetime,
    entry_id: uuid.UUID | None = None,
) -> StatusChangeOut:
    """Set the status, keep the change in the history and write its event, in the
    caller's transaction (which holds the member's balance row)."""
    await repository.set_status(connection, program_id, member_id, status, until)
    change_id = await repository.insert_status_change(
        connection,
        program_id=program_id,
        member_id=member_id,
        status=status,
        previous_status=previous_status,
        reason=reason,
        until=until,
        actor_key_id=actor_key_id,
        changed_at=changed_at,
        entry_id=entry_id,
    )
    out = StatusChangeOut(
        id=change_id,
        member=member,
        status=status,  # type: ignore[arg-type]
        previous_status=previous_status,  # type: ignore[arg-type]
        reason=reason,
        until=until,
        actor_key_id=actor_key_id,
        changed_at=changed_at,
        entry_id=entry_id,
    )
    await emit(
        connection,
        program_id,
        "member.status_changed",
        {
            "member": member,
            "status": status,
            "previous_status": previous_status,
            "reason": reason,
            "until": _rfc3339(until),
            "actor_key_id": None if actor_key_id is None else str(actor_key_id),
            "entry_id": None if entry_id is None else str(entry_id),
        },
        occurred_at=changed_at,
        now=now,
        members=[member_id],
    )
    return out


async def change_status(
    context: AppContext, request: KeyedRequest, member: str, body: StatusChangeIn
) -> StoredResponse:
    """Freeze, suspend or reactivate a member (POST /v1/members/{id}/status)."""
    now = context.clock.now()
    program_id = request.principal.program_id
    until = None if body.until is None else body.until.astimezone(UTC)

    async def work(connection: Connection) -> StoredResponse:
        async with connection.transaction():
            locked = await repository.lock_for_status(connection, program_id, member)
            if locked is None:
                raise MemberNotFound(f"no member {member} in this program")
            # Under the member's lock: a concurrent retry of this request has committed.
            found = await posting.stored(connection, request)
            if found is not None:
                return found
            if locked.status == "closed":
                raise status_refusal(member, "closed")
            if until is not None and body.status == "active":
                raise ValidationFailed.on("body.until", "only a frozen or suspended status lifts at a time")
            if until is not None and until <= now:
                raise ValidationFailed.on("body.until", "must be in the future")
            out = await _record_change(
                connection,
                program_id=program_id,
                member_id=locked.member_id,
                member=member,
                status=body.status,
                previous_status=locked.status,
                reason=body.reason,
                until=until,
                actor_key_id=request.principal.key_id,
                changed_at=now,
                now=now,
            )
            response = out.model_dump_json().encode()
            await posting.keep_response(connection, request, response, now)
            return StoredResponse(201, response)

    return await context.db.call(work)


async def close_member(
    connection: Connection,
    *,
    program_id: int,
    member: str,
    reason: str,
    actor_key_id: uuid.UUID | None,
    now: datetime,
) -> Forfeit | None:
    """Close a member, in the caller's transaction (`async with connection.transaction()`).

    Takes the member's balance row (as every posting does), then: 404
    `member_not_found`, 409 `member_closed` if already closed, 409
    `member_has_active_holds` while points are held; else the status becomes
    `closed` (history row with `reason` and `actor_key_id`, `member.status_changed`
    event) and the available points go to the program's `forfeit` account in one
    `forfeit` entry, returned (None when there were none). Pending points stay
    pending and are forfeited when they would become available (activate-pending).
    Writes nothing under the caller's Idempotency-Key: the caller keeps its own
    response (as `close` does) or its own record."""
    closed = await _close(
        connection, program_id=program_id, member=member, reason=reason, actor_key_id=actor_key_id, now=now
    )
    assert not isinstance(closed, StoredResponse)  # only with a request
    return closed[1]


async def _close(
    connection: Connection,
    *,
    program_id: int,
    member: str,
    reason: str,
    actor_key_id: uuid.UUID | None,
    now: datetime,
    request: KeyedRequest | None = None,
) -> tuple[ClosureOut, Forfeit | None] | StoredResponse:
    locked = await repository.lock_for_status(connection, program_id, member)
    if locked is None:
        raise MemberNotFound(f"no member {member} in this program")
    if request is not None:
        # Under the member's lock: a concurrent retry of this request has committed.
        found = await posting.stored(connection, request)
        if found is not None:
            return found
    if locked.status == "closed":
        raise status_refusal(member, "closed")
    if locked.held:
        raise MemberHasActiveHolds(
            f"member {member} has {locked.held} points on hold: capture or release its holds "
            "(and pending conversions) first"
        )
    forfeit = None
    if locked.available:
        forfeit = Forfeit(uuid7(), locked.available)
        # A system entry: no member check (the member is ours, under its lock).
        await posting.post_job_entry(
            connection,
            NewEntry(
                id=forfeit.entry_id,
                program_id=program_id,
                kind="forfeit",
                idempotency_key=FORFEIT_KEY.format(member_id=locked.member_id),
                request_fingerprint="member:close",
                occurred_at=now,
                recorded_at=now,
                actor_key_id=actor_key_id,
                legs=(Leg(member, "available", -forfeit.points), Leg(None, "forfeit", forfeit.points)),
                reason=reason,
            ),
        )
    change = await _record_change(
        connection,
        program_id=program_id,
        member_id=locked.member_id,
        member=member,
        status="closed",
        previous_status=locked.status,
        reason=reason,
        until=None,
        actor_key_id=actor_key_id,
        changed_at=now,
        now=now,
        entry_id=None if forfeit is None else forfeit.entry_id,
    )
    out = ClosureOut(
        member=member,
        status="closed",
        reason=reason,
        closed_at=now,
        forfeited_points=0 if forfeit is None else forfeit.points,
        pending_points=locked.pending,
        entry_id=None if forfeit is None else forfeit.entry_id,
        status_change_id=change.id,
    )
    return out, forfeit


async def close(context: AppContext, request: KeyedRequest, member: str, body: CloseIn) -> StoredResponse:
    """Close a member (POST /v1/members/{id}/close)."""
    now = context.clock.now()

    async def work(connection: Connection) -> StoredResponse:
        async with connection.transaction():
            closed = await _close(
                connection,
                program_id=request.principal.program_id,
                member=member,
                reason=body.reason,
                actor_key_id=request.principal.key_id,
                now=now,
                request=request,
            )
            if isinstance(closed, StoredResponse):
                return closed
            response = closed[0].model_dump_json().encode()
            await posting.keep_response(connection, request, response, now)
            return StoredResponse(201, response)

    return await context.db.call(work)


async def history(
    context: AppContext, principal: Principal, member: str, *, limit: int, cursor: str | None
) -> StatusHistoryPage:
    """A member's status changes, newest first (GET /v1/members/{id}/status-history)."""

    async def work(connection: Connection) -> tuple[int, list[StatusChangeOut], bool]:
        member_id = await repository.member_id_of(connection, principal.program_id, member)
        if member_id is None:
            raise MemberNotFound(f"no member {member} in this program")
        (before,) = [2**63 - 1] if cursor is None else context.cursors.read(f"status:{member_id}", cursor)
        rows = await repository.status_history(
            connection, principal.program_id, member_id, before_id=before, limit=limit + 1
        )
        items = [StatusChangeOut(member=member, **dict(row.items())) for row in rows[:limit]]
        return member_id, items, len(rows) > limit

    member_id, items, more = await context.db.call(work)
    return StatusHistoryPage(
        items=items,
        next_cursor=context.cursors.issue(f"status:{member_id}", items[-1].id) if more else None,
    )


@dataclass(frozen=True, slots=True)
class Lifted:
    members: int


async def lift_statuses(
    db: Database, *, program_id: int | None, as_of: datetime, now: datetime, batch: int = 200
) -> Lifted:
    """Return to active every member whose frozen or suspended status lifts by
    `as_of` (the `lift-statuses` job). Each batch is one transaction; each member is
    re-read under its balance-row lock, so a status changed meanwhile (a new until,
    a closing) is left as it now is, and a rerun finds nothing left to lift."""
    lifted = 0
    while True:

        async def work(connection: Connection) -> tuple[int, int]:
            async with connection.transaction():
                due = await repository.due_lifts(connection, program_id, as_of, batch)
                done = 0
                for row in due:  # in member id order, as every writer locks them
                    status, until = await repository.lock_by_id(connection, row["program_id"], row["id"])
                    if until is None or until > as_of or status not in ("frozen", "suspended"):
                        continue
                    await _record_change(
                        connection,
                        program_id=row["program_id"],
                        member_id=row["id"],
                        member=row["external_id"],
                        status="active",
                        previous_status=status,
                        reason=LIFTED_REASON,
                        until=None,
                        actor_key_id=None,
                        changed_at=until,
                        now=now,
                    )
                    done += 1
                return len(due), done

        seen, done = await db.call(work)
        lifted += done
        if seen < batch:
            return Lifted(lifted)
