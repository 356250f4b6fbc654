"""Request and response shapes of the segments report."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

SegmentName = Literal["core", "potential", "regular", "basic", "lapsed"]
SEGMENTS: tuple[SegmentName, ...] = ("core", "potential", "regular", "basic", "lapsed")


class SegmentCount(BaseModel):
    segment: SegmentName = Field(description="the segment", examples=["core"])
    members: int = Field(description="members in it", examples=[12])
    share: str = Field(
        description="its share of all members in the report, a decimal rounded half-up to 4 places",
        examples=["0.1200"],
    )


class SegmentReport(BaseModel):
    as_of: datetime = Field(
        description="the instant the report is as of (UTC)", examples=["2026-11-25T00:00:00Z"]
    )
    window_days: int = Field(description="the window of orders, in days up to as_of", examples=[365])
    chain_sequence: int = Field(
        description="the ledger chain's sequence as of as_of: the head the report was read from",
        examples=[1042],
    )
    from_snapshot: bool = Field(
        description="true: read from the snapshot the snapshot-segments job kept for this as_of",
        examples=[False],
    )
    currency: str | None = Field(
        description="the currency monetary is measured in (the rules' `currency` in force at as_of, "
        "else their valuation's, else the one most orders of the window were paid in); null when "
        "there is none",
        examples=["EUR"],
    )
    other_currency_orders: int = Field(
        description="orders of the window paid in another currency: they count for recency and "
        "frequency, not for monetary",
        examples=[0],
    )
    members: int = Field(description="members recorded by as_of (every segment together)", examples=[100])
    segments: list[SegmentCount] = Field(description="every segment, in the documented order")


class SegmentMember(BaseModel):
    member: str = Field(description="the member's external id", examples=["m-1001"])
    segment: SegmentName = Field(description="the member's segment", examples=["core"])
    recency_days: int | None = Field(
        description="whole days from the last order in the window to as_of; null when lapsed", examples=[3]
    )
    frequency: int = Field(description="orders paid in the window", examples=[7])
    monetary: str = Field(
        description="net spend in the window in the report's `currency`: those orders' totals less "
        "their refunds",
        examples=["412.50"],
    )
    r: int | None = Field(description="recency score 1-5 (5 = most recent); null when lapsed", examples=[5])
    f: int | None = Field(description="frequency score 1-5; null when lapsed", examples=[4])
    m: int | None = Field(description="monetary score 1-5; null when lapsed", examples=[5])


class SegmentMemberPage(BaseModel):
    as_of: datetime = Field(
        description="the instant the list is as of (UTC)", examples=["2026-11-25T00:00:00Z"]
    )
    chain_sequence: int = Field(description="the ledger chain's sequence as of as_of", examples=[1042])
    currency: str | None = Field(
        description="the currency `monetary` is measured in (as in the report)", examples=["EUR"]
    )
    items: list[SegmentMember] = Field(description="the segment's members, by member id")
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page", examples=[None])
