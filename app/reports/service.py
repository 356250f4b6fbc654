"""The operator's reports: liability, breakage, redemption cost, activity and an
overview, read from the ledger by recorded time (docs/reports.md).

Each report reads, in one repeatable-read snapshot, the chain head and its
figures; an instant or period must not lie in the future, so that what a report
says about it never changes afterwards."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from app.context import AppContext
from app.db import PRIMARY, Connection, ReadFrom
from app.errors import ValidationFailed
from app.ledger import chain
from app.outbox import emit
from app.principal import Principal
from app.reports import repository, rollups
from app.reports.categories import ACTIVE_KINDS, PARTICIPATING_KINDS, SOURCES, USES, source
from app.reports.lots import NEVER, Cohort
from app.reports.schemas import (
    ActivityBucket,
    ActivityOut,
    BreakageMonth,
    BreakageOut,
    ExactMoney,
    ExpiryMonth,
    LiabilityOut,
    OverviewOut,
    RedemptionCostOut,
    ValuationOut,
)
from app.rules import RulesDocument

Granularity = Literal["day", "week", "month"]
MAX_PERIOD = timedelta(days=3660)
MAX_BUCKETS = 1000
RATE = Decimal("0.0001")
_EARLIEST = datetime.min.replace(tzinfo=UTC)


def _rate(part: int | Decimal, whole: int | Decimal, places: Decimal = RATE) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(part) / Decimal(whole)).quantize(places, rounding=ROUND_HALF_EVEN)


async def _analytic(connection: Connection) -> None:
    """Settings for a report's transaction (and it alone), measured on 10,000,000
    postings on a loaded machine: no JIT (the queries are estimated dear enough for
    PostgreSQL to compile them, jit_above_cost, and a year-back liability's lot
    query spent 3.1 s of its 3.2 s compiling); a plan for each statement's own
    parameters (from a prepared statement's sixth run PostgreSQL may keep a generic
    plan, and a year of member days by bucket then took 1.5 s against 0.5 s)."""
    await connection.execute("SET LOCAL jit = off")
    await connection.execute("SET LOCAL plan_cache_mode = force_custom_plan")


def check_instant(now: datetime, as_of: datetime | None) -> datetime:
    if as_of is None:
        return now
    if as_of > now:
        raise ValidationFailed.on("query.as_of", "must not be in the future: the ledger knows only the past")
    return as_of.astimezone(UTC)


def check_period(now: datetime, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    if end > now:
        raise ValidationFailed.on(
            "query.to", "must not be in the future: a period's figures are final once it ended"
        )
    if start >= end:
        raise ValidationFailed.on("query.from", "must be before `to`")
    if end - start > MAX_PERIOD:
        raise ValidationFailed.on("query.from", "a period spans at most 10 years")
    return start.astimezone(UTC), end.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class _Rules:
    version: int | None
    document: RulesDocument

    def valuation(self) -> ValuationOut:
        value = self.document.valuation
        if value is None:
            return ValuationOut(
                rules_version=self.version, cost_per_point=None, currency=None, redemption_cost_cap=None
            )
        return ValuationOut(
            rules_version=self.version,
            cost_per_point=value.cost_per_point,
            currency=value.currency,
            redemption_cost_cap=value.redemption_cost_cap,
        )


async def _rules_at(context: AppContext, connection: Connection, program_id: int, at: datetime) -> _Rules:
    """The rules version in force at `at` (the valuation history keeps)."""
    version = await repository.version_at(connection, program_id, at)
    if version is None:
        active, document = await context.rules.active(connection, program_id)
        return _Rules(active, document)
    return _Rules(version, await context.rules.document(connection, program_id, version))


def _money(amount: Decimal | None, valuation: ValuationOut) -> ExactMoney | None:
    if amount is None or valuation.currency is None:
        return None
    return ExactMoney(amount=amount, currency=valuation.currency)


def _month(at: datetime, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%Y-%m")


def _months_from(first: date, count: int) -> list[str]:
    months = []
    year, month = first.year, first.month
    for _ in range(count):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


async def _lot_figures(
    connection: Connection, program_id: int, before: datetime, zone_name: str
) -> dict[tuple[str, str], int]:
    """The lot replay's figures (app/reports/rollups.py LOT_FIGURES) over what was
    recorded before `before`: the rolled days' sums plus what the entries since
    changed; without rollups, the whole replay."""
    zone = ZoneInfo(zone_name)
    rolled = await rollups.rolled_within(connection, program_id, zone_name, None, before)
    if rolled is None:
        book = await rollups.replay(connection, program_id, before, zone)
        return dict(book.changes or {})
    figures = {
        key: int(value)
        for key, value in (
            await rollups.sums(connection, program_id, rolled.last, rollups.LOT_FIGURES)
        ).items()
    }
    # the entries since the rolled days, replayed on their members' lots kept at the
    # end of the last of them (an instant inside an earlier rolled day reads the
    # lots kept at the end of the day before it)
    changes = (await rollups.kept_since(connection, program_id, rolled, before, zone)).changes or {}
    for key, points in changes.items():
        figures[key] = figures.get(key, 0) + points
    return figures


async def _balances(
    connection: Connection, program_id: int, at: datetime, zone_name: str
) -> tuple[dict[str, int], int]:
    """Members' points by account kind, and members holding points, at `at`
    (inclusive): the rolled days' sums plus the ledger since."""
    rolled = await rollups.rolled_within(
        connection, program_id, zone_name, None, at + timedelta(microseconds=1)
    )
    if rolled is None:
        balances = await repository.balances_at(connection, program_id, at, _EARLIEST)
        return balances, await repository.holders_at(connection, program_id, at)
    sums = await rollups.sums(connection, program_id, rolled.last, (rollups.BALANCE, rollups.HOLDERS))
    balances = await repository.balances_at(connection, program_id, at, rolled.end)
    for (figure, key), value in sums.items():
        if figure == rollups.BALANCE:
            balances[key] = balances.get(key, 0) + int(value)
    holders = int(sums.get((rollups.HOLDERS, ""), 0))
    return balances, holders + await repository.holders_change(connection, program_id, rolled.end, at)


