"""HTTP route for campaign budgets: thin, the rules live in service.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.budgets import service
from app.budgets.schemas import BudgetPage
from app.context import Context, require
from app.errors import Forbidden, error_responses
from app.http import api_router
from app.pagination import Cursor, Limit
from app.principal import Principal

# Under /v1/rules, with the rules documents' reads (and before their /{version}).
router = api_router(prefix="/v1/rules", tags=["rules"])
Reader = Annotated[Principal, Depends(require("rules:read"))]


@router.get(
    "/budgets",
    response_model=BudgetPage,
    operation_id="listRulesBudgets",
    responses=error_responses(Forbidden),
)
async def list_rules_budgets(
    context: Context, principal: Reader, limit: Limit = 50, cursor: Cursor = None
) -> BudgetPage:
    """Every campaign budget of the program (`budget: {points, per_member?}` on a
    multiplier or bonus of the rules), with the points its rule has added (`used`,
    net of refunds) and may still add (`remaining`). A budget is named by where its
    rule sits in the document, so a later version with the same rule spends the
    same budget."""
    return await service.budgets(context, principal, limit=limit, cursor=cursor)
