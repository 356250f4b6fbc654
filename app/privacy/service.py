"""A member's personal data: everything held about them (the export), and its
erasure (GDPR art. 17). Where each piece of personal data lives and what erasure
does about it: docs/lifecycle.md, "Export and erasure"."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime

from pydantic import BaseModel

from app.context import AppContext
from app.db import Connection
from app.errors import AppError
from app.eventlog import service as eventlog
from app.holds import service as holds
from app.idempotency import KeyedRequest, StoredResponse
from app.ledger import service as ledger
from app.ledger.errors import MemberClosed, MemberNotFound
from app.ledger.posting import keep_response, stored
from app.ledger.schemas import EntryView, LotView
from app.members import service as members
from app.members import status as member_status
from app.members.errors import MemberErased, MemberHasActiveHolds
from app.members.status import close_member
from app.orders import service as orders
from app.outbox import emit
from app.partners import service as partners
from app.principal import Principal
from app.privacy import repository
from app.privacy.schemas import EXPORT_FORMAT, ErasureIn, ErasureOut, ErasureRecord, TierStanding
from app.programs import service as programs
from app.tiers import service as tiers
from app.tiers.schemas import TierOut

# What closing the member may refuse (app.members.status.close_member).
CLOSING_ERRORS: tuple[type[AppError], ...] = (MemberHasActiveHolds,)

# The reason the closing of an erasure records (status history, member.status_changed).
CLOSING_REASON = "personal data erased"

# Bytes the export sends at a time (many items per send, not one each).
CHUNK_BYTES = 64 * 1024

# Rows per page while an export streams: each section is read this many at a time.
EXPORT_PAGE = 500


# -- the export -----------------------------------------------------------------------------------


async def export(context: AppContext, principal: Principal, member: str) -> AsyncIterator[bytes]:
    """GET /v1/members/{id}/export: the member's whole record as one JSON document
    (schemas.MemberExport), streamed. The member is looked up before the first byte
    (an unknown one is 404 `member_not_found`); then each section is read a page of
    EXPORT_PAGE at a time, so memory stays flat however long the member's history."""
    started = context.clock.now()
    profile = await members.view(context, principal, member)

    async def work(connection: Connection) -> tuple[int, ErasureRecord | None]:
        member_id = await ledger.internal_member_id(connection, principal.program_id, member)
        row = await repository.erasure(connection, principal.program_id, member_id)
        record = (
            None
            if row is None
            else ErasureRecord(erased_at=row["erased_at"], reason=row["reason"], entry_id=row["entry_id"])
        )
        return member_id, record

    member_id, erasure = await context.db.read(work)
    return _document(context, principal, member, member_id, started, profile, erasure)


def _json(model: BaseModel | None) -> bytes:
    return b"null" if model is None else model.model_dump_json().encode()


async def _array(items: AsyncIterator[BaseModel]) -> AsyncIterator[bytes]:
    """A JSON array of `items`, in chunks of about CHUNK_BYTES (one send each)."""
    parts = [b"["]
    size = 1
    separator = b""
    async for item in items:
        part = separator + _json(item)
        separator = b","
        parts.append(part)
        size += len(part)
        if size >= CHUNK_BYTES:
            yield b"".join(parts)
            parts, size = [], 0
    parts.append(b"]")
    yield b"".join(parts)


