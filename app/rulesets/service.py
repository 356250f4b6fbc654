"""Rules documents: store a version, activate it, read the active one."""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.context import AppContext
from app.errors import AppError, FieldError, NotFound, ValidationFailed
from app.orders import service as orders
from app.principal import Principal
from app.rules import RulesDocument, RulesError, default_document, earn_order
from app.rulesets import repository
from app.rulesets.models import RulesVersion
from app.rulesets.schemas import RuleSplit, RulesVersionOut, SimulationIn, SimulationOut

# Orders replayed between two yields to the event loop (a few milliseconds' work).
YIELD_EVERY = 64


class InvalidRules(AppError):
    status, code, title = 422, "invalid_rules", "The rules document is not valid"


class RulesVersionNotFound(NotFound):
    code, title = "rules_version_not_found", "Rules version not found"


def parse_document(raw: Any) -> RulesDocument:
    """Validate an uploaded document; 422 `invalid_rules` names each bad field's path."""
    try:
        return RulesDocument.model_validate(raw)
    except ValidationError as exc:
        errors = [
            FieldError(
                field=".".join(["body", *(str(part) for part in error["loc"])]),
                message=error["msg"],
                type=error["type"],
            )
            for error in exc.errors(include_url=False)
        ]
        detail = "; ".join(f"{error.field}: {error.message}" for error in errors)
        raise InvalidRules(detail, errors=errors) from exc


def _out(row: RulesVersion) -> RulesVersionOut:
    return RulesVersionOut(
        version=row.version,
        active=row.active,
        created_at=row.created_at,
        activated_at=row.activated_at,
        document=RulesDocument.model_validate(row.document),
    )


def _stored(document: RulesDocument) -> dict[str, Any]:
    # Stored with every default filled in, so a version means the same thing after
    # a later release changes a default.
    stored: dict[str, Any] = json.loads(document.model_dump_json())
    return stored


async def create_default(session: AsyncSession, program_id: int, now: datetime) -> None:
    """Version 1 of a new program, active at once."""
    await repository.insert_version(
        session,
        program_id=program_id,
        document=_stored(default_document()),
        now=now,
        actor_key_id=None,
        active=True,
    )


async def active(context: AppContext, principal: Principal) -> RulesVersionOut:
    async with context.db.unit_of_work() as session:
        row = await repository.active(session, principal.program_id)
        if row is None:  # every program gets version 1 when it is created
            raise RulesVersionNotFound("the program has no active rules")
        return _out(row)


async def get(context: AppContext, principal: Principal, version: int) -> RulesVersionOut:
    async with context.db.unit_of_work() as session:
        row = await repository.get(session, principal.program_id, version)
        if row is None:
            raise RulesVersionNotFound(f"the program has no rules version {version}")
        return _out(row)


async def create(context: AppContext, principal: Principal, raw: Any) -> RulesVersionOut:
    document = parse_document(raw)
    now = context.clock.now()

    async def work(session: AsyncSession) -> RulesVersionOut:
        row = await repository.insert_version(
            session,
            program_id=principal.program_id,
            document=_stored(document),
            now=now,
            actor_key_id=principal.key_id,
        )
        return _out(row)

    return await context.db.run(work)


async def activate(context: AppContext, principal: Principal, version: int) -> RulesVersionOut:
    now = context.clock.now()

    async def work(session: AsyncSession) -> RulesVersionOut:
        row = await repository.activate(session, principal.program_id, version, now, principal.key_id)
        if row is None:
            raise RulesVersionNotFound(f"the program has no rules version {version}")
        return _out(row)

    activated = await context.db.run(work)
    # This process drops its cached active version at once; the others when the
    # trigger's NOTIFY reaches them (milliseconds; each entry names the version it used).
    context.rules.activated()
    return activated


async def simulate(
    context: AppContext, principal: Principal, version: int, body: SimulationIn
) -> SimulationOut:
    """Replay the program's orders paid in [from, to) under `version`; write nothing.

    Orders are replayed in the order they were recorded, each with the facts it was
    recorded with (tier, birthday, first order), except what the member had earned
    that day: the daily cap counts the replay's own points, from the start of the
    period. Orders in a currency the version does not take earn nothing under it."""
    if body.to <= body.from_:
        raise ValidationFailed.on("body.to", "must be after from")
    program_id = principal.program_id
    actual = simulated = count = skipped = 0
    split: dict[str, list[int]] = {}
    earned: dict[tuple[int, date], int] = {}
    async with context.db.pool.acquire() as connection:
        try:
            rules = await context.rules.document(connection, program_id, version)
        except LookupError:
            raise RulesVersionNotFound(f"the program has no rules version {version}") from None
        zone = ZoneInfo(rules.timezone)

        def earned_today(member_id: int, paid_at: datetime) -> int:
            return earned.get((member_id, paid_at.astimezone(zone).date()), 0)

        async with connection.transaction(isolation="repeatable_read", readonly=True):
            for rule, points in (
                await orders.past_points_by_rule(connection, program_id, body.from_, body.to)
            ).items():
                split[rule] = [points, 0]
            async for order in orders.past_orders(connection, program_id, body.from_, body.to, earned_today):
                count += 1
                if count % YIELD_EVERY == 0:
                    # The replay is CPU work on the event loop: let other requests
                    # of this process run between small slices of it.
                    await asyncio.sleep(0)
                actual += order.points
                try:
                    earning = earn_order(rules, order.facts, explain=False)
                except RulesError:
                    skipped += 1
                    continue
                simulated += earning.points
                day = (order.member_id, earning.local_day)
                earned[day] = earned.get(day, 0) + earning.points
                for line in earning.lines:
                    split.setdefault(line.rule, [0, 0])[1] += line.points
    rules_split = [
        RuleSplit(rule=rule, actual_points=a, simulated_points=s, delta_points=s - a)
        for rule, (a, s) in split.items()
    ]
    rules_split.sort(key=lambda item: (-abs(item.delta_points), item.rule))
    return SimulationOut(
        version=version,
        from_=body.from_,
        to=body.to,
        orders=count,
        orders_not_earning=skipped,
        actual_points=actual,
        simulated_points=simulated,
        delta_points=simulated - actual,
        rules=rules_split,
    )
