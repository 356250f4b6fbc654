"""Where points move: every entry any domain writes goes through here, as one
ledger_post() statement (app/sql/functions/ledger_post.sql) that writes the entry,
its postings, the balances and projections, and keeps the first response for its
Idempotency-Key, atomically.

- `post`: one entry in autocommit (awards, redemptions, transfers, reversals);
- `post_in_transaction`: one entry inside the caller's transaction (refunds,
  events, holds, tier keeps), with the caller's response body;
- `job_entry` / `post_job_entry`: a job's entry, inside its batch transaction;
- `stored` / `replay` / `replay_or_raise` / `keep_response`: the Idempotency-Key's
  first response, for retries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
from uuid_utils.compat import uuid7

from app.context import AppContext
from app.db import Connection
from app.errors import AppError
from app.idempotency import IdempotencyKeyReused, KeyedRequest, StoredResponse
from app.ledger import repository
from app.ledger.entries import JOB_KEY_PREFIX, MEMBER_CHECKS, EntryKind, Leg, NewEntry, Posted
from app.ledger.errors import as_app_error
from app.metrics import ENTRIES


def replay(request: KeyedRequest, posted: Posted) -> StoredResponse:
    """The stored response for a retry of `request`; a different request under the
    same key is 422 `idempotency_key_reused`."""
    if posted.request_fingerprint != request.fingerprint or posted.response_body is None:
        raise IdempotencyKeyReused("this Idempotency-Key was used for a different request")
    return StoredResponse(posted.status_code or 201, bytes(posted.response_body), replayed=True)


async def stored(connection: Connection, request: KeyedRequest) -> StoredResponse | None:
    """The response already kept for the request's key (a replay), if any."""
    row = await repository.stored_response(connection, request.principal.program_id, request.idempotency_key)
    if row is None:
        return None
    return replay(request, Posted(True, row["request_fingerprint"], row["status_code"], row["response_body"]))


async def replay_or_raise(context: AppContext, request: KeyedRequest, error: AppError) -> StoredResponse:
    """For checks that depend on the clock: a retry of a request that passed them
    the first time replays its response instead of failing now."""
    async with context.db.pool.acquire() as connection:
        found = await stored(connection, request)
    if found is None:
        raise error
    return found


async def post_in_transaction(
    connection: Connection,
    request: KeyedRequest,
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


async def keep_response(connection: Connection, request: KeyedRequest, body: bytes, now: datetime) -> None:
    """Keep the response of a request that moved no points (a refund worth 0 points)
    for its key, inside the caller's transaction."""
    if not await repository.keep_response(
        connection, request.principal.program_id, request.idempotency_key, request.fingerprint, body, now
    ):
        raise IdempotencyKeyReused("this Idempotency-Key was used for a different request")


def _new_entry(
    request: KeyedRequest, kind: EntryKind, legs: list[Leg], now: datetime, fields: dict[str, Any]
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
        # a client's entry: the members' statuses may refuse it (its kind says how)
        member_check=MEMBER_CHECKS[kind],
        **fields,
    )


async def post(
    context: AppContext,
    request: KeyedRequest,
    kind: EntryKind,
    legs: list[Leg],
    now: datetime,
    *,
    grouped: bool = False,
    **fields: Any,
) -> StoredResponse:
    """Post one entry in autocommit. `grouped`: for an entry on one member, with
    others at once when group commit is on (Database.grouped)."""
    entry = _new_entry(request, kind, legs, now, fields)

    async def work(connection: Connection) -> Posted:
        return await repository.post(connection, entry)

    members = {leg.member for leg in legs if leg.member is not None}
    group = (
        context.db.grouped("entry", repository.POST, repository.LOCK_MEMBERS)
        if grouped and len(members) == 1
        else None
    )
    try:
        if group is None:
            # One statement in autocommit: ledger_post() is atomic on its own.
            posted = await context.db.call(work)
        else:
            row = await group.fetchrow(repository.post_args(entry), entry.program_id, members.pop())
            posted = repository.posted(row)
    except asyncpg.PostgresError as exc:
        problem = as_app_error(exc)
        if problem is None:
            raise
        raise problem from exc
    if posted.replayed:
        return replay(request, posted)
    ENTRIES.labels(kind).inc()
    assert posted.response_body is not None
    return StoredResponse(201, bytes(posted.response_body))


def job_entry(
    job: str,
    once_per: object,
    *,
    program_id: int,
    kind: EntryKind,
    occurred_at: datetime,
    now: datetime,
    legs: tuple[Leg, ...],
    **fields: Any,
) -> NewEntry:
    """An entry a job writes. Its key names the one thing it may happen to once
    (`once_per`: a pending credit, a hold), so a rerun can never write it twice; job
    keys start with "job·", which no client key can (printable ASCII only)."""
    return NewEntry(
        id=uuid7(),
        program_id=program_id,
        kind=kind,
        idempotency_key=f"{JOB_KEY_PREFIX}{job}:{once_per}",
        request_fingerprint=f"job:{job}",
        occurred_at=occurred_at,
        recorded_at=now,
        actor_key_id=None,
        legs=legs,
        **fields,
    )


async def post_job_entry(connection: Connection, entry: NewEntry, response_body: bytes | None = None) -> None:
    """Post a job's entry inside the job's batch transaction. Its key names the one
    thing it may happen to once (a credit, a hold), so finding it taken means the
    job's own bookkeeping is wrong: stop rather than write around it."""
    posted = await repository.post(connection, entry, response_body=response_body)
    if posted.replayed:
        raise RuntimeError(f"{entry.kind} {entry.idempotency_key} was already posted")
