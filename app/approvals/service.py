"""Four-eyes approvals of large awards.

With the rules' `limits.award_approval_above: N`, an award of more than N points
posts nothing: it answers 202 with a pending approval (kept for its
Idempotency-Key, so a retry replays the 202). An admin key other than the one that
asked then approves it, which posts the award, or rejects it; 7 days after the
request an undecided approval expires. Expiry is decided on read (and on every
decision attempt): no job writes it, so nothing has to run for the answer to be
right, and an expired approval emits no event.

Every decision takes the approval's row lock first, so of two concurrent
decisions exactly one acts; approving (or rejecting) again answers the same
approval and posts nothing more. The approved award's entry has the Idempotency-Key
`approval·<approval id>` (client keys are printable ASCII, so it can't collide),
the approver as its actor and the approval's id in its metadata; the approval
keeps the request's key, its request id, who asked and who decided.

Limits at approval time: the rules active then decide. `award_max_points` still
applies, and the award counts against the requesting key's
`award_points_per_key_per_day` on the day it is approved; a refusal (422
`limit_exceeded`) leaves the approval pending."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from uuid_utils.compat import uuid7

from app import outbox, requestid
from app.approvals import repository
from app.approvals.schemas import ApprovalOut, ApprovalPage, ApprovalStatus, DecisionIn
from app.context import AppContext
from app.db import Connection
from app.errors import AppError, NotFound
from app.idempotency import IdempotencyKeyReused, KeyedRequest, StoredResponse
from app.ledger import awards, limits, posting
from app.ledger.errors import MemberNotFound
from app.ledger.schemas import AwardIn
from app.principal import Principal

APPROVAL_TTL = timedelta(days=7)
ENTRY_KEY_PREFIX = "approval\u00b7"


class ApprovalNotFound(NotFound):
    code, title = "approval_not_found", "Approval not found"


class ApprovalByRequester(AppError):
    status, code, title = 403, "approval_by_requester", "An award is approved or rejected by another key"


class ApprovalAlreadyDecided(AppError):
    status, code, title = 409, "approval_already_decided", "The approval was already decided the other way"


class ApprovalExpired(AppError):
    status, code, title = 409, "approval_expired", "The approval expired undecided"


def _out(row: asyncpg.Record | dict[str, Any]) -> ApprovalOut:
    return ApprovalOut(
        approval_id=row["id"],
        status=row["status"],
        member=row["member"],
        points=row["points"],
        award=AwardIn.model_validate_json(row["request"])
        if isinstance(row["request"], str)
        else AwardIn.model_validate(row["request"]),
        requested_by=row["requested_by_key_id"],
        idempotency_key=row["idempotency_key"],
        request_id=row["request_id"],
        requested_at=row["requested_at"],
        expires_at=row["expires_at"],
        decided_by=row["decided_by_key_id"],
        decided_at=row["decided_at"],
        decision_reason=row["decision_reason"],
        entry_id=row["entry_id"],
    )


def _event_data(approval: ApprovalOut) -> dict[str, Any]:
    return {
        "approval_id": str(approval.approval_id),
        "member": approval.member,
        "points": approval.points,
        "reason": approval.award.reason,
        "requested_by": None if approval.requested_by is None else str(approval.requested_by),
        "decided_by": None if approval.decided_by is None else str(approval.decided_by),
        "decision_reason": approval.decision_reason,
        "entry_id": None if approval.entry_id is None else str(approval.entry_id),
    }


class _KeyTaken(Exception):
    """Another request took the Idempotency-Key first: roll back, then answer it."""


async def request(
    context: AppContext, request: KeyedRequest, member: str, body: AwardIn, now: datetime
) -> StoredResponse:
    """Keep the award for approval instead of posting it: 202 with the pending
    approval (awards.endpoints: `POST /v1/members/{member}/awards`)."""
    program_id = request.principal.program_id

    async def work(connection: Connection) -> StoredResponse:
        try:
            async with connection.transaction():
                found = await posting.stored(connection, request)
                if found is not None:
                    return found
                member_id = await repository.member_id(connection, program_id, member)
                if member_id is None:
                    raise MemberNotFound(f"no member {member} in this program")
                approval = ApprovalOut(
                    approval_id=uuid7(),
                    status="pending_approval",
                    member=member,
                    points=body.points,
                    award=body,
                    requested_by=request.principal.key_id,
                    idempotency_key=request.idempotency_key,
                    request_id=requestid.current.get(),
                    requested_at=now,
                    expires_at=now + APPROVAL_TTL,
                    decided_by=None,
                    decided_at=None,
                    decision_reason=None,
                    entry_id=None,
                )
                await repository.insert(
                    connection,
                    approval_id=approval.approval_id,
                    program_id=program_id,
                    member_id=member_id,
                    points=body.points,
                    request=body.model_dump(mode="json"),
                    requested_by=approval.requested_by,
                    idempotency_key=approval.idempotency_key,
                    request_id=approval.request_id,
                    requested_at=now,
                    expires_at=approval.expires_at,
                )
                response = approval.model_dump_json().encode()
                if not await repository.keep_response(
                    connection, program_id, request.idempotency_key, request.fingerprint, response, now
                ):
                    raise _KeyTaken
                await outbox.emit(
                    connection,
                    program_id,
                    "award.approval_requested",
                    _event_data(approval),
                    occurred_at=now,
                    now=now,
                    members=[member_id],
                )
                return StoredResponse(202, response)
        except _KeyTaken:
            found = await posting.stored(connection, request)
            if found is None:  # taken by a request that has since rolled back
                raise IdempotencyKeyReused("this Idempotency-Key is in use by another request") from None
            return found

    return await context.db.call(work)


async def get(context: AppContext, principal: Principal, approval_id: uuid.UUID) -> ApprovalOut:
    now = context.clock.now()
    async with context.db.pool.acquire() as connection:
        row = await repository.one(connection, principal.program_id, approval_id, now)
    if row is None:
        raise ApprovalNotFound(f"no approval {approval_id} in this program")
    return _out(row)


async def page(
    context: AppContext,
    principal: Principal,
    *,
    status: ApprovalStatus | None,
    limit: int,
    cursor: str | None,
) -> ApprovalPage:
    now = context.clock.now()
    list_id = f"approvals:{principal.program_id}:{status or '*'}"
    before = uuid.UUID(int=2**128 - 1)
    if cursor is not None:
        (last,) = context.cursors.read(list_id, cursor)
        before = uuid.UUID(str(last))
    async with context.db.pool.acquire() as connection:
        rows = await repository.page(
            connection, principal.program_id, now, status=status, before=before, limit=limit + 1
        )
    items = [_out(row) for row in rows[:limit]]
    more = len(rows) > limit
    return ApprovalPage(
        items=items, next_cursor=context.cursors.issue(list_id, str(items[-1].approval_id)) if more else None
    )


async def decide(
    context: AppContext, principal: Principal, approval_id: uuid.UUID, body: DecisionIn, *, approve: bool
) -> ApprovalOut:
    """Approve (post the award) or reject a pending approval; the same decision
    again answers the approval as it stands and changes nothing."""
    now = context.clock.now()
    program_id = principal.program_id
    wanted = "approved" if approve else "rejected"

    async def work(connection: Connection) -> ApprovalOut:
        async with connection.transaction():
            row = await repository.one(connection, program_id, approval_id, now, lock=True)
            if row is None:
                raise ApprovalNotFound(f"no approval {approval_id} in this program")
            if row["requested_by_key_id"] == principal.key_id:
                raise ApprovalByRequester(
                    "the API key that asked for this award cannot approve or reject it: use another admin key"
                )
            status = row["status"]
            if status == wanted:
                return _out(row)  # decided already: the same answer, nothing more posted
            if status == "expired":
                raise ApprovalExpired(
                    f"approval {approval_id} expired undecided at {row['expires_at']:%Y-%m-%dT%H:%M:%SZ}; "
                    "ask for the award again"
                )
            if status != "pending_approval":
                raise ApprovalAlreadyDecided(
                    f"approval {approval_id} was {status} at {row['decided_at']:%Y-%m-%dT%H:%M:%SZ}; "
                    f"it cannot be {wanted} now"
                )
            entry_id = await _post(connection, context, principal, row, now) if approve else None
            await repository.decide(
                connection,
                program_id,
                approval_id,
                status=wanted,
                decided_by=principal.key_id,
                decided_at=now,
                reason=body.reason,
                entry_id=entry_id,
            )
            decided = _out(
                {
                    **dict(row),
                    "status": wanted,
                    "decided_by_key_id": principal.key_id,
                    "decided_at": now,
                    "decision_reason": body.reason,
                    "entry_id": entry_id,
                }
            )
            await outbox.emit(
                connection,
                program_id,
                f"award.approval_{wanted}",
                _event_data(decided),
                occurred_at=now,
                now=now,
                members=[row["member_id"]],
            )
            return decided

    return await context.db.call(work)


async def _post(
    connection: Connection, context: AppContext, principal: Principal, row: asyncpg.Record, now: datetime
) -> uuid.UUID:
    """Post the approved award in the caller's transaction, under the rules active
    now; its entry id."""
    approval_id: uuid.UUID = row["id"]
    body = _out(row).award
    rules_version, rules = await context.rules.active(connection, principal.program_id)
    refusal = limits.award_max_refusal(rules.limits, body.points)
    if refusal is not None:
        raise refusal
    plan = awards.plan_award(rules_version, rules, row["member"], body, now)
    if isinstance(plan, AppError):
        raise plan
    await limits.charge(
        connection,
        principal.program_id,
        rules,
        limits.award_charges(rules.limits, row["requested_by_key_id"], body.points),
        now,
    )
    entry_id = uuid7()
    keyed = KeyedRequest(principal, f"{ENTRY_KEY_PREFIX}{approval_id}", f"approval:{approval_id}")
    await posting.post_in_transaction(
        connection,
        keyed,
        "award",
        plan.legs,
        now,
        entry_id=entry_id,
        reason=body.reason,
        expires_at=plan.expires_at,
        rules_version=plan.rules_version,
        pending_until=plan.pending_until,
        metadata={**(body.metadata or {}), "approval_id": str(approval_id)},
    )
    return entry_id