async def _document(
    context: AppContext,
    principal: Principal,
    member: str,
    member_id: int,
    started: datetime,
    profile: BaseModel,
    erasure: ErasureRecord | None,
) -> AsyncIterator[bytes]:
    program_id = principal.program_id

    async def read_lots(after: int) -> list[LotView]:
        async def work(connection: Connection) -> list[LotView]:
            return await ledger.member_lots_page(
                connection, program_id, member_id, after_lot_id=after, limit=EXPORT_PAGE
            )

        return await context.db.read(work)

    async def lots() -> AsyncIterator[BaseModel]:
        after = 0
        while True:
            page = await read_lots(after)
            for lot in page:
                yield lot
            if len(page) < EXPORT_PAGE:
                return
            after = page[-1].id

    async def read_entries(before: int) -> tuple[list[EntryView], int | None]:
        async def work(connection: Connection) -> tuple[list[EntryView], int | None]:
            return await ledger.member_entries_page(
                connection, program_id, member_id, before_posting_id=before, limit=EXPORT_PAGE
            )

        return await context.db.read(work)

    async def entries() -> AsyncIterator[BaseModel]:
        before: int | None = 2**63 - 1
        while before is not None:
            page, before = await read_entries(before)
            for entry in page:
                yield entry

    async def holds_() -> AsyncIterator[BaseModel]:
        cursor: str | None = None
        while True:
            page = await holds.member_holds(
                context, principal, member, status=None, limit=EXPORT_PAGE, cursor=cursor
            )
            for hold in page.items:
                yield hold
            if (cursor := page.next_cursor) is None:
                return

    async def orders_() -> AsyncIterator[BaseModel]:
        cursor: str | None = None
        while True:
            page = await orders.member_orders(context, principal, member, limit=EXPORT_PAGE, cursor=cursor)
            for order in page.items:
                yield order
            if (cursor := page.next_cursor) is None:
                return

    async def conversions() -> AsyncIterator[BaseModel]:
        cursor: str | None = None
        while True:
            page = await partners.member_conversions(
                context, principal, member, limit=EXPORT_PAGE, cursor=cursor
            )
            for conversion in page.items:
                yield conversion
            if (cursor := page.next_cursor) is None:
                return

    async def status_history() -> AsyncIterator[BaseModel]:
        cursor: str | None = None
        while True:
            page = await member_status.history(context, principal, member, limit=EXPORT_PAGE, cursor=cursor)
            for change in page.items:
                yield change
            if (cursor := page.next_cursor) is None:
                return

    async def tier_history(first: TierOut) -> AsyncIterator[BaseModel]:
        page = first
        while True:
            for change in page.history:
                yield change
            if page.next_cursor is None:
                return
            page = await tiers.get(context, principal, member, limit=EXPORT_PAGE, cursor=page.next_cursor)

    async def events() -> AsyncIterator[BaseModel]:
        cursor: str | None = None
        while True:
            page = await eventlog.events(
                context, principal, after=0, limit=EXPORT_PAGE, types=None, member=member, cursor=cursor
            )
            for event in page.items:
                yield event
            if (cursor := page.next_cursor) is None:
                return

    yield (
        b'{"format":'
        + json.dumps(EXPORT_FORMAT).encode()
        + b',"exported_at":'
        + json.dumps(started.isoformat().replace("+00:00", "Z")).encode()
        + b',"member":'
        + _json(profile)
        + b',"erasure":'
        + _json(erasure)
    )
    for name, items in (
        (b"lots", lots()),
        (b"entries", entries()),
        (b"holds", holds_()),
        (b"orders", orders_()),
        (b"conversions", conversions()),
    ):
        yield b',"' + name + b'":'
        async for chunk in _array(items):
            yield chunk
    standing = await tiers.get(context, principal, member, limit=EXPORT_PAGE, cursor=None)
    yield b',"tier":' + _json(
        TierStanding(tier=standing.tier, progress=standing.progress, activity=standing.activity)
    )
    yield b',"tier_history":'
    async for chunk in _array(tier_history(standing)):
        yield chunk
    yield b',"status_history":'
    async for chunk in _array(status_history()):
        yield chunk
    yield b',"events":'
    async for chunk in _array(events()):
        yield chunk
    yield b',"complete":true}'


# -- erasure --------------------------------------------------------------------------------------


async def _erased_as(connection: Connection, program_id: int, member: str) -> str | None:
    """The pseudonym `member` was erased as, if it was: either an erased member's old
    external id, or its pseudonym itself."""
    member_id = await ledger.member_id_or_none(connection, program_id, member)
    if member_id is not None:
        return member if await repository.erasure(connection, program_id, member_id) is not None else None
    key = await programs.erasure_key_if_any(connection, program_id)
    if key is None:
        return None
    erased_as = programs.pseudonym(key, member)
    return (
        erased_as if await ledger.member_id_or_none(connection, program_id, erased_as) is not None else None
    )


