from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class BudgetOut(BaseModel):
    budget: str = Field(
        description="the budget's name: where its rule sits in the rules document "
        "(`earn.multipliers.<id>`, `earn.bonuses.<id>`, `partner_earn.<partner>.multipliers.<id>`...)",
        examples=["earn.multipliers.spring"],
    )
    points: int = Field(description="the limit: most points the rule adds over all orders", examples=[100000])
    per_member: int | None = Field(
        description="most points the rule adds to one member's orders; null: no such limit", examples=[500]
    )
    used: int = Field(
        description="points the rule has added to orders, less what refunds gave back", examples=[41250]
    )
    remaining: int = Field(
        description="points the rule may still add (0 when a lower limit is already used up)",
        examples=[58750],
    )
    active: bool = Field(
        description="whether the active rules version sets this budget (one it no longer names keeps its "
        "figures, and a later version naming the rule again spends it)",
        examples=[True],
    )
    created_at: datetime = Field(
        description="when a version naming it was first activated (UTC)", examples=["2026-11-25T10:05:00Z"]
    )
    updated_at: datetime = Field(
        description="when a version last set its limits (UTC)", examples=["2026-11-25T10:05:00Z"]
    )


class BudgetPage(BaseModel):
    items: list[BudgetOut] = Field(description="the budgets the program has had, by name")
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page", examples=[None])
    rules_version: int = Field(description="the active rules version", examples=[3])
