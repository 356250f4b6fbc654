"""The rules' `limits`: what one award may give, and what an API key may award and
a member may spend or transfer out per local day (the program's timezone).

A daily limit is counted in a `limit_usage` row per (program, limit, subject,
day), charged in the transaction of the entry it counts, before the entry, with a
conditional upsert (`used + n <= limit`) under the row's lock: concurrent
requests queue on that row only, and never pass the limit together. A charge that
would pass it adds nothing and the request is refused, 422 `limit_exceeded`
naming the limit and what is left; the transaction rolls back, so nothing is
written. Counters are taken before any balance row, one subject at a time in a
fixed order, so they add no deadlock.

Programs without limits pay nothing: their entries keep the one-statement path
(`posting.post`) and read the rules from the process's cache.

What counts:
- `award_points_per_key_per_day`: awards by the key; an approved award counts
  against the key that asked for it, on the day it is approved.
- `redeem_points_per_member_per_day`: redemptions and holds, when placed (the
  checkout commits to spend then; a capture the checkout already promised is
  never refused, and does not count again; a release gives nothing back).
- `transfer_points_per_member_per_day`, `transfers_per_member_per_day`: transfers
  out of the member.
A reversal gives nothing back: the limits count what was asked for and posted."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from app.context import AppContext
from app.db import Connection
from app.idempotency import KeyedRequest, StoredResponse
from app.ledger import posting, repository
from app.ledger.entries import EntryKind, Leg
from app.ledger.errors import LimitExceeded, MemberNotFound
from app.rules import RulesDocument
from app.rules.document import Limits
from app.rules.events import local_day
from app.rules.limits import Movement

DailyLimit = Literal[
    "award_points_per_key_per_day",
    "redeem_points_per_member_per_day",
    "transfer_points_per_member_per_day",
    "transfers_per_member_per_day",
]


@dataclass(frozen=True, slots=True)
class Charge:
    """`amount` to count against one daily limit of one subject: an API key
    (`subject`) or a member (`member`, its external id)."""

    limit: DailyLimit
    allowed: int
    amount: int
    subject: str | None = None
    member: str | None = None


def key_subject(key_id: uuid.UUID | None) -> str:
    """An API key's subject; the bootstrap key (no id) is one subject of its own."""
    return f"key:{key_id if key_id is not None else 'bootstrap'}"


def award_max_refusal(limits: Limits, points: int) -> LimitExceeded | None:
    """`award_max_points`: an award larger than one award may be."""
    allowed = limits.award_max_points
    if allowed is None or points <= allowed:
        return None
    return LimitExceeded(
        f"an award may give at most {allowed} points (award_max_points); this one asks for {points}",
        extensions={"limit": "award_max_points", "allowed": allowed, "remaining": allowed},
    )


def award_charges(limits: Limits, key_id: uuid.UUID | None, points: int) -> list[Charge]:
    if limits.award_points_per_key_per_day is None:
        return []
    return [
        Charge(
            "award_points_per_key_per_day", limits.award_points_per_key_per_day, points, key_subject(key_id)
        )
    ]


def redeem_charges(limits: Limits, member: str, points: int) -> list[Charge]:
    if limits.redeem_points_per_member_per_day is None:
        return []
    return [
        Charge(
            "redeem_points_per_member_per_day", limits.redeem_points_per_member_per_day, points, member=member
        )
    ]


def transfer_charges(limits: Limits, member: str, points: int) -> list[Charge]:
    """The transfer's count first, then its points: one fixed order for every transfer."""
    charges = []
    if limits.transfers_per_member_per_day is not None:
        charges.append(
            Charge("transfers_per_member_per_day", limits.transfers_per_member_per_day, 1, member=member)
        )
    if limits.transfer_points_per_member_per_day is not None:
        charges.append(
            Charge(
                "transfer_points_per_member_per_day",
                limits.transfer_points_per_member_per_day,
                points,
                member=member,
            )
        )
    return charges


