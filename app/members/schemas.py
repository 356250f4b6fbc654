from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from app.fields import ExternalId, Instant, Metadata, Text
from app.rules.document import CalendarDate


class MemberCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"external_id": "cust-10042", "birthday": "1990-04-17", "metadata": {"signup_channel": "app"}}
            ]
        },
    )

    external_id: ExternalId
    birthday: CalendarDate | None = Field(
        default=None, description="for birthday-month rules", examples=["1990-04-17"]
    )
    enrolled_at: Instant | None = Field(
        default=None,
        description="when the member joined (default: now); not in the future",
        examples=[None],
    )
    referred_by: ExternalId | None = Field(
        default=None, description="external id of the referring member", examples=[None]
    )
    metadata: Metadata | None = Field(
        default=None, description="free-form JSON object kept with the record (at most 8 KiB)"
    )


class Balances(BaseModel):
    available: int = Field(description="points the member can spend", examples=[250])
    pending: int = Field(description="points not yet available", examples=[0])
    held: int = Field(description="points reserved by holds", examples=[0])
    debt: int = Field(
        description="points the member owes after a refund took back points already spent "
        "(programs whose rules set refunds.shortfall to debt); later earnings repay it",
        examples=[0],
    )


class Expiring(BaseModel):
    points: int = Field(description="points that will expire", examples=[100])
    expires_at: datetime = Field(description="when", examples=["2027-11-24T00:00:00Z"])


class MemberTier(BaseModel):
    code: str = Field(description="tier code", examples=["gold"])
    name: str = Field(description="tier name", examples=["Gold"])
    since: datetime = Field(description="when the member reached it", examples=["2026-01-05T10:00:00Z"])
    term_ends_at: datetime | None = Field(description="when the term ends", examples=["2027-01-05T10:00:00Z"])


class TierProgress(BaseModel):
    next_tier: str | None = Field(description="the next tier's code", examples=["black"])
    missing: dict[str, JsonValue] = Field(description="what is missing to reach it", examples=[{"orders": 2}])


MemberStatus = Literal["active", "frozen", "suspended", "closed"]
# The statuses POST /v1/members/{id}/status sets (closing is its own operation).
SettableStatus = Literal["active", "frozen", "suspended"]


class MemberSummary(BaseModel):
    """A member as lists show it: the member view without the upcoming expiries."""

    external_id: str = Field(description="the caller's id for the member", examples=["cust-10042"])
    status: MemberStatus = Field(
        description="membership status: active; frozen (receives points, spends none); suspended "
        "(no points move); closed (accepts nothing new)",
        examples=["active"],
    )
    status_until: datetime | None = Field(
        description="when a frozen or suspended status returns to active by itself (null: it stays)",
        examples=[None],
    )
    enrolled_at: datetime = Field(
        description="when the member joined (UTC)", examples=["2026-11-24T10:00:00Z"]
    )
    birthday: date | None = Field(description="birthday, if given", examples=[None])
    referred_by: str | None = Field(description="referring member", examples=[None])
    metadata: dict[str, JsonValue] = Field(description="caller-supplied data", examples=[{}])
    balances: Balances
    tier: MemberTier | None = Field(
        description="current tier (none until tiers are configured)", examples=[None]
    )
    tier_progress: TierProgress | None = Field(description="progress to the next tier", examples=[None])


class MemberOut(MemberSummary):
    """A member with balances, upcoming expiries and tier."""

    expiring: list[Expiring] = Field(
        description="upcoming expiries, soonest first: the next 10 expiry dates of the member's "
        "available points (held points do not expire while held); empty under expiry policy none"
    )


class MemberPage(BaseModel):
    items: list[MemberSummary] = Field(description="members, newest enrolment first")
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page", examples=[None])


class MemberPatch(BaseModel):
    """A JSON merge patch (RFC 7396) of the member: `birthday` and `metadata` only.
    A field left out is kept; `null` clears it; `metadata` is merged key by key (a key
    set to null is removed)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"birthday": "1990-04-17", "metadata": {"tier_note": None, "city": "Berlin"}}]
        },
    )

    birthday: CalendarDate | None = Field(default=None, description="the new birthday; null clears it")
    metadata: dict[str, JsonValue] | None = Field(
        default=None, description="merged into the member's metadata; null clears all of it"
    )


class StatusChangeIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"status": "frozen", "reason": "fraud review #4411", "until": "2026-12-15T00:00:00Z"}
            ]
        },
    )

    status: SettableStatus = Field(
        description="active; frozen (may still receive points: orders, events, awards, transfers in; may "
        "not redeem, hold, transfer out, convert or keep a tier with points); suspended (no points move, "
        "earning is refused too)",
        examples=["frozen"],
    )
    reason: Text = Field(description="why, kept in the status history", examples=["fraud review #4411"])
    until: Instant | None = Field(
        default=None,
        description="frozen or suspended only: the member returns to active at this instant (the "
        "lift-statuses job); in the future",
        examples=["2026-12-15T00:00:00Z"],
    )


class StatusChangeOut(BaseModel):
    """One change of a member's status."""

    id: int = Field(description="the change's id, increasing with time", examples=[1201])
    member: str = Field(description="the member's external id", examples=["cust-10042"])
    status: MemberStatus = Field(description="the status from this change on", examples=["frozen"])
    previous_status: MemberStatus = Field(description="the status before it", examples=["active"])
    reason: str = Field(description="why", examples=["fraud review #4411"])
    until: datetime | None = Field(
        description="when the status returns to active by itself (null: it stays)",
        examples=["2026-12-15T00:00:00Z"],
    )
    actor_key_id: uuid.UUID | None = Field(
        description="the API key that made the change (null: the lift-statuses job, or the development "
        "admin key)",
        examples=["0193b0a4-2c1e-7b52-9d4f-0d5c3a1f9e21"],
    )
    changed_at: datetime = Field(description="when it took effect (UTC)", examples=["2026-11-29T10:00:00Z"])
    entry_id: uuid.UUID | None = Field(
        description="closing: the forfeit entry that took the member's available points (null: none)",
        examples=[None],
    )


class StatusHistoryPage(BaseModel):
    items: list[StatusChangeOut] = Field(description="status changes, newest first")
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page", examples=[None])


class CloseIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "member asked to leave"}]}
    )

    reason: Text = Field(description="why, kept in the status history", examples=["member asked to leave"])


class ClosureOut(BaseModel):
    """A closed member: what it forfeited, and what it will forfeit."""

    member: str = Field(description="the member's external id", examples=["cust-10042"])
    status: Literal["closed"] = Field(description="always closed", examples=["closed"])
    reason: str = Field(description="why", examples=["member asked to leave"])
    closed_at: datetime = Field(description="when (UTC)", examples=["2026-11-29T10:00:00Z"])
    forfeited_points: int = Field(
        description="available points forfeited now, in one forfeit entry", examples=[1250]
    )
    pending_points: int = Field(
        description="pending points, forfeited when they would have become available (activate-pending)",
        examples=[80],
    )
    entry_id: uuid.UUID | None = Field(
        description="the forfeit entry (null: no available points to forfeit)",
        examples=["0193b0a4-2c1e-7b52-9d4f-0d5c3a1f9e21"],
    )
    status_change_id: int = Field(description="the closing's place in the status history", examples=[1202])
