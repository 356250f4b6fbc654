"""Enrolment and the member view."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.context import AppContext
from app.db import PRIMARY, Connection, ReadFrom
from app.errors import ValidationFailed
from app.fields import LATEST, storable_metadata
from app.ledger import accounts, expiry
from app.ledger.errors import MemberNotFound, status_refusal
from app.members import repository
from app.members.errors import MemberErased, MemberExists
from app.members.schemas import (
    Balances,
    Expiring,
    MemberCreate,
    MemberOut,
    MemberPage,
    MemberPatch,
    MemberSummary,
    MemberTier,
    TierProgress,
)
from app.outbox import emit_in_session
from app.principal import Principal
from app.programs import service as programs
from app.tiers import service as tiers


async def enrol(context: AppContext, principal: Principal, body: MemberCreate) -> MemberOut:
    now = context.clock.now()
    if body.enrolled_at is not None and body.enrolled_at > now:
        raise ValidationFailed.on("body.enrolled_at", "must not be in the future")

    if body.external_id.startswith(programs.PSEUDONYM_PREFIX):
        raise ValidationFailed.on(
            "body.external_id",
            f"must not start with {programs.PSEUDONYM_PREFIX} (erased members' pseudonyms)",
        )

    async def work(session: AsyncSession) -> None:
        await _refuse_erased(session, principal.program_id, body.external_id)
        referrer = None
        if body.referred_by is not None:
            referrer = await repository.member_id(session, principal.program_id, body.referred_by)
            if referrer is None:
                raise ValidationFailed.on("body.referred_by", f"no member {body.referred_by} in this program")
        try:
            member_id = await repository.insert_member(
                session,
                program_id=principal.program_id,
                external_id=body.external_id,
                birthday=body.birthday,
                enrolled_at=body.enrolled_at or now,
                referred_by_member_id=referrer,
                metadata=body.metadata or {},
                now=now,
            )
        except IntegrityError as exc:
            raise MemberExists(f"member {body.external_id} already exists in this program") from exc
        await accounts.open_member_accounts(session, principal.program_id, member_id, now)
        enrolled_at = body.enrolled_at or now
        await emit_in_session(
            session,
            principal.program_id,
            "member.created",
            {
                "member": body.external_id,
                "enrolled_at": enrolled_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                "referred_by": body.referred_by,
            },
            occurred_at=enrolled_at,
            now=now,
            members=[member_id],
        )

    await context.db.run(work)
    return await view(context, principal, body.external_id)


async def _refuse_erased(session: AsyncSession, program_id: int, external_id: str) -> None:
    """409 `member_erased` when `external_id` belongs to a member whose personal data
    was erased: its pseudonym names a member of the program (an accidental re-import
    of an erased customer must not enrol them again unnoticed)."""
    erased_as = await programs.erased_pseudonym(session, program_id, external_id)
    if erased_as is not None and await repository.member_id(session, program_id, erased_as) is not None:
        raise MemberErased(
            f"member {external_id} was erased from this program; its id cannot be enrolled again"
        )


async def view(
    context: AppContext, principal: Principal, external_id: str, read: ReadFrom = PRIMARY
) -> MemberOut:
    """The member view (GET /v1/members/{id}); from the primary unless `read` says
    otherwise: enrolment and patches answer with it right after their write."""

    async def work(
        connection: Connection,
    ) -> tuple[asyncpg.Record, list[expiry.Expiring], tiers.MemberTierView]:
        row = await repository.member_view(connection, principal.program_id, external_id)
        if row is None:
            raise MemberNotFound(f"no member {external_id} in this program")
        upcoming = await expiry.expiring(connection, context.rules, row["program_id"], row["id"])
        standing = await tiers.member_view(
            connection, context.rules, row["program_id"], row["id"], context.clock.now()
        )
        return row, upcoming, standing

    row, upcoming, standing = await context.db.read(work, read)
    return MemberOut(
        **_summary(row, standing).model_dump(),
        expiring=[Expiring(points=item.points, expires_at=item.expires_at) for item in upcoming],
    )


def _summary(row: asyncpg.Record, standing: tiers.MemberTierView) -> MemberSummary:
    return MemberSummary(
        external_id=row["external_id"],
        status=row["status"],
        status_until=row["status_until"],
        enrolled_at=row["enrolled_at"],
        birthday=row["birthday"],
        referred_by=row["referred_by"],
        metadata=json.loads(row["metadata"]),
        balances=Balances(
            available=row["available"], pending=row["pending"], held=row["held"], debt=-row["debt"]
        ),
        tier=None
        if standing.tier is None
        else MemberTier(
            code=standing.tier.code,
            name=standing.tier.name,
            since=standing.tier.since,
            term_ends_at=standing.tier.term_ends_at,
        ),
        tier_progress=None
        if standing.progress is None
        else TierProgress(next_tier=standing.progress.next_tier, missing=standing.progress.missing),
    )


async def members(
    context: AppContext,
    principal: Principal,
    *,
    limit: int,
    cursor: str | None,
    prefix: str | None,
    tier: str | None,
    status: str | None,
    read: ReadFrom = PRIMARY,
) -> MemberPage:
    """The program's members, newest enrolment first (GET /v1/members). A cursor
    belongs to one list: the same filters."""
    list_id = f"members:{principal.program_id}:{json.dumps([prefix, tier, status])}"
    before: tuple[datetime, int] = (LATEST, 2**63 - 1)
    if cursor is not None:
        enrolled, member_id = context.cursors.read(list_id, cursor)
        before = (datetime.fromisoformat(enrolled), member_id)

    async def work(connection: Connection) -> tuple[list[asyncpg.Record], dict[int, tiers.MemberTierView]]:
        rows = await repository.member_page(
            connection,
            principal.program_id,
            prefix=prefix,
            tier=tier,
            status=status,
            before=before,
            limit=limit + 1,
        )
        standings = await tiers.member_views(
            connection,
            context.rules,
            principal.program_id,
            [row["id"] for row in rows[:limit]],
            context.clock.now(),
        )
        return rows, standings

    rows, standings = await context.db.read(work, read)
    page = rows[:limit]
    last = page[-1] if len(rows) > limit else None
    return MemberPage(
        items=[_summary(row, standings[row["id"]]) for row in page],
        next_cursor=None
        if last is None
        else context.cursors.issue(list_id, last["enrolled_at"].isoformat(), last["id"]),
    )


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge key by key, null removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


async def patch(context: AppContext, principal: Principal, external_id: str, body: MemberPatch) -> MemberOut:
    """Change a member's birthday and metadata by JSON merge patch (PATCH /v1/members/{id})."""
    sent = body.model_fields_set

    async def work(session: AsyncSession) -> None:
        member = await repository.locked_member(session, principal.program_id, external_id)
        if member is None:
            raise MemberNotFound(f"no member {external_id} in this program")
        if member.status == "closed":  # the status changes under this row's lock too (closing)
            raise status_refusal(external_id, "closed")
        if "birthday" in sent:
            member.birthday = body.birthday
        if "metadata" in sent:
            merged = {} if body.metadata is None else merge_patch(member.metadata_, body.metadata)
            try:
                member.metadata_ = storable_metadata(merged)
            except ValueError as exc:
                raise ValidationFailed.on("body.metadata", str(exc)) from exc
        if sent:
            now = context.clock.now()
            await emit_in_session(
                session,
                principal.program_id,
                "member.updated",
                {"member": external_id, "fields": sorted(sent)},
                occurred_at=now,
                now=now,
                members=[member.id],
            )

    await context.db.run(work)
    return await view(context, principal, external_id)