def _exceeded(charge: Charge, used: int, day: date) -> LimitExceeded:
    remaining = max(charge.allowed - used, 0)
    who = f"member {charge.member}" if charge.member is not None else "this API key"
    unit = "transfers" if charge.limit == "transfers_per_member_per_day" else "points"
    return LimitExceeded(
        f"{charge.limit} is {charge.allowed} {unit} a day; {who} has {remaining} left on {day.isoformat()} "
        f"(program timezone) and this asks for {charge.amount}",
        extensions={
            "limit": charge.limit,
            "allowed": charge.allowed,
            "remaining": remaining,
            "day": day.isoformat(),
        },
    )


async def charge(
    connection: Connection, program_id: int, rules: RulesDocument, charges: list[Charge], now: datetime
) -> None:
    """Count `charges` against today's limits in the connection's transaction;
    422 `limit_exceeded` (the caller's transaction then rolls back) when one would
    pass its limit."""
    day = local_day(rules, now)
    for item in charges:
        used: int | None = None
        if item.amount <= item.allowed:
            used = await repository.charge_limit(
                connection,
                program_id,
                item.limit,
                subject=item.subject,
                member=item.member,
                day=day,
                amount=item.amount,
                allowed=item.allowed,
                now=now,
            )
        if used is None:
            current = await repository.limit_used(
                connection, program_id, item.limit, subject=item.subject, member=item.member, day=day
            )
            if current is None:
                raise MemberNotFound(f"no member {item.member} in this program")
            raise _exceeded(item, current, day)


async def charge_or_replay(
    connection: Connection, request: KeyedRequest, rules: RulesDocument, charges: list[Charge], now: datetime
) -> None:
    """`charge`, for a request under an Idempotency-Key: refused by a limit that a
    concurrent request with the same key used up while this one waited for the
    counter's lock, it is that request's retry, and replays its answer."""
    try:
        await charge(connection, request.principal.program_id, rules, charges, now)
    except LimitExceeded:
        found = await posting.stored(connection, request)
        if found is not None:
            raise Replayed(found) from None
        raise


class Replayed(Exception):
    """A concurrent request with the same key posted first: roll back what this one
    counted, answer its response."""

    def __init__(self, response: StoredResponse) -> None:
        super().__init__("replayed")
        self.response = response


async def post_within_limits(
    context: AppContext,
    request: KeyedRequest,
    rules: RulesDocument | None,
    charges: list[Charge],
    kind: EntryKind,
    legs: list[Leg],
    now: datetime,
    *,
    grouped: bool = False,
    **fields: Any,
) -> StoredResponse:
    """Post one entry (as `posting.post` does) after counting `charges`, in one
    transaction; with no charges, `posting.post` itself (`grouped`: see there)."""
    if not charges:
        return await posting.post(context, request, kind, legs, now, grouped=grouped, **fields)
    assert rules is not None, "charges come from rules"

    async def work(connection: Connection) -> StoredResponse:
        try:
            async with connection.transaction():
                # A retry replays what it answered: it was counted the first time.
                found = await posting.stored(connection, request)
                if found is not None:
                    return found
                await charge_or_replay(connection, request, rules, charges, now)
                response = await posting.post_in_transaction(
                    connection, request, kind, legs, now, replay_ok=True, **fields
                )
                if response.replayed:
                    raise Replayed(response)
                return response
        except Replayed as replayed:
            return replayed.response

    return await context.db.call(work)


async def past_movements(
    connection: Connection, program_id: int, start: datetime, end: datetime, timezone: str
) -> AsyncIterator[Movement]:
    """The program's awards, redemptions, holds and transfers recorded in [start,
    end), as the limits of a rules version in `timezone` would have counted them
    (app.rules.limits.LimitsReplayer); call inside a transaction."""
    zone = ZoneInfo(timezone)
    async for row in repository.past_limited_movements(connection, program_id, start, end):
        award = row["kind"] == "award"
        yield Movement(
            kind=row["kind"],
            day=row["recorded_at"].astimezone(zone).date(),
            points=row["credited"] if award else row["debited"],
            subject=key_subject(row["actor_key_id"]) if award else f"member:{row['payer']}",
        )
