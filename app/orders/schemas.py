from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.fields import ExternalId, Instant, Money, ShortText

Label = ShortText


class OrderLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Label = Field(description="the product's SKU", examples=["SHOE-42"])
    category: Label | None = Field(default=None, description="product category", examples=["shoes"])
    quantity: int = Field(strict=True, ge=1, le=1_000_000, description="units bought", examples=[1])
    unit_price: Money = Field(description="price of one unit, in the order's currency")


class OrderIn(BaseModel):
    """A paid order, as the checkout knows it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "order_id": "o-1001",
                    "member": "cust-10042",
                    "total": {"amount": "120.50", "currency": "EUR"},
                    "lines": [
                        {
                            "sku": "SHOE-42",
                            "category": "shoes",
                            "quantity": 1,
                            "unit_price": {"amount": "100.50", "currency": "EUR"},
                        },
                        {
                            "sku": "SOCK-7",
                            "category": "socks",
                            "quantity": 2,
                            "unit_price": {"amount": "10.00", "currency": "EUR"},
                        },
                    ],
                    "channel": "app",
                    "paid_at": "2026-11-24T10:00:00Z",
                }
            ]
        },
    )

    order_id: Label = Field(
        description="the checkout's id for the order, unique per program", examples=["o-1001"]
    )
    member: ExternalId = Field(description="the member who paid")
    total: Money = Field(
        description="what the member paid. Above the lines' sum, the rest (shipping, fees) earns like any "
        "money but no line's multiplier reaches it; below it (an order-level discount), the total is "
        "shared among the lines in proportion, so each line's multiplier applies to its share"
    )
    lines: list[OrderLineIn] | None = Field(
        default=None,
        max_length=500,
        description="the order's lines, one per SKU; needed for category and SKU rules and for refunds by "
        "line",
    )
    channel: Label | None = Field(default=None, description="where the order was placed", examples=["app"])
    paid_at: Instant = Field(description="when it was paid (RFC 3339; not in the future)")

    @model_validator(mode="after")
    def _one_currency_and_one_line_per_sku(self) -> OrderIn:
        seen: set[str] = set()
        for index, line in enumerate(self.lines or []):
            if line.unit_price.currency != self.total.currency:
                raise ValueError(f"lines.{index}.unit_price.currency must be the total's currency")
            if line.sku in seen:
                # A refund by line names a SKU: two lines of one SKU would make it ambiguous.
                raise ValueError(
                    f"lines.{index}.sku {line.sku} is on another line already: give one line per SKU"
                )
            seen.add(line.sku)
        return self


class BreakdownLine(BaseModel):
    rule: str = Field(
        description="the rule: base, a multiplier or bonus id, or cap:...", examples=["member-day"]
    )
    points: int = Field(description="points this rule added (negative for a cap)", examples=[120])
    detail: str = Field(description="how", examples=["x2 (day_of_month 8)"])


class OrderResult(BaseModel):
    order_id: str = Field(description="the order", examples=["o-1001"])
    member: str = Field(description="the member", examples=["cust-10042"])
    points: int = Field(description="points the order earns (the breakdown adds up to this)", examples=[240])
    status: Literal["pending", "available"] = Field(
        description="pending through the return window, then available", examples=["pending"]
    )
    available_at: datetime = Field(
        description="when the points are (or become) available (UTC)", examples=["2026-12-09T10:00:00Z"]
    )
    breakdown: list[BreakdownLine] = Field(description="how the rules arrived at the points")
    rules_version: int = Field(description="the rules version that decided", examples=[3])
    debt_repaid: int = Field(
        description="points of these that repaid what the member owed (see balances.debt)", examples=[0]
    )
    entry_id: uuid.UUID | None = Field(
        description="the ledger entry (null for a preview, or an order that earns nothing)", examples=[None]
    )
    tier_reached: str | None = Field(
        default=None,
        description="the tier this order lifted the member to (its multiplier applies from the next "
        "order); null when it changed no tier, and in a preview",
        examples=[None],
    )


class RefundLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Label = Field(description="SKU of an order line", examples=["SHOE-42"])
    quantity: int = Field(strict=True, ge=1, le=1_000_000, description="units returned", examples=[1])


class RefundIn(BaseModel):
    """A refund of part or all of an order: by `amount`, or by `lines`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"refund_id": "rf-1", "lines": [{"sku": "SOCK-7", "quantity": 1}]}]},
    )

    refund_id: Label = Field(
        description="the checkout's id for the refund, unique per order", examples=["rf-1"]
    )
    amount: Money | None = Field(default=None, description="money refunded, in the order's currency")
    lines: list[RefundLineIn] | None = Field(
        default=None, min_length=1, max_length=500, description="units returned, by SKU"
    )

    @model_validator(mode="after")
    def _one_way(self) -> RefundIn:
        if (self.amount is None) == (self.lines is None):
            raise ValueError("give either amount or lines")
        if self.amount is not None and self.amount.amount <= 0:
            raise ValueError("amount.amount must be greater than 0")
        return self


