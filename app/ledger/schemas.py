from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from app.fields import ExternalId, Instant, Metadata, Money, Points, ShortText, Text
from app.ledger.entries import AccountKind, EntryKind


class AwardIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"points": 500, "reason": "welcome bonus", "metadata": {"campaign": "spring"}}]
        },
    )

    points: Points
    reason: Text = Field(description="why the points are given", examples=["goodwill: late delivery"])
    expires_at: Instant | None = Field(
        default=None,
        description="when these points expire (RFC 3339, in the future)",
        examples=[None],
    )
    pending_until: Instant | None = Field(
        default=None,
        description="keep the points pending until then; unset or past: available at once",
        examples=[None],
    )
    metadata: Metadata | None = Field(
        default=None, description="free-form JSON object kept with the record (at most 8 KiB)"
    )


class RedemptionIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"points": 120, "reward": "coffee-voucher"}]}
    )

    points: Points
    reward: ShortText | None = Field(
        default=None, description="what the points buy", examples=["coffee-voucher"]
    )
    order_id: ShortText | None = Field(
        default=None, description="the order the points pay for", examples=[None]
    )
    order_total: Money | None = Field(
        default=None,
        description="the order's total, when points pay part of it: the rules' max_share_of_order "
        "applies to it",
        examples=[None],
    )
    metadata: Metadata | None = Field(
        default=None, description="free-form JSON object kept with the record (at most 8 KiB)"
    )


class TransferIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "from_member": "cust-10042",
                    "to_member": "cust-20077",
                    "points": 80,
                    "reason": "family pooling",
                }
            ]
        },
    )

    from_member: ExternalId = Field(description="member giving the points")
    to_member: ExternalId = Field(description="member receiving the points", examples=["cust-20077"])
    points: Points
    reason: Text | None = Field(default=None, description="why", examples=["family pooling"])


class ReversalIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "awarded twice by mistake"}]}
    )

    reason: Text = Field(description="why the entry is reversed", examples=["awarded twice by mistake"])


class PostingOut(BaseModel):
    member: str | None = Field(
        description="member external id; null for a system account", examples=["cust-10042"]
    )
    account: AccountKind = Field(description="which account moved", examples=["available"])
    points: int = Field(description="signed points on that account", examples=[100])
    partner: str | None = Field(
        default=None,
        description="the partner's code, for a partner's account (partner_funding, partner_payable)",
        examples=[None],
    )


class MemberBalances(BaseModel):
    member: str = Field(description="member external id", examples=["cust-10042"])
    available: int = Field(description="points the member can spend", examples=[250])
    pending: int = Field(description="points not yet available", examples=[0])
    held: int = Field(description="points reserved by holds", examples=[0])


class EntryOut(BaseModel):
    """A journal entry as written: what moved, and the members' balances right after."""

    id: uuid.UUID = Field(description="entry id", examples=["0193b1a2-7c1e-7d2a-9a4f-5a1e2f3b4c5d"])
    kind: EntryKind = Field(description="business event", examples=["award"])
    points: int = Field(description="points moved (the sum of the entry's credits)", examples=[100])
    occurred_at: datetime = Field(
        description="when the event happened (UTC)", examples=["2026-11-24T10:00:00Z"]
    )
    recorded_at: datetime = Field(
        description="when the ledger recorded it (UTC)", examples=["2026-11-24T10:00:00Z"]
    )
    reason: str | None = Field(description="why", examples=["goodwill: late delivery"])
    order_id: str | None = Field(description="related order", examples=[None])
    reverses: uuid.UUID | None = Field(description="the entry this one reverses", examples=[None])
    rules_version: int | None = Field(description="rules version that decided the points", examples=[None])
    expires_at: datetime | None = Field(description="when awarded points expire", examples=[None])
    pending_until: datetime | None = Field(
        description="when pending points become available", examples=[None]
    )
    metadata: dict[str, JsonValue] = Field(description="caller-supplied data", examples=[{}])
    postings: list[PostingOut] = Field(description="the entry's postings; they sum to zero")
    balances: list[MemberBalances] = Field(description="each member's balances right after the entry")


