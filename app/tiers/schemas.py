from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from app.fields import Instant, Metadata, ShortText, Text

Reason = Literal["qualified", "retained", "downgraded", "kept_with_points", "override"]


class ActivityOut(BaseModel):
    orders: int = Field(description="qualifying orders (not fully refunded)", examples=[7])
    spend: str = Field(description="qualifying spend, net of refunds (decimal string)", examples=["420.50"])
    points: int = Field(description="points earned by orders (net of refunds) and events", examples=[900])
    referrals: int = Field(
        default=0,
        description="members this member referred whose first order falls in the window "
        "(counted when a tier names `referrals`, 0 otherwise)",
        examples=[2],
    )
    window_start: datetime | None = Field(
        description="start of the window (null: since ever)", examples=["2025-11-25T10:00:00Z"]
    )
    window_end: datetime = Field(description="end of the window", examples=["2026-11-25T10:00:00Z"])


class TierStateOut(BaseModel):
    code: str = Field(description="tier code", examples=["gold"])
    name: str = Field(description="tier name", examples=["Gold"])
    since: datetime = Field(description="when the member reached it", examples=["2026-01-05T10:00:00Z"])
    term_ends_at: datetime | None = Field(
        description="when the term ends: retention is judged then (null: set by an operator with no end)",
        examples=["2027-01-05T10:00:00Z"],
    )
    grace_ends_at: datetime | None = Field(
        description="retention was missed: the tier drops then unless kept", examples=[None]
    )
    override_until: datetime | None = Field(
        description="set by an operator until then; the rules apply again after it", examples=[None]
    )
    pinned: bool = Field(description="set by an operator with no end date", examples=[False])


class TierProgressOut(BaseModel):
    next_tier: str = Field(description="the next tier's code", examples=["black"])
    missing: dict[str, JsonValue] = Field(
        description="what the member still needs in the window to reach it",
        examples=[{"orders": 2, "spend": "180.00"}],
    )


class TierChangeOut(BaseModel):
    from_tier: str | None = Field(description="tier before (null: none)", examples=["silver"])
    to_tier: str | None = Field(description="tier after (null: none)", examples=["gold"])
    reason: Reason = Field(description="why it changed", examples=["qualified"])
    effective_at: datetime = Field(description="when it took effect", examples=["2026-03-02T11:00:00Z"])
    recorded_at: datetime = Field(description="when it was recorded", examples=["2026-03-02T11:00:01Z"])
    term_ends_at: datetime | None = Field(
        description="the term's end after it", examples=["2027-03-02T11:00:00Z"]
    )
    activity: ActivityOut | None = Field(description="the activity that decided it", examples=[None])
    rules_version: int | None = Field(description="the rules version that decided", examples=[3])
    entry_id: uuid.UUID | None = Field(
        description="the order, event or keep-with-points entry behind it", examples=[None]
    )
    note: str | None = Field(description="an operator's reason", examples=[None])


class TierOut(BaseModel):
    """A member's tier, progress, qualifying activity and history."""

    member: str = Field(description="member external id", examples=["cust-10042"])
    tier: TierStateOut | None = Field(description="the current tier (null: none)")
    progress: TierProgressOut | None = Field(description="what is missing for the next tier (null: top)")
    activity: ActivityOut | None = Field(description="qualifying activity in the window ending now")
    history: list[TierChangeOut] = Field(description="every change, newest first")
    next_cursor: str | None = Field(description="pass as ?cursor= for older changes", examples=[None])


class KeepIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"metadata": {"requested_via": "app"}}]}
    )

    metadata: Metadata | None = Field(
        default=None, description="free-form JSON object kept with the entry (at most 8 KiB)"
    )


class OverrideIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "code": "gold",
                    "until": "2027-06-30T00:00:00Z",
                    "reason": "service recovery after a lost order",
                }
            ]
        },
    )

    code: ShortText | None = Field(description="the tier code to set; null: no tier", examples=["gold"])
    until: Instant | None = Field(
        default=None,
        description="from then on the normal rules apply again (judged as at a term's end); "
        "unset: until changed again",
        examples=["2027-06-30T00:00:00Z"],
    )
    reason: Text = Field(description="why (kept in the history)", examples=["service recovery"])