async def liability(
    context: AppContext, principal: Principal, as_of: datetime | None, read: ReadFrom = PRIMARY
) -> LiabilityOut:
    at = check_instant(context.clock.now(), as_of)
    program_id = principal.program_id

    async def work(connection: Connection) -> LiabilityOut:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            await _analytic(connection)
            head = await chain.head(connection, program_id)
            rules = await _rules_at(context, connection, program_id, at)
            zone_name = rules.document.timezone
            balances, holders = await _balances(connection, program_id, at, zone_name)
            # `at` is inclusive for balances: replay what was recorded up to it too
            figures = await _lot_figures(connection, program_id, at + timedelta(microseconds=1), zone_name)
        months = _months_from(at.astimezone(ZoneInfo(zone_name)).date(), 12)
        by_month = dict.fromkeys([*months, "later", "never"], 0)
        for (figure, month), points in figures.items():
            if figure != rollups.EXPIRING:
                continue
            key = month if month == NEVER else months[0] if month < months[0] else month
            by_month[key if key in by_month else "later"] += points
        available, pending, held = (balances.get(kind, 0) for kind in ("available", "pending", "held"))
        outstanding = available + pending + held
        valuation = rules.valuation()
        return LiabilityOut(
            chain_sequence=head.sequence,
            as_of=at,
            available=available,
            pending=pending,
            held=held,
            outstanding=outstanding,
            debt=balances.get("debt", 0),
            members_holding=holders,
            expiring=[ExpiryMonth(month=month, points=points) for month, points in by_month.items()],
            valuation=valuation,
            liability=_money(
                None if valuation.cost_per_point is None else outstanding * valuation.cost_per_point,
                valuation,
            ),
        )

    return await context.db.read(work, read)


def _breakage_row(month: str, cohort: Cohort, outstanding: int) -> BreakageMonth:
    issued = cohort.issued - cohort.taken_back
    return BreakageMonth(
        month=month,
        issued=issued,
        redeemed=cohort.redeemed,
        expired=cohort.expired,
        forfeited=cohort.forfeited,
        outstanding=outstanding,
        breakage_rate=_rate(cohort.expired, issued) if issued > 0 else None,
    )


