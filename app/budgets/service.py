"""Campaign budgets: set at activation, taken by orders, given back by refunds,
read by operators (GET /v1/rules/budgets).

The rules module says what each budgeted rule would add to an order
(app/rules/budgets.py); the database takes it, in the order's own statement
(ledger_post_order() calls rules_budget_take()). A budget is a handful of slices,
so concurrent orders don't queue on one row, and each take is a conditional update
(or runs under every slice's lock), so they never take more than it holds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from app.budgets import repository
from app.budgets.schemas import BudgetOut, BudgetPage
from app.context import AppContext
from app.db import PRIMARY, Connection, ReadFrom
from app.principal import Principal
from app.rules import RulesDocument
from app.rules.budgets import Scope, budget_limits
from app.sql import SqlState


class BudgetExhausted(Exception):
    """An order's charge its budget could not cover (SQLSTATE LPB01): nothing was
    written, and the order is computed again without that rule."""

    def __init__(self, key: str, scope: Scope) -> None:
        super().__init__(f"budget {key} can't cover the order ({scope})")
        self.key = key
        self.scope: Scope = scope


def exhausted(exc: asyncpg.PostgresError) -> BudgetExhausted | None:
    """The budget an order's statement found short, if that is why it failed."""
    if exc.sqlstate != SqlState.BUDGET_EXHAUSTED:
        return None
    detail = json.loads(getattr(exc, "detail", None) or "{}")
    return BudgetExhausted(str(detail["budget"]), "member" if detail.get("scope") == "member" else "budget")


async def set_limits(session: AsyncSession, program_id: int, rules: RulesDocument, now: datetime) -> None:
    """The budgets of a version being activated, in the activation's transaction:
    new ones start full; known ones take the version's limits (app/rules/budgets.py)."""
    limits = [
        {"budget": limit.key, "points": limit.points, "per_member": limit.per_member}
        for limit in budget_limits(rules)
    ]
    if limits:
        await repository.set_limits(session, program_id, limits, now)


async def give_back(
    connection: Connection, program_id: int, member_id: int, returns: Sequence[tuple[str, int]]
) -> None:
    """A refund's points back to the budgets they were charged to (in its transaction)."""
    wanted = [{"budget": key, "points": points} for key, points in returns if points > 0]
    if wanted:
        await repository.give_back(connection, program_id, member_id, wanted)


@dataclass(frozen=True, slots=True)
class Room:
    """What is left of a budget and, with `per_member`, of the member's share."""

    left_over: int
    member_left: int | None


async def room(
    connection: Connection, program_id: int, keys: Sequence[str], member_id: int
) -> dict[str, Room]:
    """What is left of these budgets for this member, read without locks (a preview's
    estimate: the order itself takes under the database's checks)."""
    if not keys:
        return {}
    rows = await repository.room(connection, program_id, keys, member_id)
    return {
        row["key"]: Room(
            left_over=row["left_over"] or 0,
            member_left=None if row["per_member"] is None else row["per_member"] - (row["member_used"] or 0),
        )
        for row in rows
    }


async def budgets(
    context: AppContext,
    principal: Principal,
    *,
    limit: int,
    cursor: str | None,
    read: ReadFrom = PRIMARY,
) -> BudgetPage:
    """Every budget the program has had, by name, with what is used and left
    (GET /v1/rules/budgets)."""
    list_id = f"rules-budgets:{principal.program_id}"
    (after,) = [""] if cursor is None else context.cursors.read(list_id, cursor)

    async def work(connection: Connection) -> tuple[list[asyncpg.Record], int, RulesDocument]:
        rows = await repository.budgets(connection, principal.program_id, after=str(after), limit=limit + 1)
        version, rules = await context.rules.active(connection, principal.program_id)
        return rows, version, rules

    rows, version, rules = await context.db.read(work, read)
    named = {limit.key for limit in budget_limits(rules)}
    items = []
    for row in rows[:limit]:
        left_over = row["left_over"] or 0
        items.append(
            BudgetOut(
                budget=row["key"],
                points=row["points"],
                per_member=row["per_member"],
                used=row["points"] - left_over,
                remaining=max(0, left_over),
                active=row["key"] in named,
                created_at=row["created_at"],
                updated_at=row["updated_at"],
            )
        )
    next_cursor = context.cursors.issue(list_id, items[-1].budget) if len(rows) > limit else None
    return BudgetPage(items=items, next_cursor=next_cursor, rules_version=version)
