"""An award's shape at a given instant (which account, until when), shared by the
awards endpoint and the approval that posts a four-eyed award later."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.context import AppContext
from app.errors import ValidationFailed
from app.ledger.entries import Leg, MemberAccount
from app.ledger.schemas import AwardIn
from app.rules import RulesDocument
from app.rules.lifecycle import lot_expiry


async def active_rules(context: AppContext, program_id: int) -> tuple[int, RulesDocument]:
    """The program's active rules, from the process's cache when it has them (no
    query, no connection), else read."""
    cached, _ = context.rules.cached_active(program_id)
    if cached is not None:
        return cached
    async with context.db.pool.acquire() as connection:
        return await context.rules.active(connection, program_id)


@dataclass(frozen=True, slots=True)
class AwardPlan:
    """Where an award's points go, and until when, as of `now`."""

    legs: list[Leg]
    expires_at: datetime | None
    rules_version: int | None
    pending_until: datetime | None


def plan_award(
    rules_version: int, rules: RulesDocument, member: str, body: AwardIn, now: datetime
) -> AwardPlan | ValidationFailed:
    """The award of `body` to `member` at `now`, or why it can't be given then."""
    if body.expires_at is not None and body.expires_at <= now:
        return ValidationFailed.on("body.expires_at", "must be in the future")
    pending = body.pending_until is not None and body.pending_until > now
    if (
        pending
        and body.expires_at is not None
        and body.pending_until is not None
        and body.pending_until >= body.expires_at
    ):
        return ValidationFailed.on("body.pending_until", "must be before expires_at")
    account: MemberAccount = "pending" if pending else "available"
    version: int | None = None
    expires_at = body.expires_at
    if expires_at is None:
        # The program's expiry policy dates the points from when they are given.
        expires_at = lot_expiry(rules, now)
        if expires_at is not None:
            version = rules_version
            if pending and body.pending_until is not None and body.pending_until >= expires_at:
                # They would become available already expired.
                return ValidationFailed.on(
                    "body.pending_until",
                    f"must be before {expires_at:%Y-%m-%dT%H:%M:%SZ}, when the rules' expiry policy "
                    "ends these points",
                )
    return AwardPlan(
        legs=[Leg(member, account, body.points), Leg(None, "issuance", -body.points)],
        expires_at=expires_at,
        rules_version=version,
        pending_until=body.pending_until if pending else None,
    )