async def breakage(
    context: AppContext, principal: Principal, start: datetime, end: datetime, read: ReadFrom = PRIMARY
) -> BreakageOut:
    start, end = check_period(context.clock.now(), start, end)
    program_id = principal.program_id

    async def work(connection: Connection) -> BreakageOut:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            await _analytic(connection)
            head = await chain.head(connection, program_id)
            rules = await _rules_at(context, connection, program_id, end)
            zone = ZoneInfo(rules.document.timezone)
            figures = await _lot_figures(connection, program_id, end, rules.document.timezone)
        first, last = _month(start, zone), _month(end - timedelta(microseconds=1), zone)
        outstanding: dict[str, int] = defaultdict(int)
        cohorts: dict[str, Cohort] = defaultdict(Cohort)
        for (figure, month), points in figures.items():
            if figure == rollups.REMAINING:
                outstanding[month] += points
            elif figure.startswith(rollups.COHORT):
                name = figure.removeprefix(rollups.COHORT)
                setattr(cohorts[month], name, getattr(cohorts[month], name) + points)
        months = sorted(month for month in cohorts if first <= month <= last)
        total = Cohort()
        rows = []
        for month in months:
            cohort = cohorts[month]
            rows.append(_breakage_row(month, cohort, outstanding[month]))
            for name in ("issued", "taken_back", "redeemed", "expired", "forfeited"):
                setattr(total, name, getattr(total, name) + getattr(cohort, name))
        return BreakageOut(
            chain_sequence=head.sequence,
            from_=start,
            to=end,
            months=rows,
            total=_breakage_row("total", total, sum(outstanding[month] for month in months)),
        )

    return await context.db.read(work, read)


@dataclass(slots=True)
class _Flows:
    """Points that moved in a bucket, by what moved them (all positive but net_change)."""

    issued: dict[str, int]
    redeemed: int = 0
    expired: int = 0
    forfeited: int = 0
    refunded: int = 0
    net_change: int = 0

    @classmethod
    def empty(cls) -> _Flows:
        return cls(issued=dict.fromkeys(SOURCES, 0))

    def add(self, kind: str, partner: bool, points: int) -> None:
        self.net_change += points
        found = source(kind, partner)
        if found is not None:
            self.issued[found] += points
            return
        use = USES.get(kind)
        if use is not None:
            setattr(self, use, getattr(self, use) - points)


def _bucket(day: date, unit: str) -> datetime:
    bucket = rollups.bucket_of(day, unit)
    assert bucket is not None
    return bucket


async def _flows(
    connection: Connection, program_id: int, start: datetime, end: datetime, unit: str, zone: str
) -> dict[datetime, _Flows]:
    flows: dict[datetime, _Flows] = defaultdict(_Flows.empty)
    rolled = await rollups.rolled_within(connection, program_id, zone, start, end)
    for piece_start, piece_end in rollups.live_pieces(start, end, rolled):
        for row in await repository.entry_nets(connection, program_id, piece_start, piece_end, unit, zone):
            flows[row["bucket"]].add(row["kind"], bool(row["partner"]), int(row["points"]))
    if rolled is not None:
        for day, figure, key, value in await rollups.daily(
            connection, program_id, rolled, (rollups.FLOW, rollups.PARTNER_FLOW)
        ):
            flows[_bucket(day, unit)].add(key, figure == rollups.PARTNER_FLOW, int(value))
    return flows


@dataclass(slots=True)
class _Revenue:
    orders: dict[datetime, int]
    revenue: dict[datetime, dict[str, Decimal]]
    orders_by_currency: dict[str, int]


async def _revenue(
    connection: Connection, program_id: int, start: datetime, end: datetime, unit: str, zone: str
) -> _Revenue:
    found = _Revenue(defaultdict(int), defaultdict(lambda: defaultdict(Decimal)), defaultdict(int))
    rolled = await rollups.rolled_within(connection, program_id, zone, start, end)
    for piece_start, piece_end in rollups.live_pieces(start, end, rolled):
        piece = (connection, program_id, piece_start, piece_end, unit, zone)
        for row in await repository.orders(*piece):
            found.orders[row["bucket"]] += int(row["orders"])
            found.orders_by_currency[row["currency"]] += int(row["orders"])
            found.revenue[row["bucket"]][row["currency"]] += repository.decimal(row["total"])
        for row in await repository.refunds(*piece):
            found.revenue[row["bucket"]][row["currency"]] -= repository.decimal(row["amount"])
    if rolled is not None:
        for day, figure, currency, value in await rollups.daily(
            connection, program_id, rolled, (rollups.ORDERS, rollups.REVENUE, rollups.REFUNDED)
        ):
            bucket = _bucket(day, unit)
            if figure == rollups.ORDERS:
                found.orders[bucket] += int(value)
                found.orders_by_currency[currency] += int(value)
            elif figure == rollups.REVENUE:
                found.revenue[bucket][currency] += value
            else:
                found.revenue[bucket][currency] -= value
    return found


