from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.eventlog.schemas import EventOut
from app.fields import Text
from app.holds.schemas import HoldOut
from app.ledger.schemas import EntryView, LotView
from app.members.schemas import MemberOut, StatusChangeOut
from app.orders.schemas import OrderOut
from app.partners.schemas import ConversionOut
from app.tiers.schemas import ActivityOut, TierChangeOut, TierProgressOut, TierStateOut

EXPORT_FORMAT = "points-ledger.member-export.v1"


class ErasureIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "GDPR art. 17 request #5521"}]}
    )

    reason: Text = Field(
        description="why, kept with the erasure record (never in an event); name the request, not the person",
        examples=["GDPR art. 17 request #5521"],
    )


class ErasureOut(BaseModel):
    """A member whose personal data was erased: closed, and named by its pseudonym."""

    member: str = Field(
        description="the member's pseudonym, its external id from now on: `erased:` and 64 hex digits",
        examples=["erased:3f0c9a1e4b7d2c6f8a5e1b0d9c7f3a2e6b4d8c1f0a9e7b5d3c2f1e0a9b8c7d6e"],
    )
    status: Literal["closed"] = Field(description="always closed", examples=["closed"])
    erased_at: datetime = Field(description="when (UTC)", examples=["2026-11-29T10:00:00Z"])
    forfeited_points: int = Field(
        description="available points the closing forfeited (0: none, or closed before)", examples=[1250]
    )
    entry_id: uuid.UUID | None = Field(
        description="the closing's forfeit entry, the only entry an erasure writes (null: none)",
        examples=["0193b1a2-7c1e-7d2a-9a4f-5a1e2f3b4c5d"],
    )


class ErasureRecord(BaseModel):
    """That the member's personal data was erased."""

    erased_at: datetime = Field(description="when (UTC)", examples=["2026-11-29T10:00:00Z"])
    reason: str = Field(description="why, as the operator gave it", examples=["GDPR art. 17 request #5521"])
    entry_id: uuid.UUID | None = Field(
        description="the closing's forfeit entry (null: none)",
        examples=["0193b1a2-7c1e-7d2a-9a4f-5a1e2f3b4c5d"],
    )


class TierStanding(BaseModel):
    """The member's tier now: GET /v1/members/{id}/tier without its history."""

    tier: TierStateOut | None = Field(description="the current tier (null: none)")
    progress: TierProgressOut | None = Field(description="what is missing for the next tier (null: top)")
    activity: ActivityOut | None = Field(description="qualifying activity in the window ending at the export")


class MemberExport(BaseModel):
    """Everything the service holds about one member, as one JSON document. Streamed:
    sections are written in this order, each read a page at a time; `complete` comes
    last, so a document cut short (a dropped connection, an error mid-stream) is
    either invalid JSON or lacks it."""

    format: Literal["points-ledger.member-export.v1"] = Field(
        description="what this document is, and its version", examples=[EXPORT_FORMAT]
    )
    exported_at: datetime = Field(
        description="when the export began (UTC)", examples=["2026-11-29T10:00:00Z"]
    )
    member: MemberOut = Field(description="the profile: the member view (balances, expiries, tier)")
    erasure: ErasureRecord | None = Field(description="the erasure, if the member was erased (null: not)")
    lots: list[LotView] = Field(description="lots that still hold available points, oldest first")
    entries: list[EntryView] = Field(
        description="every journal entry that moved the member's points, newest first, each with all its "
        "postings, balances after it and its place in the hash chain"
    )
    holds: list[HoldOut] = Field(description="every hold, newest first")
    orders: list[OrderOut] = Field(description="every order, newest payment first, each with its refunds")
    conversions: list[ConversionOut] = Field(description="every conversion to or from a partner's units")
    tier: TierStanding = Field(description="the tier now, progress and qualifying activity")
    tier_history: list[TierChangeOut] = Field(description="every tier change, newest first")
    status_history: list[StatusChangeOut] = Field(
        description="every change of the member's status, newest first"
    )
    events: list[EventOut] = Field(
        description="every event of the program's event log that concerns the member, in sequence order "
        "(events not yet given a sequence by the chainer follow in a later export)"
    )
    complete: Literal[True] = Field(description="the last field: the document is whole", examples=[True])