# an entry's place in its program's hash chain (app/ledger/chain.py)
ChainSequence = Annotated[
    int | None,
    Field(
        description="the entry's place in the program's hash chain (null until the chainer reached it, "
        "within seconds)",
        examples=[1042],
    ),
]
ChainHash = Annotated[
    str | None,
    Field(
        description="SHA-256 (hex) of the previous entry's hash and this entry's canonical form "
        "(docs/events.md); null until chained",
        examples=["9f2c4e0b7a1d3c5e8f6a2b4d6c8e0f1a3b5d7e9f1a2c4e6b8d0f2a4c6e8b0d2f"],
    ),
]


class EntryView(EntryOut):
    """A journal entry as written, with its place in the hash chain."""

    sequence: ChainSequence
    hash: ChainHash
    canonical: str | None = Field(
        description="exactly what the hash covers after the previous hash: the entry's canonical JSON "
        "(internal ids, no personal data); check hash = SHA-256(previous hash bytes || these bytes). "
        "Null until chained",
        examples=[None],
    )


class StatementItem(BaseModel):
    id: uuid.UUID = Field(description="entry id", examples=["0193b1a2-7c1e-7d2a-9a4f-5a1e2f3b4c5d"])
    kind: EntryKind = Field(description="business event", examples=["redemption"])
    points: int = Field(description="change of the member's available points (signed)", examples=[-50])
    pending_points: int = Field(description="change of pending points (signed)", examples=[0])
    held_points: int = Field(description="change of held points (signed)", examples=[0])
    debt_points: int = Field(
        description="change of the points the member owes (signed; positive: owes more)", examples=[0]
    )
    balance_after: int = Field(description="available points right after this entry", examples=[200])
    pending_after: int = Field(description="pending points right after this entry", examples=[0])
    held_after: int = Field(description="held points right after this entry", examples=[0])
    occurred_at: datetime = Field(
        description="when the event happened (UTC)", examples=["2026-11-24T10:00:00Z"]
    )
    recorded_at: datetime = Field(
        description="when the ledger recorded it (UTC)", examples=["2026-11-24T10:00:00Z"]
    )
    reason: str | None = Field(description="why", examples=[None])
    order_id: str | None = Field(description="related order", examples=[None])
    reverses: uuid.UUID | None = Field(description="the entry this one reverses", examples=[None])
    rules_version: int | None = Field(description="rules version that decided the points", examples=[None])
    explanation: list[JsonValue] | None = Field(
        description="how the rules computed the points", examples=[None]
    )
    sequence: ChainSequence
    hash: ChainHash


class StatementPage(BaseModel):
    items: list[StatementItem] = Field(description="entries, newest first")
    next_cursor: str | None = Field(description="pass as ?cursor= for older entries", examples=[None])


class BalanceOut(BaseModel):
    member: str = Field(description="member external id", examples=["cust-10042"])
    as_of: datetime = Field(
        description="the instant the balances are for (UTC)", examples=["2026-11-24T10:00:00Z"]
    )
    available: int = Field(description="points the member could spend", examples=[250])
    pending: int = Field(description="points not yet available", examples=[0])
    held: int = Field(description="points reserved by holds", examples=[0])


class LotView(BaseModel):
    """What is left of one credit of a member's available points."""

    id: int = Field(description="the lot's id, increasing with time", examples=[81723])
    entry_id: uuid.UUID = Field(
        description="the entry that credited the points", examples=["0193b1a2-7c1e-7d2a-9a4f-5a1e2f3b4c5d"]
    )
    points: int = Field(description="points the lot was credited with", examples=[240])
    remaining: int = Field(description="points still in it", examples=[120])
    expires_at: datetime | None = Field(
        description="when what remains expires (null: it does not, or the program's policy is inactivity)",
        examples=["2027-11-24T00:00:00Z"],
    )
