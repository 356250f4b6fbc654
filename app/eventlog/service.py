"""Reading the event log (GET /v1/events) and the chain's head (GET /v1/ledger/head)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from app.context import AppContext
from app.db import PRIMARY, Connection, ReadFrom
from app.errors import ValidationFailed
from app.eventlog import repository
from app.eventlog.schemas import ChainHeadOut, EventOut, EventPage
from app.eventlog.types import check_pattern, sql_filter
from app.ledger import chain
from app.ledger.service import entry_views, internal_member_id
from app.principal import Principal


async def render(connection: Connection, program_id: int, rows: Sequence[asyncpg.Record]) -> list[EventOut]:
    """Events as the API and webhooks show them: a `points.*` event's data is its
    entry as GET /v1/entries/{id} shows it (read now: the entry never changes)."""
    views = await entry_views(connection, program_id, [row["entry_id"] for row in rows if row["entry_id"]])
    return [
        EventOut(
            id=row["id"],
            type=row["type"],
            sequence=row["sequence"],
            occurred_at=row["occurred_at"],
            created_at=row["created_at"],
            data=(
                views[row["entry_id"]].model_dump(mode="json")
                if row["entry_id"] is not None
                else json.loads(row["data"])
            ),
        )
        for row in rows
    ]


def parse_types(value: str | None) -> list[str] | None:
    if value is None:
        return None
    try:
        return [check_pattern(part.strip()) for part in value.split(",")]
    except ValueError as exc:
        raise ValidationFailed.on("query.type", str(exc)) from exc


async def events(
    context: AppContext,
    principal: Principal,
    *,
    after: int,
    limit: int,
    types: str | None,
    member: str | None,
    cursor: str | None,
    read: ReadFrom = PRIMARY,
) -> EventPage:
    patterns = parse_types(types)
    list_id = f"events:{principal.program_id}:{types or ''}:{member or ''}"
    if cursor is not None:
        (after,) = context.cursors.read(list_id, cursor)

    async def work(connection: Connection) -> tuple[list[asyncpg.Record], list[EventOut]]:
        member_id = (
            None if member is None else await internal_member_id(connection, principal.program_id, member)
        )
        rows = await repository.page(
            connection,
            principal.program_id,
            after=after,
            types=None if patterns is None else sql_filter(patterns),
            member_id=member_id,
            limit=limit + 1,
        )
        return rows, await render(connection, principal.program_id, rows[:limit])

    rows, items = await context.db.read(work, read)
    next_cursor = context.cursors.issue(list_id, items[-1].sequence) if len(rows) > limit else None
    return EventPage(items=items, next_cursor=next_cursor)


async def head(context: AppContext, principal: Principal, read: ReadFrom = PRIMARY) -> ChainHeadOut:
    async def work(connection: Connection) -> chain.ChainState:
        return await chain.state(connection, principal.program_id)

    found = await context.db.read(work, read)
    return ChainHeadOut(sequence=found.sequence, hash=found.hash, entries_unchained=found.entries_unchained)


def _replaced(value: Any, old: str, new: str | None) -> Any:
    """`value` with every string equal to `old` replaced by `new`, at any depth."""
    if isinstance(value, str):
        return new if value == old else value
    if isinstance(value, list):
        return [_replaced(item, old, new) for item in value]
    if isinstance(value, dict):
        return {key: _replaced(item, old, new) for key, item in value.items()}
    return value


async def redact_member(
    connection: Connection,
    program_id: int,
    member_id: int,
    *,
    external_id: str,
    pseudonym: str,
    referred: list[int],
) -> int:
    """Erasure: in every stored event that names the member (its own events, and
    the enrolments of the members it referred, `referred`), its external id becomes
    its pseudonym; in its own enrolment event `referred_by` becomes null (the link to
    its referrer is erased with it). Inside the caller's transaction; the number of
    events changed. Entries' events (`points.*`) store nothing to change: they show
    the entry as it reads now, so with the pseudonym."""
    changed: list[tuple[int, str]] = []
    for row in await repository.about_member(connection, program_id, member_id, referred):
        data = json.loads(row["data"])
        redacted = _replaced(data, external_id, pseudonym)
        if row["type"] == "member.created" and member_id in row["members"] and isinstance(redacted, dict):
            redacted["referred_by"] = None
        if redacted != data:
            changed.append((row["position"], json.dumps(redacted)))
    if changed:
        await repository.rewrite_data(connection, program_id, changed)
    return len(changed)