class RefundResult(BaseModel):
    refund_id: str = Field(description="the refund", examples=["rf-1"])
    order_id: str = Field(description="the order", examples=["o-1001"])
    amount: Money = Field(description="money this refund returned (rounded for display)")
    points_reversed: int = Field(
        description="points the refunded part earned: from_pending + from_available + shortfall + debt",
        examples=[60],
    )
    from_pending: int = Field(description="taken back from pending points", examples=[60])
    from_available: int = Field(description="taken back from available points", examples=[0])
    shortfall: int = Field(
        description="not taken back: the member had already spent them (recorded only)", examples=[0]
    )
    debt: int = Field(description="added to what the member owes (programs that use debt)", examples=[0])
    points_reversed_total: int = Field(
        description="points taken back by all refunds of the order", examples=[60]
    )
    entry_id: uuid.UUID | None = Field(
        description="the ledger entry (null when no points moved)", examples=[None]
    )


class SimulationIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={"examples": [{"from": "2026-10-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"}]},
    )

    from_: Instant = Field(
        alias="from",
        description="first instant of `paid_at` to replay (included)",
        examples=["2026-10-01T00:00:00Z"],
    )
    to: Instant = Field(description="end of the period (excluded)", examples=["2026-11-01T00:00:00Z"])


class RuleSplit(BaseModel):
    rule: str = Field(description="rule id (base, a multiplier, a bonus, cap:...)", examples=["member-day"])
    actual_points: int = Field(
        description="points this rule gave under the versions that ran", examples=[1200]
    )
    simulated_points: int = Field(description="points it gives under the simulated version", examples=[2400])
    delta_points: int = Field(description="simulated minus actual", examples=[1200])


class EventsSimulationOut(BaseModel):
    events: int = Field(
        description="events that occurred in the period (reversed ones left out)", examples=[900]
    )
    actual_points: int = Field(description="what they earned, both sides of referrals", examples=[4500])
    simulated_points: int = Field(
        description="what they would have earned under `version`: fixed points, per-day limits and "
        "streak bonuses, with limits and streaks counted from the start of the period",
        examples=[5200],
    )
    delta_points: int = Field(description="simulated minus actual", examples=[700])
    streaks_completed: int = Field(
        description="streaks (`events.<type>.streak`) the replay completed, each paying its bonus once",
        examples=[14],
    )


class LimitsSimulationOut(BaseModel):
    """What the version's `limits` would have refused of the period's awards,
    redemptions (holds when placed) and transfers, replayed in the order they were
    recorded, each day's counts starting from nothing; what a refused movement asked
    for counts for nothing. All zero when the version sets no limits."""

    awards: int = Field(description="awards recorded in the period", examples=[300])
    awards_refused: int = Field(
        description="awards the limits would have refused (over `award_max_points`, or past the key's "
        "`award_points_per_key_per_day`)",
        examples=[4],
    )
    award_points_refused: int = Field(description="the points those awards gave", examples=[2000000])
    awards_for_approval: int = Field(
        description="awards that would have waited for a second key (over `award_approval_above`)",
        examples=[12],
    )
    redemptions: int = Field(description="redemptions and holds recorded in the period", examples=[800])
    redemptions_refused: int = Field(
        description="those past the member's `redeem_points_per_member_per_day`", examples=[3]
    )
    redeem_points_refused: int = Field(description="the points those asked for", examples=[45000])
    transfers: int = Field(description="transfers recorded in the period", examples=[50])
    transfers_refused: int = Field(
        description="those past the sender's `transfers_per_member_per_day` or "
        "`transfer_points_per_member_per_day`",
        examples=[1],
    )
    transfer_points_refused: int = Field(description="the points those moved", examples=[7000])


