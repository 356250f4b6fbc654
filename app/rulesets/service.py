"""Rules documents: store a version, activate it, read the active one. (What a
version would have cost, replaying past orders, lives with orders: app/orders/simulation.py.)"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.budgets import service as budgets
from app.context import AppContext
from app.errors import AppError, FieldError, NotFound
from app.principal import Principal
from app.rules import RulesDocument, default_document
from app.rulesets import repository
from app.rulesets.models import RulesVersion
from app.rulesets.schemas import RulesVersionOut, RulesVersionPage, RulesVersionSummary


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


async def versions(
    context: AppContext, principal: Principal, *, limit: int, cursor: str | None
) -> RulesVersionPage:
    """Every stored version, newest first (GET /v1/rules/versions)."""
    list_id = f"rules-versions:{principal.program_id}"
    (before,) = [None] if cursor is None else context.cursors.read(list_id, cursor)
    async with context.db.unit_of_work() as session:
        rows = await repository.versions(session, principal.program_id, before=before, limit=limit + 1)
    page = rows[:limit]
    return RulesVersionPage(
        items=[
            RulesVersionSummary(
                version=row.version,
                active=row.active,
                created_at=row.created_at,
                activated_at=row.activated_at,
            )
            for row in page
        ],
        next_cursor=context.cursors.issue(list_id, page[-1].version) if len(rows) > limit else None,
    )


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
        out = _out(row)
        # Its campaign budgets, in the activation's transaction: an order that reads
        # this version as active finds every budget it names.
        await budgets.set_limits(session, principal.program_id, out.document, now)
        return out

    activated = await context.db.run(work)
    # This process drops its cached active version at once; the others when the
    # trigger's NOTIFY reaches them (milliseconds; each entry names the version it used).
    context.rules.activated()
    return activated
