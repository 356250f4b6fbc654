"""Where a non-order activity earns: one transaction that locks the member, counts
their events of the type for the local day, asks the rules, and posts."""

from __future__ import annotations

import dataclasses

from uuid_utils.compat import uuid7

from app.context import AppContext
from app.db import Connection
from app.errors import AppError, ValidationFailed
from app.events import repository
from app.events.schemas import EventIn
from app.idempotency import KeyedRequest, StoredResponse
from app.ledger import posting
from app.ledger.entries import Leg, MemberAccount
from app.ledger.errors import EARN_REFUSED, MemberNotFound, status_refusal
from app.rules import EventFacts, ExplanationLine, RulesError, earn_event
from app.rules.events import local_day
from app.rules.lifecycle import lot_expiry
from app.tiers import service as tiers


class UnknownEventType(AppError):
    status, code, title = 422, "unknown_event_type", "The program's rules give no points for this event"


class EventLimitReached(AppError):
    status, code, title = 422, "event_limit_reached", "The event has earned as often as the rules allow"


class NoReferrer(AppError):
    status, code, title = 422, "no_referrer", "The member was not referred by anyone"


_PROBLEMS: dict[str, type[AppError]] = {
    "unknown_event_type": UnknownEventType,
    "event_limit_reached": EventLimitReached,
    "no_referrer": NoReferrer,
}


async def record(context: AppContext, request: KeyedRequest, member: str, body: EventIn) -> StoredResponse:
    now = context.clock.now()
    if body.occurred_at > now:
        raise ValidationFailed.on("body.occurred_at", "must not be in the future")
    program_id = request.principal.program_id

    async def work(connection: Connection) -> StoredResponse:
        async with connection.transaction():
            facts = await repository.locked_facts(connection, program_id, member)
            if facts is None:
                raise MemberNotFound(f"no member {member} in this program")
            # Under the member's lock: a concurrent retry of this request has committed.
            found = await posting.stored(connection, request)
            if found is not None:
                return found
            if facts["status"] in EARN_REFUSED:
                raise status_refusal(member, facts["status"])
            rules = await context.rules.document(connection, program_id, facts["rules_version"])
            day = local_day(rules, body.occurred_at)
            today, ever = await repository.counts(connection, program_id, facts["member_id"], body.type, day)
            try:
                earning = earn_event(
                    rules,
                    EventFacts(
                        type=body.type,
                        occurred_at=body.occurred_at,
                        earned_today=today,
                        has_referrer=facts["referrer"] is not None,
                        referrals_before=ever if body.type == "referral" else 0,
                    ),
                )
            except RulesError as exc:
                raise _PROBLEMS[exc.code](exc.message) from exc
            if earning.referrer_points and facts["referrer_status"] in EARN_REFUSED:
                # The referee still earns; a referrer who may not earn gets nothing.
                earning = dataclasses.replace(
                    earning,
                    referrer_points=0,
                    lines=tuple(
                        ExplanationLine(line.rule, 0, f"the referrer is {facts['referrer_status']}: none")
                        if line.rule.endswith(":referrer")
                        else line
                        for line in earning.lines
                    ),
                )
            owed = -facts["debt"]
            repaid = min(earning.points, owed)
            credits: tuple[tuple[MemberAccount, int], ...] = (
                ("debt", repaid),
                ("available", earning.points - repaid),
            )
            legs = [Leg(member, account, points) for account, points in credits if points]
            if earning.referrer_points:
                legs.append(Leg(facts["referrer"], "available", earning.referrer_points))
            legs.append(Leg(None, "issuance", -(earning.points + earning.referrer_points)))
            entry_id = uuid7()
            response = await posting.post_in_transaction(
                connection,
                request,
                "event",
                legs,
                now,
                entry_id=entry_id,
                occurred_at=body.occurred_at,
                reason=body.type,
                rules_version=facts["rules_version"],
                expires_at=lot_expiry(rules, body.occurred_at),
                metadata=body.attributes,
                explanation=[
                    {"rule": line.rule, "points": line.points, "detail": line.detail}
                    for line in earning.lines
                ],
            )
            await repository.insert_event(
                connection,
                program_id=program_id,
                member_id=facts["member_id"],
                event_type=body.type,
                occurred_at=body.occurred_at,
                recorded_at=now,
                local_day=day,
                entry_id=entry_id,
                points=earning.points,
                referrer_member_id=facts["referred_by_member_id"] if earning.referrer_points else None,
                referrer_points=earning.referrer_points,
                attributes=body.attributes or {},
            )
            # Both sides' points count towards their tiers; both are locked (ledger_post()).
            for member_id in (
                facts["member_id"],
                facts["referred_by_member_id"] if earning.referrer_points else None,
            ):
                if member_id is not None:
                    await tiers.apply_upgrade(
                        connection,
                        rules,
                        facts["rules_version"],
                        program_id=program_id,
                        member_id=member_id,
                        at=body.occurred_at,
                        now=now,
                        entry_id=entry_id,
                    )
            return response

    return await context.db.call(work)
