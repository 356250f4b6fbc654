"""The rules document: one JSON document per program and version (RULES.md).

Validated on upload; every section but `earn.base` may be left out and takes its
default. Money, rates and factors are decimal strings, never JSON numbers: a float
cannot hold 0.1 exactly, and a rule that pays 0.30000000000000004 points is a bug
that nobody can see in the document.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

MAX_POINTS = 2**63 - 1
MAX_AMOUNT = Decimal("1000000000000")  # 10^12 currency units
AMOUNT_PLACES = 4

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _date_text(value: Any) -> Any:
    """Dates are ISO 8601 strings ("2027-03-01"), never numbers read as Unix time."""
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise ValueError("must be a date written YYYY-MM-DD")
    return value


# A calendar date, as a JSON string only.
CalendarDate = Annotated[date, BeforeValidator(_date_text)]
# true or false, as JSON booleans only (not 0, 1 or "yes").
StrictBool = Annotated[bool, Field(strict=True)]


def _decimal_string(value: Any) -> Decimal:
    # JSON numbers are refused on purpose (see the module docstring).
    if isinstance(value, Decimal):
        return value
    if not isinstance(value, str):
        raise ValueError('must be a decimal string such as "12.50"')
    try:
        parsed = Decimal(value.strip())
    except InvalidOperation:
        raise ValueError('must be a decimal string such as "12.50"') from None
    if not parsed.is_finite():
        raise ValueError("must be a finite decimal")
    return parsed


def _places(limit: int) -> Any:
    def check(value: Decimal) -> Decimal:
        exponent = value.as_tuple().exponent
        assert isinstance(exponent, int)
        if -exponent > limit:
            raise ValueError(f"must have at most {limit} decimal places")
        return value

    return check


def _positive(value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError("must be greater than 0")
    return value


def _not_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _at_most(limit: Decimal) -> Any:
    def check(value: Decimal) -> Decimal:
        if value > limit:
            raise ValueError(f"must be at most {limit}")
        return value

    return check


_as_string = PlainSerializer(lambda value: str(value), return_type=str, when_used="always")
_decimal_schema = {"type": "string", "pattern": r"^\d+(\.\d+)?$"}

# A money amount in the program's currency: "12.50".
Amount = Annotated[
    Decimal,
    BeforeValidator(_decimal_string),
    AfterValidator(_not_negative),
    AfterValidator(_places(AMOUNT_PLACES)),
    AfterValidator(_at_most(MAX_AMOUNT)),
    _as_string,
    Field(json_schema_extra=_decimal_schema, examples=["500.00"]),
]
PositiveAmount = Annotated[Amount, AfterValidator(_positive)]
# A multiplier factor: "2", "1.5".
Factor = Annotated[
    Decimal,
    BeforeValidator(_decimal_string),
    AfterValidator(_positive),
    AfterValidator(_places(4)),
    AfterValidator(_at_most(Decimal(100))),
    _as_string,
    Field(json_schema_extra=_decimal_schema, examples=["2"]),
]
# A share of an order: "0.5".
Share = Annotated[
    Decimal,
    BeforeValidator(_decimal_string),
    AfterValidator(_positive),
    AfterValidator(_places(4)),
    AfterValidator(_at_most(Decimal(1))),
    _as_string,
    Field(json_schema_extra=_decimal_schema, examples=["0.5"]),
]

Points = Annotated[int, Field(strict=True, ge=1, le=MAX_POINTS, examples=[100])]
SmallCount = Annotated[int, Field(strict=True, ge=1, le=1_000_000, examples=[1])]
Code = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$", examples=["gold"])
]
Label = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _unique(values: list[Any], what: str) -> list[Any]:
    if len(set(values)) != len(values):
        raise ValueError(f"{what} must not repeat")
    return values


class When(_Section):
    """Conditions of a multiplier or bonus; all must hold (all-of). Dates, weekdays
    and hours are read in the program's timezone at the order's `paid_at`."""

    day_of_month: list[Annotated[int, Field(strict=True, ge=1, le=31)]] | None = Field(
        default=None, min_length=1, description="days of the month, 1-31", examples=[[8]]
    )
    weekday: list[Annotated[int, Field(strict=True, ge=1, le=7)]] | None = Field(
        default=None, min_length=1, description="ISO weekdays, 1 = Monday ... 7 = Sunday", examples=[[6, 7]]
    )
    between: tuple[CalendarDate, CalendarDate] | None = Field(
        default=None,
        description="first and last local date, both included",
        examples=[["2027-03-01", "2027-03-31"]],
    )
    hour_between: (
        tuple[
            Annotated[int, Field(strict=True, ge=0, le=23)], Annotated[int, Field(strict=True, ge=0, le=24)]
        ]
        | None
    ) = Field(
        default=None,
        description="local hours [from, to): 18-22 is 18:00 to 21:59; from > to wraps past midnight",
        examples=[[18, 22]],
    )
    order_total_gte: Amount | None = Field(
        default=None, description="the order total is at least this amount", examples=["500.00"]
    )
    birthday_month: StrictBool | None = Field(
        default=None, description="true: the order is in the member's birthday month", examples=[True]
    )
    tier: list[Code] | None = Field(
        default=None, min_length=1, description="the member holds one of these tiers", examples=[["gold"]]
    )
    segment: list[Literal["core", "potential", "regular", "basic", "lapsed"]] | None = Field(
        default=None,
        min_length=1,
        description="the member's RFM segment, in the latest segment snapshot taken before the "
        "order's paid_at, is one of these (no snapshot yet: no segment, the condition fails)",
        examples=[["core"]],
    )
    channel: list[Code] | None = Field(
        default=None,
        min_length=1,
        description="the order came through one of these channels",
        examples=[["app"]],
    )
    category: list[Label] | None = Field(
        default=None,
        min_length=1,
        description="lines in these categories; a multiplier applies to the matching lines only, "
        "a bonus needs one matching line",
        examples=[["shoes"]],
    )
    sku: list[Label] | None = Field(
        default=None,
        min_length=1,
        description="lines with these SKUs (like `category`)",
        examples=[["SKU-123"]],
    )
    first_order: StrictBool | None = Field(
        default=None, description="true: the member's first order in the program", examples=[True]
    )

    @field_validator("between")
    @classmethod
    def _ordered(cls, value: tuple[date, date] | None) -> tuple[date, date] | None:
        if value is not None and value[0] > value[1]:
            raise ValueError("the first date must not be after the last")
        return value

    @field_validator("hour_between")
    @classmethod
    def _hours(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and value[0] == value[1]:
            raise ValueError("from and to must differ")
        return value

    @property
    def on_lines(self) -> bool:
        """True when the clause picks order lines (category or SKU)."""
        return self.category is not None or self.sku is not None


class Base(_Section):
    points: Points = Field(description="points given per `per` units of currency", examples=[1])
    per: PositiveAmount = Field(description="units of currency that earn `points`", examples=["1.00"])
    rounding: Literal["floor", "half_up", "ceil"] = Field(
        default="floor",
        description="how the order's points are rounded, once, after multipliers",
        examples=["floor"],
    )


class Budget(_Section):
    """A campaign budget on a multiplier or bonus: the most points the rule may add
    over all orders (and to one member). An order the budget can't cover earns
    without the rule (`budget exhausted` in its explanation). The budget is named
    by where its rule sits (`earn.multipliers.<id>`): a later version with a rule of
    the same id and section spends the same budget, under its own limits."""

    points: Points = Field(description="most points the rule adds over all orders", examples=[100000])
    per_member: Points | None = Field(
        default=None, description="most points the rule adds to one member's orders", examples=[500]
    )

    @model_validator(mode="after")
    def _member_within(self) -> Budget:
        if self.per_member is not None and self.per_member > self.points:
            raise ValueError("per_member must not exceed points")
        return self


class Multiplier(_Section):
    id: Code = Field(description="rule id, shown in explanations", examples=["member-day"])
    factor: Factor = Field(description='decimal string, e.g. "2" or "1.5"')
    when: When = Field(default_factory=When, description="conditions, all of which must hold")
    budget: Budget | None = Field(
        default=None, description="a campaign budget for the points this multiplier adds"
    )


class Bonus(_Section):
    id: Code = Field(description="rule id, shown in explanations", examples=["first-order"])
    points: Points = Field(description="fixed points added when the conditions hold")
    when: When = Field(default_factory=When, description="conditions, all of which must hold")
    budget: Budget | None = Field(default=None, description="a campaign budget for this bonus's points")


class Caps(_Section):
    per_order: Points | None = Field(default=None, description="most points one order earns", examples=[5000])
    per_member_per_day: Points | None = Field(
        default=None,
        description="most points a member earns from orders paid on one local day",
        examples=[10000],
    )


class Earn(_Section):
    base: Base = Field(description="the base rate")
    exclude_categories: list[Label] = Field(
        default_factory=list, description="line categories that earn nothing", examples=[["gift_card"]]
    )
    multipliers: list[Multiplier] = Field(default_factory=list, description="applied in this order")
    stacking: Literal["multiply", "add", "best"] = Field(
        default="multiply",
        description="multiply: factors multiply; add: their excess over 1 adds up (2x and 1.5x give "
        "2.5x); best: only the largest applies",
        examples=["multiply"],
    )
    bonuses: list[Bonus] = Field(default_factory=list, description="fixed points added to an order")
    caps: Caps = Field(default_factory=Caps, description="limits on what orders earn")
    pending_days: int = Field(
        default=0,
        strict=True,
        ge=0,
        le=366,
        description="days an order's points stay pending after `paid_at` (the return window)",
        examples=[14],
    )

    @field_validator("multipliers")
    @classmethod
    def _multiplier_ids(cls, value: list[Multiplier]) -> list[Multiplier]:
        _unique([rule.id for rule in value], "multiplier ids")
        return value

    @field_validator("bonuses")
    @classmethod
    def _bonus_ids(cls, value: list[Bonus]) -> list[Bonus]:
        _unique([rule.id for rule in value], "bonus ids")
        return value


class Streak(_Section):
    """A bonus for events on consecutive local days ("check in 7 days in a row")."""

    days: int = Field(
        strict=True,
        ge=2,
        le=366,
        description="consecutive local days that complete a streak; the count then starts again",
        examples=[7],
    )
    points: Points = Field(description="bonus points paid once per completed streak", examples=[50])


class EventRule(_Section):
    """Points for a non-order activity. `referral` takes `referrer` and `referee`
    (both sides earn) instead of `points`."""

    points: Points | None = Field(default=None, description="points for the event", examples=[10])
    max_per_day: SmallCount | None = Field(
        default=None, description="most events of this type that earn per member and local day", examples=[1]
    )
    referrer: int | None = Field(
        default=None,
        strict=True,
        ge=0,
        le=MAX_POINTS,
        description="referral: points for the referrer",
        examples=[None],
    )
    referee: int | None = Field(
        default=None,
        strict=True,
        ge=0,
        le=MAX_POINTS,
        description="referral: points for the new member",
        examples=[None],
    )
    streak: Streak | None = Field(
        default=None,
        description="a bonus when the member has the event on `days` consecutive local days "
        "(not for referral); several the same day count once, a missed day starts again",
        examples=[None],
    )


EventType = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
PartnerCode = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")]


class Redeem(_Section):
    min_points: Points | None = Field(default=None, description="smallest redemption", examples=[100])
    increment: Points | None = Field(
        default=None, description="redemptions in multiples of this", examples=[10]
    )
    point_value: PositiveAmount | None = Field(
        default=None, description="value of one point in the program's currency", examples=["0.01"]
    )
    max_share_of_order: Share | None = Field(
        default=None, description="largest share of an order that points may pay", examples=["0.5"]
    )

    @model_validator(mode="after")
    def _share_has_a_value(self) -> Redeem:
        # A share of an order is money; without a point value there is no way to know
        # how many points that money is, and the limit would silently never apply.
        if self.max_share_of_order is not None and self.point_value is None:
            raise ValueError("max_share_of_order needs point_value")
        return self


class Expiry(_Section):
    policy: Literal["none", "rolling", "end_of_period", "inactivity"] = Field(
        default="none", description="how earned points expire", examples=["rolling"]
    )
    months: int | None = Field(
        default=None,
        strict=True,
        ge=1,
        le=1200,
        description="rolling: months after earning; end_of_period: months before rounding up; "
        "inactivity: months without an order",
        examples=[12],
    )
    round_to: Literal["month", "quarter", "year"] | None = Field(
        default=None,
        description="end_of_period: round the expiry up to the end of this period",
        examples=[None],
    )
    warn_days: int = Field(default=30, strict=True, ge=0, le=366, description="warn this long before")
    warn_days_before: list[Annotated[int, Field(strict=True, ge=1, le=366)]] = Field(
        default_factory=list,
        max_length=5,
        description="the `notify-expiring` job emits a points.expiring_soon event once per member, "
        "expiry date and threshold when fewer than this many days are left (the tightest threshold "
        "reached); empty: no such events",
        examples=[[30, 7]],
    )

    @model_validator(mode="after")
    def _complete(self) -> Expiry:
        if self.policy != "none" and self.months is None:
            raise ValueError(f"policy {self.policy} needs months")
        if self.policy == "end_of_period" and self.round_to is None:
            raise ValueError("policy end_of_period needs round_to")
        return self


class Thresholds(_Section):
    orders: SmallCount | None = Field(default=None, description="qualifying orders", examples=[5])
    spend: PositiveAmount | None = Field(default=None, description="qualifying spend", examples=["200.00"])
    points: Points | None = Field(default=None, description="qualifying points earned", examples=[None])
    referrals: SmallCount | None = Field(
        default=None,
        description="members enrolled with this member as `referred_by` whose first order (not fully "
        "refunded) falls in the window",
        examples=[None],
    )

    @model_validator(mode="after")
    def _something(self) -> Thresholds:
        if self.orders is None and self.spend is None and self.points is None and self.referrals is None:
            raise ValueError("set at least one of orders, spend, points, referrals")
        return self


class Tier(_Section):
    code: Code = Field(description="tier code", examples=["gold"])
    name: Label = Field(description="tier name", examples=["Gold"])
    rank: int = Field(strict=True, ge=1, le=1000, description="higher is better", examples=[2])
    qualify: Thresholds = Field(description="reach the tier when all of these are met in the window")
    retain: Thresholds | None = Field(default=None, description="keep the tier at the end of a term")


class TierPolicy(_Section):
    window: Literal["rolling_12_months", "calendar_year", "lifetime"] = Field(
        default="rolling_12_months", description="activity window for qualification"
    )
    term_months: int = Field(default=12, strict=True, ge=1, le=120, description="how long a tier is held")
    downgrade: Literal["one_down", "to_qualified"] = Field(
        default="one_down", description="where a miss drops to"
    )
    grace_days: int = Field(default=0, strict=True, ge=0, le=366, description="days before a miss drops")
    keep_with_points: dict[Code, Points] = Field(
        default_factory=dict, description="points a member may spend to renew a tier's term"
    )


class Refunds(_Section):
    shortfall: Literal["record", "debt"] = Field(
        default="record",
        description="when a refund takes back points the member has already spent: record the "
        "shortfall (take what is there), or put the member in debt that later earnings repay",
        examples=["record"],
    )


class Limits(_Section):
    """Protections on what one request, API key or member may move (issue 16: limits
    and four-eyes approvals). Every limit is optional; unset, nothing is counted.
    Days are local days in the program's `timezone`. Limits don't change what orders
    earn (they cap awards, redemptions and transfers), so the what-if simulation of
    orders is the same with or without them."""

    award_max_points: Points | None = Field(
        default=None, description="most points one award may give", examples=[10000]
    )
    award_points_per_key_per_day: Points | None = Field(
        default=None,
        description="most points one API key may award per local day (an approved award counts "
        "against the key that asked for it, on the day it is approved)",
        examples=[50000],
    )
    redeem_points_per_member_per_day: Points | None = Field(
        default=None,
        description="most points a member may spend per local day: redemptions and holds (a hold "
        "counts when it is placed; its capture does not count again)",
        examples=[20000],
    )
    transfer_points_per_member_per_day: Points | None = Field(
        default=None,
        description="most points a member may transfer out per local day",
        examples=[5000],
    )
    transfers_per_member_per_day: SmallCount | None = Field(
        default=None, description="most transfers out a member may make per local day", examples=[3]
    )
    award_approval_above: int | None = Field(
        default=None,
        strict=True,
        ge=0,
        le=MAX_POINTS,
        description="an award of more points than this waits for a second admin key's approval "
        "(202 pending_approval) instead of posting",
        examples=[1000],
    )

    @property
    def configured(self) -> bool:
        """True when some limit or the approval threshold is set."""
        return any(value is not None for value in self.__dict__.values())

    @property
    def on_awards(self) -> bool:
        return (
            self.award_max_points is not None
            or self.award_points_per_key_per_day is not None
            or self.award_approval_above is not None
        )

    @property
    def on_transfers(self) -> bool:
        return (
            self.transfer_points_per_member_per_day is not None
            or self.transfers_per_member_per_day is not None
        )


# What one point costs the program: up to 6 places (a point is often worth a
# fraction of a cent), exact.
PointCost = Annotated[
    Decimal,
    BeforeValidator(_decimal_string),
    AfterValidator(_not_negative),
    AfterValidator(_places(6)),
    AfterValidator(_at_most(Decimal(1000))),
    _as_string,
    Field(json_schema_extra=_decimal_schema, examples=["0.005"]),
]


class Valuation(_Section):
    """What points are worth to finance: the reports (app/reports) price the
    outstanding points and the redemptions with it, at the version in force."""

    cost_per_point: PointCost = Field(
        description="what one point costs the program, in `currency`", examples=["0.005"]
    )
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code of the cost", examples=["EUR"])
    redemption_cost_cap: Share | None = Field(
        default=None,
        description="the most the cost of points redeemed may be, as a share of revenue "
        "(0.03: 3%); unset: no cap",
        examples=["0.03"],
    )


def _known_timezone(value: str) -> str:
    if value not in _TIMEZONES:
        raise ValueError("must be an IANA timezone such as Europe/Berlin")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("must be an IANA timezone such as Europe/Berlin") from None
    return value


_TIMEZONES = frozenset(available_timezones())


class RulesDocument(_Section):
    """A program's earning, event, redemption, expiry and tier rules (one version)."""

    timezone: Annotated[str, AfterValidator(_known_timezone)] = Field(
        default="UTC",
        description="IANA timezone the rules read dates and hours in",
        examples=["Asia/Shanghai"],
    )
    currency: str | None = Field(
        default=None,
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 code orders must be in; null accepts any",
        examples=["CNY"],
    )
    earn: Earn = Field(description="how orders earn points")
    events: dict[EventType, EventRule] = Field(
        default_factory=dict, description="points for non-order activities, by event type"
    )
    partner_earn: dict[PartnerCode, Earn] = Field(
        default_factory=dict,
        description="how partners' co-branded orders earn, by partner code; the same shape and "
        "meaning as `earn`. A partner without a section earns nothing.",
        examples=[{"coffee-co": {"base": {"points": 2, "per": "1", "rounding": "floor"}}}],
    )
    redeem: Redeem = Field(default_factory=Redeem, description="limits on redemptions")
    expiry: Expiry = Field(default_factory=Expiry, description="when earned points expire")
    tiers: list[Tier] = Field(default_factory=list, description="tiers, by rank")
    tier_policy: TierPolicy = Field(default_factory=TierPolicy, description="how tiers are reached and kept")
    refunds: Refunds = Field(default_factory=Refunds, description="what refunds do when points are spent")
    limits: Limits = Field(
        default_factory=Limits,
        description="caps on awards, redemptions and transfers, and the four-eyes threshold for awards",
    )
    valuation: Valuation | None = Field(
        default=None,
        description="what a point costs and the cap on redemption cost; unset: reports give "
        "points only, no money",
        examples=[{"cost_per_point": "0.005", "currency": "EUR", "redemption_cost_cap": "0.03"}],
    )

    @field_validator("events")
    @classmethod
    def _event_shapes(cls, value: dict[str, EventRule]) -> dict[str, EventRule]:
        for name, rule in value.items():
            if name == "referral":
                if rule.points is not None or rule.referrer is None or rule.referee is None:
                    raise ValueError("referral takes referrer and referee points, not points")
                if rule.streak is not None:
                    raise ValueError("referral earns once: it takes no streak")
                if rule.referrer + rule.referee == 0:
                    raise ValueError("referral must give someone points")
            elif rule.points is None or rule.referrer is not None or rule.referee is not None:
                raise ValueError(f"{name} takes points (referrer and referee are for referral)")
        return value

    @model_validator(mode="after")
    def _tiers_consistent(self) -> RulesDocument:
        _unique([tier.code for tier in self.tiers], "tier codes")
        _unique([tier.rank for tier in self.tiers], "tier ranks")
        unknown = set(self.tier_policy.keep_with_points) - {tier.code for tier in self.tiers}
        if unknown:
            raise ValueError(
                f"tier_policy.keep_with_points names unknown tiers: {', '.join(sorted(unknown))}"
            )
        return self


def uses_referrals(rules: RulesDocument) -> bool:
    """True when a tier qualifies or retains on referrals: only then is the activity
    read with them (it costs a look at the member's referees' orders)."""
    return any(
        tier.qualify.referrals is not None or (tier.retain is not None and tier.retain.referrals is not None)
        for tier in rules.tiers
    )


def uses_segments(rules: RulesDocument) -> bool:
    """True when a multiplier or bonus, the program's or a partner's, names
    `when: {segment}`: only then does an order read the member's segment."""
    sections = (rules.earn, *rules.partner_earn.values())
    whens = [rule.when for earn in sections for rule in earn.multipliers]
    whens += [rule.when for earn in sections for rule in earn.bonuses]
    return any(when.segment is not None for when in whens)


def default_document() -> RulesDocument:
    """What a new program starts with: 1 point per 1 unit, floor, nothing pending, no expiry."""
    return RulesDocument.model_validate({"earn": {"base": {"points": 1, "per": "1", "rounding": "floor"}}})
