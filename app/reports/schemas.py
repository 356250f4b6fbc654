"""The reports' answers. Money is `{amount, currency}` with an exact decimal amount
(not rounded to the currency's minor units: 60 points at 0.005 are 0.300); rates
are decimal strings; points are integers."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, Field, PlainSerializer

Exact = Annotated[
    Decimal,
    PlainSerializer(lambda value: str(value), return_type=str, when_used="always"),
    Field(json_schema_extra={"type": "string", "pattern": r"^-?\d+(\.\d+)?$"}),
]


class ExactMoney(BaseModel):
    amount: Exact = Field(description="exact decimal string, negative for a shortfall", examples=["0.300"])
    currency: str = Field(description="ISO 4217 code", examples=["EUR"])


class Read(BaseModel):
    chain_sequence: int = Field(
        description="the ledger head (GET /v1/ledger/head) when the report was read", examples=[1042]
    )


class ValuationOut(BaseModel):
    rules_version: int | None = Field(description="the rules version whose valuation is used", examples=[3])
    cost_per_point: Exact | None = Field(
        description="what a point costs; null: no valuation", examples=["0.005"]
    )
    currency: str | None = Field(description="the cost's currency", examples=["EUR"])
    redemption_cost_cap: Exact | None = Field(
        description="the cap on redemption cost as a share of revenue", examples=["0.03"]
    )


class ExpiryMonth(BaseModel):
    month: str = Field(
        description="YYYY-MM in the program's timezone, `later` or `never`", examples=["2027-01"]
    )
    points: int = Field(description="available points expiring in it", examples=[1200])


class LiabilityOut(Read):
    as_of: datetime = Field(
        description="the instant the figures are as of", examples=["2026-11-29T00:00:00Z"]
    )
    available: int = Field(description="members' available points", examples=[9000])
    pending: int = Field(description="members' pending points", examples=[500])
    held: int = Field(description="members' points held for open redemptions", examples=[100])
    outstanding: int = Field(description="available + pending + held", examples=[9600])
    debt: int = Field(
        description="what members owe after refunds of spent points (zero or negative)", examples=[0]
    )
    members_holding: int = Field(description="members with outstanding points", examples=[42])
    expiring: list[ExpiryMonth] = Field(
        description="available points by expiry month: the next 12 months from `as_of`'s month "
        "(points due and not yet expired count in the first), then `later` and `never`"
    )
    valuation: ValuationOut = Field(description="the valuation in force at `as_of`")
    liability: ExactMoney | None = Field(
        description="outstanding x cost_per_point, exact; null without a valuation",
        examples=[{"amount": "48.000", "currency": "EUR"}],
    )


class BreakageMonth(BaseModel):
    month: str = Field(description="the earn month (YYYY-MM, program timezone)", examples=["2026-10"])
    issued: int = Field(
        description="points issued in the month, net of refunds and reversals", examples=[1000]
    )
    redeemed: int = Field(description="of them, redeemed (held for a redemption included)", examples=[400])
    expired: int = Field(description="of them, expired", examples=[100])
    forfeited: int = Field(description="of them, forfeited", examples=[0])
    outstanding: int = Field(description="of them, still available", examples=[500])
    breakage_rate: Exact | None = Field(
        description="expired / issued so far, 4 places; null when nothing was issued", examples=["0.1000"]
    )


class BreakageOut(Read):
    from_: datetime = Field(
        serialization_alias="from",
        description="start of the period (inclusive)",
        examples=["2026-01-01T00:00:00Z"],
    )
    to: datetime = Field(
        description="end of the period (exclusive), the instant figures are as of",
        examples=["2027-01-01T00:00:00Z"],
    )
    months: list[BreakageMonth] = Field(description="by earn month, oldest first")
    total: BreakageMonth = Field(description="the program's totals over the period (month: `total`)")

    model_config = {"populate_by_name": True}


class RedemptionCostOut(Read):
    from_: datetime = Field(
        serialization_alias="from",
        description="start of the period (inclusive)",
        examples=["2026-11-01T00:00:00Z"],
    )
    to: datetime = Field(description="end of the period (exclusive)", examples=["2026-12-01T00:00:00Z"])
    points_redeemed: int = Field(
        description="points redeemed: redemptions, captures, partner redemptions, conversions, net of "
        "their reversals and releases",
        examples=[2000],
    )
    valuation: ValuationOut = Field(description="the valuation in force at the period's end")
    cost: ExactMoney | None = Field(
        description="points_redeemed x cost_per_point; null without a valuation",
        examples=[{"amount": "10.000", "currency": "EUR"}],
    )
    revenue: ExactMoney | None = Field(
        description="orders (own and partner) in the valuation's currency, net of refunds; null "
        "without a valuation",
        examples=[{"amount": "500.00", "currency": "EUR"}],
    )
    ratio: Exact | None = Field(
        description="cost / revenue, 6 places; null without revenue", examples=["0.020000"]
    )
    cap: Exact | None = Field(description="redemption_cost_cap", examples=["0.03"])
    headroom: ExactMoney | None = Field(
        description="cap x revenue - cost: negative when over the cap; null without a cap",
        examples=[{"amount": "5.000", "currency": "EUR"}],
    )
    cap_exceeded: bool = Field(description="whether cost passed cap x revenue", examples=[False])


class ActivityBucket(BaseModel):
    start: date = Field(description="the bucket's first day, program timezone", examples=["2026-11-01"])
    orders_points: int = Field(description="points issued by own orders", examples=[900])
    partner_orders_points: int = Field(description="points issued by partner orders", examples=[100])
    conversions_points: int = Field(description="points converted in from partners", examples=[0])
    events_points: int = Field(description="points issued by events", examples=[50])
    awards_points: int = Field(description="points awarded (net of their reversals)", examples=[500])
    imports_points: int = Field(description="points imported", examples=[0])
    redeemed: int = Field(description="points redeemed", examples=[300])
    expired: int = Field(description="points expired", examples=[20])
    forfeited: int = Field(description="points forfeited", examples=[0])
    refunded: int = Field(description="points taken back by order refunds", examples=[10])
    net_change: int = Field(
        description="change of the members' outstanding points (available + pending + held)", examples=[1220]
    )
    orders: int = Field(description="orders recorded (own and partner)", examples=[12])
    revenue: dict[str, Exact] = Field(
        description="order totals net of refunds, by currency", examples=[{"EUR": "340.00"}]
    )
    new_members: int = Field(description="members enrolled", examples=[3])
    active_members: int = Field(
        description="members with an order, event, redemption, hold, conversion, donation or transfer",
        examples=[8],
    )


class ActivityOut(Read):
    from_: datetime = Field(
        serialization_alias="from",
        description="start of the period (inclusive)",
        examples=["2026-11-01T00:00:00Z"],
    )
    to: datetime = Field(description="end of the period (exclusive)", examples=["2026-12-01T00:00:00Z"])
    granularity: str = Field(description="day, week (from Monday) or month", examples=["day"])
    timezone: str = Field(description="the program's timezone the buckets are in", examples=["Europe/Berlin"])
    buckets: list[ActivityBucket] = Field(description="the buckets with activity, oldest first")

    model_config = {"populate_by_name": True}


class OverviewOut(Read):
    from_: datetime = Field(
        serialization_alias="from",
        description="start of the period (inclusive)",
        examples=["2026-01-01T00:00:00Z"],
    )
    to: datetime = Field(description="end of the period (exclusive)", examples=["2027-01-01T00:00:00Z"])
    members_enrolled: int = Field(description="members enrolled by the period's end", examples=[100])
    members_participating: int = Field(
        description="members with an order, event, redemption or transfer in the period", examples=[40]
    )
    participation_rate: Exact | None = Field(
        description="participating / enrolled, 4 places", examples=["0.4000"]
    )
    buyers: int = Field(description="members with 1+ orders", examples=[30])
    repeat_buyers: int = Field(description="members with 2+ orders", examples=[12])
    repeat_purchase_rate: Exact | None = Field(
        description="repeat_buyers / buyers, 4 places", examples=["0.4000"]
    )
    orders: int = Field(description="orders in the period", examples=[60])
    average_order_value: dict[str, Exact] = Field(
        description="revenue net of refunds / orders, by currency, 2 places", examples=[{"EUR": "25.50"}]
    )
    points_issued: int = Field(
        description="points issued (orders, partner orders, conversions in, events, awards, imports)",
        examples=[5000],
    )
    points_per_order: Exact | None = Field(
        description="points issued by own and partner orders / orders, 2 places", examples=["25.00"]
    )
    points_redeemed: int = Field(description="points redeemed", examples=[1500])
    redemption_rate: Exact | None = Field(
        description="points redeemed / issued, 4 places", examples=["0.3000"]
    )

    model_config = {"populate_by_name": True}