class TierSimulationOut(BaseModel):
    tier: str = Field(description="tier code (of either version)", examples=["gold"])
    actual_members: int = Field(
        description="members whose activity qualifies them for this tier (as their best) under the "
        "active rules",
        examples=[120],
    )
    simulated_members: int = Field(description="the same under `version`", examples=[135])
    delta_members: int = Field(description="simulated minus actual", examples=[15])


class SimulationOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    version: int = Field(description="the simulated rules version", examples=[4])
    from_: datetime = Field(
        alias="from", description="start of the period (UTC)", examples=["2026-10-01T00:00:00Z"]
    )
    to: datetime = Field(description="end of the period (UTC)", examples=["2026-11-01T00:00:00Z"])
    orders: int = Field(description="orders paid in the period", examples=[100000])
    orders_not_earning: int = Field(
        description="of those, orders in a currency the simulated version does not take", examples=[0]
    )
    actual_points: int = Field(description="what they earned", examples=[2400000])
    simulated_points: int = Field(
        description="what they would have earned under `version`", examples=[2650000]
    )
    delta_points: int = Field(description="simulated minus actual", examples=[250000])
    rules: list[RuleSplit] = Field(description="the split by rule, largest change first")
    events: EventsSimulationOut = Field(
        description="member events that occurred in the period, replayed under `version` (not part of "
        "the order totals above)"
    )
    limits: LimitsSimulationOut = Field(
        description="what the version's limits would have refused of the period's awards, redemptions "
        "and transfers"
    )
    tiers: list[TierSimulationOut] = Field(
        description="members each tier would hold on the activity of the window ending at `to`, "
        "under the active rules and under `version` (referrals counted when a version's tiers name them)"
    )


class OrderRefundOut(BaseModel):
    refund_id: str = Field(description="the refund's id", examples=["rf-1"])
    amount: Money = Field(description="money the refund returned (in the currency's decimals)")
    points_reversed: int = Field(description="points it took back", examples=[40])
    created_at: datetime = Field(description="when it was recorded (UTC)", examples=["2026-11-25T09:00:00Z"])


class OrderOut(BaseModel):
    """A paid order as the ledger recorded it, with its points and refunds."""

    order_id: str = Field(description="the checkout's id for the order", examples=["o-1001"])
    partner: str | None = Field(
        default=None, description="a partner's co-branded order: the partner's code", examples=[None]
    )
    member: str = Field(description="the member who paid", examples=["cust-10042"])
    total: Money = Field(description="what the member paid")
    lines: list[OrderLineIn] | None = Field(description="the order's lines, as sent")
    channel: str | None = Field(description="where the order was placed", examples=["app"])
    paid_at: datetime = Field(description="when it was paid (UTC)", examples=["2026-11-24T10:00:00Z"])
    recorded_at: datetime = Field(
        description="when the ledger recorded it (UTC)", examples=["2026-11-24T10:00:01Z"]
    )
    rules_version: int = Field(description="the rules version that decided its points", examples=[3])
    points: int = Field(description="points the order earned", examples=[240])
    points_refunded: int = Field(description="of those, points refunds took back", examples=[40])
    status: Literal["pending", "available"] = Field(
        description="pending while its points wait out the return window; then available",
        examples=["available"],
    )
    available_at: datetime = Field(
        description="when its points became (or become) available (UTC)", examples=["2026-12-08T10:00:00Z"]
    )
    breakdown: list[BreakdownLine] = Field(description="how the rules arrived at the points")
    entry_id: uuid.UUID | None = Field(
        description="the earn entry (null: the order earned nothing)", examples=[None]
    )
    refunds: list[OrderRefundOut] = Field(description="its refunds, oldest first")


class OrderPage(BaseModel):
    items: list[OrderOut] = Field(description="orders, newest payment first")
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page", examples=[None])
