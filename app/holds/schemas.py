from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.fields import Instant, Metadata, Money, Points, ShortText, Text

HoldStatus = Literal["active", "captured", "released", "expired"]


class HoldIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"points": 100, "order_id": "o-1002", "order_total": {"amount": "45.00", "currency": "EUR"}}
            ]
        },
    )

    points: Points
    order_id: ShortText | None = Field(
        default=None, description="the checkout's order the points will pay for", examples=["ord-7731"]
    )
    order_total: Money | None = Field(
        default=None,
        description="the order's total: the rules' max_share_of_order applies to it",
        examples=[{"amount": "120.00", "currency": "EUR"}],
    )
    expires_at: Instant | None = Field(
        default=None,
        description="when the worker releases the hold if it is still active; unset: the "
        "service's default (LEDGER_HOLD_TTL_SECONDS, 15 minutes)",
        examples=[None],
    )
    metadata: Metadata | None = Field(
        default=None, description="free-form JSON object kept with the record (at most 8 KiB)"
    )


class CaptureIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"points": 60}]})

    points: Points | None = Field(
        default=None,
        description="points to spend, at most the held points; the rest goes back to available. "
        "Unset: all of them",
        examples=[500],
    )


class ReleaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "order cancelled"}]})

    reason: Text | None = Field(default=None, description="why", examples=["payment failed"])


class HoldOut(BaseModel):
    """A hold as it stands after the request."""

    hold_id: uuid.UUID = Field(
        description="the hold's id (also the id of the entry that placed it)",
        examples=["0193b1a2-7c1e-7d2a-9a4f-5a1e2f3b4c5d"],
    )
    member: str = Field(description="member external id", examples=["cust-10042"])
    status: HoldStatus = Field(description="active, captured, released or expired", examples=["active"])
    points: int = Field(description="points held", examples=[500])
    captured_points: int = Field(description="points spent by the capture", examples=[0])
    order_id: str | None = Field(description="the order the points pay for", examples=["ord-7731"])
    created_at: datetime = Field(
        description="when the hold was placed (UTC)", examples=["2026-11-25T10:00:00Z"]
    )
    expires_at: datetime = Field(
        description="when the worker releases it if still active (UTC)", examples=["2026-11-25T10:15:00Z"]
    )
    closed_at: datetime | None = Field(
        description="when it was captured, released or expired", examples=[None]
    )
    entry_id: uuid.UUID = Field(
        description="the ledger entry of this change: the hold's own entry, or the capture or release",
        examples=["0193b1a2-7c1e-7d2a-9a4f-5a1e2f3b4c5d"],
    )


class HoldPage(BaseModel):
    items: list[HoldOut] = Field(description="holds, newest first")
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page", examples=[None])