def _refused(member: str) -> MemberErased:
    return MemberErased(f"member {member} was erased already; it is closed and has no personal data left")


async def _after_another_erasure(
    connection: Connection, request: KeyedRequest, member: str
) -> StoredResponse:
    """The member's id was gone once its lock was ours: an erasure committed while
    this one waited. This same request's (replay its answer) or another's (409);
    else the member never was (404)."""
    found = await stored(connection, request)
    if found is not None:
        return found
    if await _erased_as(connection, request.principal.program_id, member) is not None:
        raise _refused(member)
    raise MemberNotFound(f"no member {member} in this program")


async def erase(context: AppContext, request: KeyedRequest, member: str, body: ErasureIn) -> StoredResponse:
    """Erase a member's personal data (POST /v1/members/{id}/erasure), in one
    transaction: close the member (app.members.status.close_member: its forfeit entry
    is the only entry written; a member closed before is erased as it is), then
    replace its external id with its pseudonym, clear birthday, metadata and its own
    referral link, the birthdays its orders told the rules, and every stored copy of
    its external id (events' data, the kept first responses of its entries' keys);
    record the erasure and write `member.erased`. A retry under the same key replays
    the answer; another erasure of the member is 409 `member_erased`."""
    program_id = request.principal.program_id
    now = context.clock.now()

    async def work(connection: Connection) -> StoredResponse:
        async with connection.transaction():
            found = await stored(connection, request)
            if found is not None:
                return found
            if await _erased_as(connection, program_id, member) is not None:
                return await _after_another_erasure(connection, request, member)
            try:
                forfeit = await close_member(
                    connection,
                    program_id=program_id,
                    member=member,
                    # the operator's reason stays in the erasure record: free text never
                    # goes into an event (member.status_changed carries the closing's)
                    reason=CLOSING_REASON,
                    actor_key_id=request.principal.key_id,
                    now=now,
                )
            except MemberNotFound:
                return await _after_another_erasure(connection, request, member)
            except MemberClosed:
                forfeit = None  # closed before: nothing left to forfeit
            row = await repository.lock_member(connection, program_id, member)
            if row is None:
                # renamed by an erasure that committed while close_member waited for
                # the member's lock (which then found it closed)
                return await _after_another_erasure(connection, request, member)
            member_id = int(row["id"])
            erased_as = programs.pseudonym(await programs.erasure_key(connection, program_id, now), member)
            referred = await repository.referred(connection, program_id, member_id)
            await repository.erase_member(connection, program_id, member_id, erased_as)
            await repository.forget_birthdays(connection, program_id, member_id)
            entry_id = None if forfeit is None else forfeit.entry_id
            await repository.insert_erasure(
                connection,
                program_id=program_id,
                member_id=member_id,
                reason=body.reason,
                actor_key_id=request.principal.key_id,
                entry_id=entry_id,
                erased_at=now,
            )
            await eventlog.redact_member(
                connection, program_id, member_id, external_id=member, pseudonym=erased_as, referred=referred
            )
            await ledger.redact_stored_responses(
                connection, program_id, member_id, external_id=member, pseudonym=erased_as
            )
            answer = ErasureOut(
                member=erased_as,
                status="closed",
                erased_at=now,
                forfeited_points=0 if forfeit is None else forfeit.points,
                entry_id=entry_id,
            )
            # No personal data: the pseudonym, internal references, no reason (free text).
            await emit(
                connection,
                program_id,
                "member.erased",
                {
                    "member": erased_as,
                    "erased_at": answer.model_dump(mode="json")["erased_at"],
                    "entry_id": None if entry_id is None else str(entry_id),
                },
                occurred_at=now,
                now=now,
                members=[member_id],
            )
            response = answer.model_dump_json().encode()
            await keep_response(connection, request, response, now)
            return StoredResponse(201, response)

    return await context.db.call(work)