async def redemption_cost(
    context: AppContext, principal: Principal, start: datetime, end: datetime, read: ReadFrom = PRIMARY
) -> RedemptionCostOut:
    start, end = check_period(context.clock.now(), start, end)
    program_id = principal.program_id

    async def work(connection: Connection) -> RedemptionCostOut:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            await _analytic(connection)
            head = await chain.head(connection, program_id)
            rules = await _rules_at(context, connection, program_id, end)
            zone = rules.document.timezone
            flows = await _flows(connection, program_id, start, end, "year", zone)
            revenue_by_bucket = (await _revenue(connection, program_id, start, end, "year", zone)).revenue
        valuation = rules.valuation()
        redeemed = sum(flow.redeemed for flow in flows.values())
        revenue = (
            None
            if valuation.currency is None
            else sum(
                (bucket.get(valuation.currency, Decimal(0)) for bucket in revenue_by_bucket.values()),
                Decimal(0),
            )
        )
        cost = None if valuation.cost_per_point is None else redeemed * valuation.cost_per_point
        cap = valuation.redemption_cost_cap
        headroom = None if cap is None or cost is None or revenue is None else cap * revenue - cost
        return RedemptionCostOut(
            chain_sequence=head.sequence,
            from_=start,
            to=end,
            points_redeemed=redeemed,
            valuation=valuation,
            cost=_money(cost, valuation),
            revenue=_money(revenue, valuation),
            ratio=None if cost is None or not revenue else _rate(cost, revenue, Decimal("0.000001")),
            cap=cap,
            headroom=_money(headroom, valuation),
            cap_exceeded=headroom is not None and headroom < 0,
        )

    report = await context.db.read(work, read)
    if report.cap_exceeded:
        await _cap_exceeded(context, program_id, report)
    return report


async def _cap_exceeded(context: AppContext, program_id: int, report: RedemptionCostOut) -> None:
    """One `cost.cap_exceeded` per program and period, written by the first report
    that finds the period over its cap: the period has ended (no report reads the
    future), so its figures are final and the event stays true. A lock on the
    period keeps two reports at once from both writing it."""
    data = report.model_dump(
        mode="json",
        by_alias=True,
        include={"from_", "to", "points_redeemed", "cost", "revenue", "ratio", "cap", "headroom"},
    )
    data["chain_sequence"] = report.chain_sequence
    start, end = data["from"], data["to"]
    now = context.clock.now()

    async def work(connection: Connection) -> None:
        async with connection.transaction():
            await connection.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, $2))",
                f"cost.cap_exceeded:{start}:{end}",
                program_id,
            )
            if await repository.cap_event_written(connection, program_id, start, end):
                return
            await emit(connection, program_id, "cost.cap_exceeded", data, occurred_at=report.to, now=now)

    await context.db.call(work)


def _buckets(start: datetime, end: datetime, granularity: Granularity) -> int:
    days = (end - start).days + 1
    return days if granularity == "day" else days // 7 + 2 if granularity == "week" else days // 28 + 2


