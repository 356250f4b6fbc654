from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.fields import Text
from app.ledger.schemas import AwardIn

# What an approval reads as. A pending one past its `expires_at` reads as expired.
ApprovalStatus = Literal["pending_approval", "approved", "rejected", "expired"]


class ApprovalOut(BaseModel):
    """An award that waits for, or was decided by, a second admin key (the rules'
    `limits.award_approval_above`)."""

    approval_id: uuid.UUID = Field(
        description="the approval's id", examples=["0193b1a2-7c1e-7d2a-9a4f-5a1e2f3b4c5d"]
    )
    status: ApprovalStatus = Field(
        description="pending_approval until an admin key other than the requester's approves or "
        "rejects it, or it expires (7 days after the request)",
        examples=["pending_approval"],
    )
    member: str = Field(description="the member the award is for", examples=["cust-10042"])
    points: int = Field(description="the points the award asks for", examples=[50000])
    award: AwardIn = Field(description="the award's request, posted as it is when approved")
    requested_by: uuid.UUID | None = Field(
        description="the API key that asked (null: the bootstrap key)",
        examples=["0193b1a2-7c1e-7d2a-9a4f-000000000001"],
    )
    idempotency_key: str = Field(
        description="the award request's Idempotency-Key (a retry of it replays this answer)",
        examples=["award-4711"],
    )
    request_id: str | None = Field(
        description="the award request's X-Request-ID", examples=["4bf92f3577b34da6a3ce929d0e0e4736"]
    )
    requested_at: datetime = Field(
        description="when the award was asked for", examples=["2026-11-24T10:00:00Z"]
    )
    expires_at: datetime = Field(
        description="when a pending approval expires: 7 days after the request",
        examples=["2026-12-01T10:00:00Z"],
    )
    decided_by: uuid.UUID | None = Field(
        description="the admin key that approved or rejected it (null while pending or expired, "
        "or the bootstrap key)",
        examples=[None],
    )
    decided_at: datetime | None = Field(description="when it was approved or rejected", examples=[None])
    decision_reason: str | None = Field(description="the approver's or rejecter's reason", examples=[None])
    entry_id: uuid.UUID | None = Field(
        description="the award entry an approval posted (its metadata names this approval_id)",
        examples=[None],
    )


class ApprovalPage(BaseModel):
    items: list[ApprovalOut] = Field(description="approvals, newest first")
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page", examples=[None])


class DecisionIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "checked against the claim ticket"}]}
    )

    reason: Text = Field(
        description="why it is approved or rejected", examples=["checked against the claim ticket"]
    )
