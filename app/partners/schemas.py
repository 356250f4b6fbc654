"""Request and response shapes of the partner endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, model_validator

from app.fields import ExternalId, Instant, Money, Points, ShortText, Text

PartnerCode = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        description="the partner's code: lower-case letters, digits, - and _",
        examples=["coffee-co"],
    ),
]
Role = Literal["earn", "redeem", "convert_out", "convert_in", "donation"]
Billing = Literal["prepaid", "postpaid"]
PartnerStatus = Literal["active", "suspended"]
SettlementPeriod = Literal["month", "week"]
RateKind = Literal["earn", "redeem", "convert_out", "convert_in"]
Rounding = Literal["floor", "half_up", "ceil"]
Section = Literal[
    "earn",
    "earn_refunds",
    "funding",
    "redemptions",
    "redemption_reversals",
    "donations",
    "conversions_out",
    "conversions_in",
]
SECTIONS: tuple[Section, ...] = (
    "earn",
    "earn_refunds",
    "funding",
    "redemptions",
    "redemption_reversals",
    "donations",
    "conversions_out",
    "conversions_in",
)
ConversionStatus = Literal["pending", "confirmed", "rejected", "failed", "completed"]


def _decimal_text(value: object) -> object:
    # Decimal strings only: a JSON number would pass through a float first.
    if not isinstance(value, str):
        raise ValueError('must be a decimal string such as "0.0125", not a number')
    return value


# rates: positive, at most 10 decimals, at most 1,000,000 (money or units per point)
PositiveDecimal = Annotated[
    Decimal,
    BeforeValidator(_decimal_text),
    Field(gt=0, le=1_000_000, max_digits=17, decimal_places=10, allow_inf_nan=False),
]


class SignedMoney(BaseModel):
    """An amount of money that may be negative (refunds and reversals in a settlement)."""

    amount: Annotated[Decimal, PlainSerializer(lambda value: f"{value:f}", return_type=str)] = Field(
        description="decimal string in the currency's minor unit; negative for what is undone",
        examples=["-0.30"],
    )
    currency: str = Field(description="ISO 4217 code", examples=["EUR"])


Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code", examples=["EUR"])]
Timezone = Annotated[
    str, Field(min_length=1, max_length=64, description="IANA timezone", examples=["Europe/Berlin"])
]


class PartnerCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "code": "coffee-co",
                    "name": "Coffee Co",
                    "roles": ["earn", "redeem", "convert_in"],
                    "billing": "postpaid",
                    "currency": "EUR",
                    "credit_limit_points": 1000000,
                }
            ]
        },
    )

    code: PartnerCode
    name: Text = Field(description="the partner's name, for people", examples=["Coffee Co"])
    roles: list[Role] = Field(
        min_length=1, max_length=5, description="what the partner may do", examples=[["earn", "redeem"]]
    )
    billing: Billing = Field(
        description="prepaid: buys points before giving them out (funding never below zero); "
        "postpaid: is billed for the points it gave out, within its credit limit",
        examples=["postpaid"],
    )
    currency: Currency = Field(description="the currency its settlement is in", examples=["EUR"])
    credit_limit_points: Points | None = Field(
        default=None,
        description="postpaid only: how far below zero its funding may go; unset: no limit",
        examples=[1000000],
    )
    timezone: Timezone = Field(default="UTC", description="IANA timezone its settlement periods are in")
    settlement_period: SettlementPeriod = Field(
        default="month", description="the periods the close-statements job closes", examples=["month"]
    )

    @model_validator(mode="after")
    def _consistent(self) -> PartnerCreate:
        if len(set(self.roles)) != len(self.roles):
            raise ValueError("roles must not repeat")
        if self.credit_limit_points is not None and self.billing != "postpaid":
            raise ValueError("only a postpaid partner has a credit limit")
        return self


class PartnerUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"credit_limit_points": 2000000}, {"status": "suspended"}]},
    )

    name: Text | None = Field(default=None, description="a new name", examples=["Coffee Co Europe"])
    status: PartnerStatus | None = Field(
        default=None,
        description="suspended: every call of the partner's keys is 409 partner_inactive",
        examples=["suspended"],
    )
    credit_limit_points: Points | None = Field(
        default=None, description="postpaid only: a new credit limit", examples=[2000000]
    )

    @model_validator(mode="after")
    def _something(self) -> PartnerUpdate:
        if not self.model_fields_set:
            raise ValueError("send at least one of name, status, credit_limit_points")
        return self


class PartnerOut(BaseModel):
    code: str = Field(description="the partner's code", examples=["coffee-co"])
    name: str = Field(description="the partner's name", examples=["Coffee Co"])
    roles: list[Role] = Field(description="what the partner may do", examples=[["earn", "redeem"]])
    billing: Billing = Field(description="how the partner pays", examples=["postpaid"])
    currency: str = Field(description="its settlement's currency", examples=["EUR"])
    credit_limit_points: int | None = Field(
        description="postpaid: how many points it may have given out on credit and not paid for",
        examples=[1000000],
    )
    paid_points: int = Field(
        description="postpaid: the points of its statements whose payment was recorded", examples=[0]
    )
    timezone: str = Field(description="its settlement periods' timezone", examples=["UTC"])
    settlement_period: SettlementPeriod = Field(description="its statements' period", examples=["month"])
    status: PartnerStatus = Field(description="active or suspended", examples=["active"])
    funding_points: int = Field(
        description="points it has paid for and not given out yet (below zero: given out on credit)",
        examples=[250000],
    )
    payable_points: int = Field(
        description="points members spent with it, which the program owes it for", examples=[12000]
    )
    created_at: datetime = Field(description="when it was onboarded", examples=["2026-11-01T09:00:00Z"])
    updated_at: datetime = Field(description="its last change", examples=["2026-11-01T09:00:00Z"])


class PartnerPage(BaseModel):
    items: list[PartnerOut] = Field(description="partners, by code")
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page", examples=[None])


class RateIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"kind": "earn", "price_per_point": "0.0100"},
                {
                    "kind": "convert_out",
                    "effective_from": "2026-12-01T00:00:00Z",
                    "partner_units_per_point": "0.5",
                    "price_per_point": "0.0080",
                    "min_points": 1000,
                    "increment": 500,
                },
            ]
        },
    )

    kind: RateKind = Field(
        description="earn: what the partner pays per point it gives out; redeem: what the program "
        "pays per point spent with it; convert_out / convert_in: partner units per point",
        examples=["earn"],
    )
    effective_from: Instant | None = Field(
        default=None,
        description="when it comes into force: not before now (a rate never reprices what was "
        "recorded); unset: now",
        examples=["2026-12-01T00:00:00Z"],
    )
    price_per_point: PositiveDecimal | None = Field(
        default=None,
        description="money per point, in the partner's currency, as a decimal string (earn and redeem "
        "need it; a conversion rate may carry it)",
        examples=["0.0100"],
    )
    partner_units_per_point: PositiveDecimal | None = Field(
        default=None,
        description="conversions: the partner's units (miles...) one point is worth, as a decimal string",
        examples=["0.5"],
    )
    min_points: Points | None = Field(
        default=None, description="conversions out: the fewest points converted at once", examples=[1000]
    )
    increment: Points | None = Field(
        default=None, description="conversions out: points converted in multiples of this", examples=[500]
    )
    rounding: Rounding = Field(
        default="floor", description="how partner units are rounded to a whole number", examples=["floor"]
    )

    @model_validator(mode="after")
    def _complete(self) -> RateIn:
        if self.kind in ("earn", "redeem"):
            if self.price_per_point is None:
                raise ValueError(f"a {self.kind} rate needs price_per_point")
            if self.partner_units_per_point is not None or self.min_points or self.increment:
                raise ValueError(f"a {self.kind} rate takes only price_per_point")
        elif self.partner_units_per_point is None:
            raise ValueError(f"a {self.kind} rate needs partner_units_per_point")
        if self.kind == "convert_in" and (self.min_points or self.increment):
            raise ValueError("min_points and increment are for convert_out rates")
        return self


class RateOut(BaseModel):
    id: int = Field(description="the rate's id", examples=[7])
    kind: RateKind = Field(description="what it prices", examples=["earn"])
    effective_from: datetime = Field(description="when it came into force", examples=["2026-12-01T00:00:00Z"])
    price_per_point: Decimal | None = Field(description="money per point", examples=["0.0100"])
    partner_units_per_point: Decimal | None = Field(description="partner units per point", examples=[None])
    min_points: int | None = Field(description="conversions out: fewest points", examples=[None])
    increment: int | None = Field(description="conversions out: multiples of", examples=[None])
    rounding: Rounding = Field(description="rounding of partner units", examples=["floor"])
    created_at: datetime = Field(description="when it was recorded", examples=["2026-11-20T10:00:00Z"])


class RatesInForce(BaseModel):
    at: datetime = Field(description="the instant asked about", examples=["2026-12-15T12:00:00Z"])
    rates: list[RateOut] = Field(
        description="the rate of each kind in force then (kinds without one are absent)"
    )


class RatePage(BaseModel):
    items: list[RateOut] = Field(description="every rate of the partner, newest effective_from first")


class FundingIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "points": 100000,
                    "price": {"amount": "900.00", "currency": "EUR"},
                    "reference": "inv-2026-117",
                }
            ]
        },
    )

    points: Points
    price: Money = Field(
        description="what the partner paid for them, in its currency",
        examples=[{"amount": "900.00", "currency": "EUR"}],
    )
    reference: ShortText = Field(description="the payment's reference", examples=["inv-2026-117"])


class FundingOut(BaseModel):
    entry_id: uuid.UUID = Field(
        description="the funding entry", examples=["0193b1a2-7c1e-7d2a-9a4f-5a1e2f3b4c5d"]
    )
    partner: str = Field(description="the partner's code", examples=["coffee-co"])
    points: int = Field(description="points bought", examples=[100000])
    price: Money = Field(description="what was paid", examples=[{"amount": "900.00", "currency": "EUR"}])
    reference: str = Field(description="the payment's reference", examples=["inv-2026-117"])
    funding_points: int = Field(description="the partner's funding after it", examples=[100000])
    recorded_at: datetime = Field(description="when it was recorded", examples=["2026-11-29T10:00:00Z"])


class PartnerRedemptionIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "member": "cust-10042",
                    "points": 50,
                    "reference": "till-4-rcpt-991",
                    "order_total": {"amount": "12.40", "currency": "EUR"},
                }
            ]
        },
    )

    member: ExternalId = Field(description="the member spending points", examples=["cust-10042"])
    points: Points
    reference: ShortText = Field(description="the partner's own reference (a receipt)", examples=["rcpt-991"])
    order_total: Money | None = Field(
        default=None,
        description="the purchase's total: the rules' max_share_of_order applies to it",
        examples=[{"amount": "12.40", "currency": "EUR"}],
    )


class DonationIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"partner": "red-cross", "points": 1000}]}
    )

    partner: PartnerCode = Field(description="a partner with the donation role", examples=["red-cross"])
    points: Points


class ReversalIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "item returned"}]})

    reason: Text | None = Field(default=None, description="why, for the history", examples=["item returned"])


class PartnerRedemptionOut(BaseModel):
    id: uuid.UUID = Field(
        description="the redemption (its entry's id)", examples=["0193b1a2-7c1e-7d2a-9a4f-5a1e2f3b4c5d"]
    )
    partner: str = Field(description="the partner's code", examples=["coffee-co"])
    member: str = Field(description="the member's external id", examples=["cust-10042"])
    points: int = Field(description="points spent", examples=[500])
    reference: str | None = Field(description="the partner's reference", examples=["rcpt-991"])
    donation: bool = Field(description="a donation to a charity partner", examples=[False])
    status: Literal["completed", "reversed"] = Field(
        description="reversed once it is", examples=["completed"]
    )
    created_at: datetime = Field(description="when the points were spent", examples=["2026-11-29T10:00:00Z"])
    reversed_at: datetime | None = Field(description="when it was reversed", examples=[None])
    reversal_entry_id: uuid.UUID | None = Field(description="the reversal entry", examples=[None])


class PartnerMemberOut(BaseModel):
    member: str = Field(description="the member's external id", examples=["cust-10042"])
    available_points: int = Field(description="points the member can spend now", examples=[1200])
    tier: str | None = Field(description="the member's tier code", examples=["gold"])


class ConversionOutIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"partner": "sky-air", "points": 2000, "partner_member_id": "SKY-88120034"}]
        },
    )

    partner: PartnerCode = Field(description="a partner with the convert_out role", examples=["sky-air"])
    points: Points
    partner_member_id: ShortText = Field(
        description="the member's id in the partner's own program", examples=["SKY-88120034"]
    )


class ConversionInIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"member": "cust-10042", "partner_units": 3000, "reference": "xfer-5512"}]
        },
    )

    member: ExternalId = Field(description="the member receiving points", examples=["cust-10042"])
    partner_units: Points = Field(description="the partner's units converted (an integer)", examples=[3000])
    reference: ShortText = Field(description="the partner's own reference", examples=["xfer-5512"])


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "unknown member"}]})

    reason: Text = Field(description="why the partner refused it", examples=["unknown member"])


class ConfirmIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{}]})


class ConversionRate(BaseModel):
    id: int = Field(description="the rate's id", examples=[7])
    partner_units_per_point: Decimal = Field(description="partner units per point", examples=["0.5"])
    rounding: Rounding = Field(description="how units were rounded", examples=["floor"])


class ConversionOut(BaseModel):
    id: uuid.UUID = Field(description="the conversion", examples=["0193b1a2-7c1e-7d2a-9a4f-5a1e2f3b4c5d"])
    direction: Literal["out", "in"] = Field(
        description="out: points to partner units; in: partner units to points", examples=["out"]
    )
    status: ConversionStatus = Field(
        description="out: pending until the partner confirms (points spent) or rejects it, or it "
        "times out (failed; points released); in: completed",
        examples=["pending"],
    )
    partner: str = Field(description="the partner's code", examples=["sky-air"])
    member: str = Field(description="the member's external id", examples=["cust-10042"])
    points: int = Field(description="points converted", examples=[2000])
    partner_units: int = Field(description="partner units they are worth", examples=[1000])
    rate: ConversionRate = Field(description="the rate applied")
    partner_member_id: str | None = Field(description="the member's id with the partner", examples=["SKY-1"])
    reference: str | None = Field(description="the partner's reference (in)", examples=[None])
    reason: str | None = Field(description="why it was rejected or failed", examples=[None])
    created_at: datetime = Field(description="when it was requested", examples=["2026-11-29T10:00:00Z"])
    closed_at: datetime | None = Field(
        description="when it was confirmed, rejected or failed", examples=[None]
    )


class ConversionPage(BaseModel):
    items: list[ConversionOut] = Field(description="conversions, newest first")
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page", examples=[None])


class SectionTotal(BaseModel):
    points: int = Field(description="points in the section (refunds and reversals negative)", examples=[1200])
    money: SignedMoney = Field(description="their value", examples=[{"amount": "12.00", "currency": "EUR"}])


class Sections(BaseModel):
    earn: SectionTotal = Field(description="points the partner gave out (priced for postpaid partners)")
    earn_refunds: SectionTotal = Field(description="points taken back by refunds of its orders")
    funding: SectionTotal = Field(description="points a prepaid partner bought, at their price")
    redemptions: SectionTotal = Field(description="points members spent with it, at the redeem rate")
    redemption_reversals: SectionTotal = Field(description="redemptions reversed")
    donations: SectionTotal = Field(description="points donated to it, at the redeem rate")
    conversions_out: SectionTotal = Field(description="points converted to its units (confirmed)")
    conversions_in: SectionTotal = Field(description="points credited from its units")


class Totals(BaseModel):
    partner_owes: SignedMoney = Field(description="earn, earn refunds, funding, conversions in")
    program_owes: SignedMoney = Field(description="redemptions, their reversals, donations, conversions out")
    net: SignedMoney = Field(description="partner_owes - program_owes")
    direction: Literal["partner_owes", "program_owes", "none"] = Field(
        description="who pays whom", examples=["partner_owes"]
    )


class Settlement(BaseModel):
    partner: str = Field(description="the partner's code", examples=["coffee-co"])
    from_: datetime = Field(
        alias="from",
        description="start of the period (recorded time, included)",
        examples=["2026-11-01T00:00:00Z"],
    )
    to: datetime = Field(description="end of the period (excluded)", examples=["2026-12-01T00:00:00Z"])
    currency: str = Field(description="the partner's currency", examples=["EUR"])
    sections: Sections = Field(description="points and money by section")
    totals: Totals = Field(description="who owes what")
    lines_count: int = Field(description="lines behind the figures", examples=[42])
    chain_sequence: int = Field(description="the ledger head when it was derived", examples=[1042])

    model_config = ConfigDict(populate_by_name=True)


class SettlementLine(BaseModel):
    entry_id: uuid.UUID = Field(description="the entry", examples=["0193b1a2-7c1e-7d2a-9a4f-5a1e2f3b4c5d"])
    section: Section = Field(description="its section", examples=["earn"])
    kind: str = Field(description="the entry's kind", examples=["earn"])
    recorded_at: datetime = Field(
        description="when the entry was recorded", examples=["2026-11-29T10:00:00Z"]
    )
    points: int = Field(description="points (refunds and reversals negative)", examples=[120])
    price_per_point: Decimal | None = Field(description="the price per point applied", examples=["0.0100"])
    money: SignedMoney = Field(description="the line's money, rounded half up to the currency's minor unit")
    rate_id: int | None = Field(description="the rate it was priced at", examples=[7])
    undoes: uuid.UUID | None = Field(description="the entry a refund or reversal undoes", examples=[None])


class SettlementLinePage(BaseModel):
    items: list[SettlementLine] = Field(description="lines in recorded order")
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page", examples=[None])


class StatementIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"period_end": "2026-11-01T00:00:00+01:00"}]}
    )

    period_end: Instant = Field(
        description="the end of the period to close (excluded); not in the future",
        examples=["2026-12-01T00:00:00+01:00"],
    )


class StatementOut(BaseModel):
    id: uuid.UUID = Field(description="the statement", examples=["0193b1a2-7c1e-7d2a-9a4f-5a1e2f3b4c5d"])
    partner: str = Field(description="the partner's code", examples=["coffee-co"])
    period_start: datetime = Field(description="the period's start", examples=["2026-11-01T00:00:00Z"])
    period_end: datetime = Field(description="the period's end (excluded)", examples=["2026-12-01T00:00:00Z"])
    currency: str = Field(description="the partner's currency", examples=["EUR"])
    sections: Sections = Field(description="points and money by section")
    totals: Totals = Field(description="who owes what")
    lines_count: int = Field(description="lines it closed", examples=[42])
    lines_digest: str = Field(description="SHA-256 (hex) over its lines, in order", examples=["9f2c..."])
    chain_sequence: int = Field(description="the ledger head it was derived from", examples=[1042])
    created_at: datetime = Field(description="when it was closed", examples=["2026-12-01T00:05:00Z"])
    paid_at: datetime | None = Field(
        default=None, description="postpaid: when its payment was recorded", examples=[None]
    )


class PaymentIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reference": "bank-2026-12-0042"}]}
    )

    reference: ShortText = Field(description="the payment's reference", examples=["bank-2026-12-0042"])


class PaymentOut(BaseModel):
    statement_id: uuid.UUID = Field(
        description="the statement paid", examples=["0193b1a2-7c1e-7d2a-9a4f-5a1e2f3b4c5d"]
    )
    partner: str = Field(description="the partner's code", examples=["coffee-co"])
    points: int = Field(
        description="the points it gave out on credit that the statement billed (earn, its refunds, "
        "conversions in), which no longer count against its credit limit",
        examples=[99000],
    )
    reference: str = Field(description="the payment's reference", examples=["bank-2026-12-0042"])
    paid_points: int = Field(description="the partner's paid points after it", examples=[99000])
    recorded_at: datetime = Field(description="when it was recorded", examples=["2026-12-05T10:00:00Z"])


class StatementPage(BaseModel):
    items: list[StatementOut] = Field(description="statements, newest period first")
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page", examples=[None])