async def activity(
    context: AppContext,
    principal: Principal,
    start: datetime,
    end: datetime,
    granularity: Granularity,
    read: ReadFrom = PRIMARY,
) -> ActivityOut:
    start, end = check_period(context.clock.now(), start, end)
    if _buckets(start, end, granularity) > MAX_BUCKETS:
        raise ValidationFailed.on(
            "query.granularity", f"the period has more than {MAX_BUCKETS} {granularity}s"
        )
    program_id = principal.program_id

    async def work(connection: Connection) -> ActivityOut:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            await _analytic(connection)
            head = await chain.head(connection, program_id)
            zone = (await _rules_at(context, connection, program_id, end)).document.timezone
            args = (connection, program_id, start, end, granularity, zone)
            flows = await _flows(*args)
            found = await _revenue(*args)
            orders, revenue = found.orders, found.revenue
            new = {row["bucket"]: int(row["members"]) for row in await repository.new_members(*args)}
            rolled = await rollups.rolled_within(connection, program_id, zone, start, end)
            if rolled is None:
                active = {
                    row["bucket"]: int(row["members"])
                    for row in await repository.active_members(*args, list(ACTIVE_KINDS))
                }
            else:
                active = {
                    bucket: members
                    for bucket, members in (
                        await rollups.members_with(*args, rollups.ACTIVE_FACT, rolled)
                    ).items()
                    if bucket is not None
                }
        buckets = []
        for bucket in sorted(set(flows) | set(orders) | set(revenue) | set(new) | set(active)):
            flow = flows.get(bucket) or _Flows.empty()
            buckets.append(
                ActivityBucket(
                    start=bucket.date(),
                    orders_points=flow.issued["orders"],
                    partner_orders_points=flow.issued["partner_orders"],
                    conversions_points=flow.issued["conversions"],
                    events_points=flow.issued["events"],
                    awards_points=flow.issued["awards"],
                    imports_points=flow.issued["imports"],
                    redeemed=flow.redeemed,
                    expired=flow.expired,
                    forfeited=flow.forfeited,
                    refunded=flow.refunded,
                    net_change=flow.net_change,
                    orders=orders.get(bucket, 0),
                    revenue=dict(sorted(revenue.get(bucket, {}).items())),
                    new_members=new.get(bucket, 0),
                    active_members=active.get(bucket, 0),
                )
            )
        return ActivityOut(
            chain_sequence=head.sequence,
            from_=start,
            to=end,
            granularity=granularity,
            timezone=zone,
            buckets=buckets,
        )

    return await context.db.read(work, read)


async def overview(
    context: AppContext, principal: Principal, start: datetime, end: datetime, read: ReadFrom = PRIMARY
) -> OverviewOut:
    start, end = check_period(context.clock.now(), start, end)
    program_id = principal.program_id

    async def work(connection: Connection) -> OverviewOut:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            await _analytic(connection)
            head = await chain.head(connection, program_id)
            zone = (await _rules_at(context, connection, program_id, end)).document.timezone
            args = (connection, program_id, start, end, "year", zone)
            flows = list((await _flows(*args)).values())
            found = await _revenue(*args)
            orders_by, revenue_by, by_currency = found.orders, found.revenue, found.orders_by_currency
            rolled = await rollups.rolled_within(connection, program_id, zone, start, end)
            if rolled is None:
                participating_rows = await repository.active_members_total(
                    connection, program_id, start, end, list(PARTICIPATING_KINDS)
                )
                buyers, repeat = await repository.repeat_buyers(connection, program_id, start, end)
            else:
                found_members = await rollups.members_with(
                    connection, program_id, start, end, None, zone, rollups.PARTICIPATING_FACT, rolled
                )
                participating_rows = found_members[None]
                buyers, repeat = await rollups.buyers(connection, program_id, start, end, zone, rolled)
            enrolled = await repository.enrolled_before(connection, program_id, end)
        issued = sum(sum(flow.issued.values()) for flow in flows)
        from_orders = sum(flow.issued["orders"] + flow.issued["partner_orders"] for flow in flows)
        redeemed = sum(flow.redeemed for flow in flows)
        orders = sum(orders_by.values())
        revenue: dict[str, Decimal] = defaultdict(Decimal)
        for bucket in revenue_by.values():
            for currency, amount in bucket.items():
                revenue[currency] += amount
        cents = Decimal("0.01")
        return OverviewOut(
            chain_sequence=head.sequence,
            from_=start,
            to=end,
            members_enrolled=enrolled,
            members_participating=participating_rows,
            participation_rate=_rate(participating_rows, enrolled),
            buyers=buyers,
            repeat_buyers=repeat,
            repeat_purchase_rate=_rate(repeat, buyers),
            orders=orders,
            average_order_value={
                currency: (amount / by_currency[currency]).quantize(cents, rounding=ROUND_HALF_EVEN)
                for currency, amount in sorted(revenue.items())
                if by_currency[currency]
            },
            points_issued=issued,
            points_per_order=_rate(from_orders, orders, cents),
            points_redeemed=redeemed,
            redemption_rate=_rate(redeemed, issued),
        )

    return await context.db.read(work, read)
