"""Enrolment and the member view."""

from __future__ import annotations

import json

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.context import AppContext
from app.errors import ValidationFailed
from app.ledger import accounts, expiry
from app.ledger.errors import MemberNotFound
from app.members import repository
from app.members.errors import MemberExists
from app.members.schemas import Balances, Expiring, MemberCreate, MemberOut, MemberTier, TierProgress
from app.principal import Principal
from app.tiers import service as tiers


async def enrol(context: AppContext, principal: Principal, body: MemberCreate) -> MemberOut:
    now = context.clock.now()
    if body.enrolled_at is not None and body.enrolled_at > now:
        raise ValidationFailed.on("body.enrolled_at", "must not be in the future")

    async def work(session: AsyncSession) -> None:
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

    await context.db.run(work)
    return await view(context, principal, body.external_id)


async def view(context: AppContext, principal: Principal, external_id: str) -> MemberOut:
    async with context.db.pool.acquire() as connection:
        row = await repository.member_view(connection, principal.program_id, external_id)
        if row is None:
            raise MemberNotFound(f"no member {external_id} in this program")
        upcoming = await expiry.expiring(connection, context.rules, row["program_id"], row["id"])
        standing = await tiers.member_view(
            connection, context.rules, row["program_id"], row["id"], context.clock.now()
        )
    return MemberOut(
        external_id=row["external_id"],
        status=row["status"],
        enrolled_at=row["enrolled_at"],
        birthday=row["birthday"],
        referred_by=row["referred_by"],
        metadata=json.loads(row["metadata"]),
        balances=Balances(
            available=row["available"], pending=row["pending"], held=row["held"], debt=-row["debt"]
        ),
        expiring=[Expiring(points=item.points, expires_at=item.expires_at) for item in upcoming],
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
