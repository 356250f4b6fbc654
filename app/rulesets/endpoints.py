"""HTTP routes for rules documents: thin, the rules live in service.py."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from app.context import Context, require
from app.errors import Forbidden, MalformedJson, ValidationFailed, error_responses
from app.fields import RulesVersionPath
from app.http import api_router
from app.pagination import Cursor, Limit
from app.principal import Principal
from app.rulesets import service
from app.rulesets.schemas import RulesVersionOut, RulesVersionPage

router = api_router(prefix="/v1/rules", tags=["rules"])
Reader = Annotated[Principal, Depends(require("rules:read"))]
Writer = Annotated[Principal, Depends(require("rules:write"))]

_DOCUMENT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "a rules document (see RULES.md); every section but `earn.base` may be left out",
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/RulesDocument"},
                "example": {
                    "timezone": "Europe/Berlin",
                    "currency": "EUR",
                    "earn": {
                        "base": {"points": 1, "per": "1.00", "rounding": "floor"},
                        "multipliers": [
                            {"id": "member-day", "factor": "2", "when": {"day_of_month": [8]}},
                            {"id": "shoes", "factor": "3", "when": {"category": ["shoes"]}},
                        ],
                        "caps": {"per_order": 5000},
                    },
                    "events": {"check_in": {"points": 5, "max_per_day": 1}},
                    "partner_earn": {
                        "coffee-co": {"base": {"points": 2, "per": "1.00", "rounding": "floor"}}
                    },
                    "tiers": [
                        {"code": "silver", "name": "Silver", "rank": 1, "qualify": {"orders": 5}},
                        {
                            "code": "gold",
                            "name": "Gold",
                            "rank": 2,
                            "qualify": {"orders": 20, "spend": "200.00"},
                            "retain": {"orders": 10},
                        },
                    ],
                },
            }
        },
    }
}


@router.get(
    "",
    response_model=RulesVersionOut,
    operation_id="getActiveRules",
    responses=error_responses(Forbidden, service.RulesVersionNotFound),
)
async def get_active_rules(context: Context, principal: Reader) -> RulesVersionOut:
    """The rules orders and events earn under now: the active version and its document."""
    return await service.active(context, principal)


@router.post(
    "",
    status_code=201,
    response_model=RulesVersionOut,
    operation_id="createRulesVersion",
    responses=error_responses(Forbidden, MalformedJson, service.InvalidRules),
    openapi_extra=_DOCUMENT_BODY,
)
async def create_rules_version(request: Request, context: Context, principal: Writer) -> RulesVersionOut:
    """Validate a rules document and store it as the program's next version, not yet
    active. A bad document is 422 `invalid_rules`, with each bad field's path in
    `errors` (e.g. `body.earn.multipliers.0.factor`)."""
    if not await request.body():  # as FastAPI answers a missing body everywhere else
        raise ValidationFailed.on("body", "Field required", "missing")
    return await service.create(context, principal, await request.json())


@router.get(
    "/versions",
    response_model=RulesVersionPage,
    operation_id="listRulesVersions",
    responses=error_responses(Forbidden),
)
async def list_rules_versions(
    context: Context, principal: Reader, limit: Limit = 50, cursor: Cursor = None
) -> RulesVersionPage:
    """Every version the program has stored, newest first, with when it was stored
    and last switched on; the active one says so."""
    return await service.versions(context, principal, limit=limit, cursor=cursor)


@router.get(
    "/{version}",
    response_model=RulesVersionOut,
    operation_id="getRulesVersion",
    responses=error_responses(Forbidden, service.RulesVersionNotFound),
)
async def get_rules_version(
    version: RulesVersionPath, context: Context, principal: Reader
) -> RulesVersionOut:
    """One stored version of the program's rules."""
    return await service.get(context, principal, version)


@router.post(
    "/{version}/activate",
    response_model=RulesVersionOut,
    operation_id="activateRulesVersion",
    responses=error_responses(Forbidden, service.RulesVersionNotFound),
)
async def activate_rules_version(
    version: RulesVersionPath, context: Context, principal: Writer
) -> RulesVersionOut:
    """Switch the program to this version: orders and events from now on earn under
    it and record it. Activating the active version changes nothing."""
    return await service.activate(context, principal, version)
