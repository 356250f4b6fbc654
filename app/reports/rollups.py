"""Daily rollups of the reports (docs/reports.md, Speed).

A program's local day (its rules timezone, as the activity buckets) is rolled up
once, by the `rollup-reports` job, into report_day_figure: what each report sums
of that day, by figure and key. Rolled days never change; a report sums the rolled
whole days of its period (or before its instant) and reads the ledger only for
the rest, so its figures are the same with or without rollups.

Figures (each the day's change, so any run of days sums):
- `flow` / `flow.partner` by entry kind (a reversal: the reversed kind): the net
  change of members' available, pending and held points (ENTRY_NETS), without /
  with a partner funding it;
- `balance` by account kind: the change of members' points on that kind;
- `orders`, `revenue`, `refunded` by currency: orders recorded, their total, and
  the refunds given back;
- `cohort.issued`, `cohort.taken_back`, `cohort.redeemed`, `cohort.expired`,
  `cohort.forfeited` by cohort (earn month), `remaining` by cohort and `expiring`
  by expiry month (`never`): the lot replay's changes (app/reports/lots.py), each
  entry's changes counted on the day it was recorded;
- `holders`: members whose available, pending and held points went above zero
  that day less those that went back to zero or below.

Beside the days, in the same transaction: each member's lots as the replay holds
them at the end of each rolled day, as versions (report_lot, report_lot_use: a
lot's or a use's new state on the day it changed), so that the next run and a
report replay only the entries recorded since the end of the day before theirs;
and each member's days with activity, orders or participation
(report_member_day), linked to their day before, for the distinct member counts.

When is a day final? recorded_at is the application's clock read when the request
began (`context.clock.now()`, passed to ledger_post() and its kin as
p_recorded_at), not the database's commit time: a request may read the clock,
wait for a connection or a lock, and commit later with that earlier instant. A day
is rolled only when it ended before `now - MARGIN - (age of the oldest running
transaction in the database)`: a transaction still running began at most that
long ago, and MARGIN covers what may pass between a request reading the clock and
its transaction beginning (and clock skew between hosts). A request slower than
MARGIN before it even begins its transaction could still land in a rolled day;
`verify` would then name the day (the rollup check)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import asyncpg

from app.db import Connection, Database
from app.partners import settlement as partner_settlement
from app.reports import repository
from app.reports.categories import ACTIVE_KINDS, PARTICIPATING_KINDS
from app.reports.lots import Changed, CohortBook, LotVersion, UseVersion, comparable, taking

MARGIN = timedelta(hours=1)
LOCK = "report-rollup"
# how long one statement of the job may take: the first run of a large program
# reads its whole history (batch work, not a request a caller waits on; the
# service's statement timeout is for those)
JOB_TIMEOUT_MS = 60 * 60 * 1000
FLOW, PARTNER_FLOW, BALANCE = "flow", "flow.partner", "balance"
ORDERS, REVENUE, REFUNDED = "orders", "revenue", "refunded"
REMAINING, EXPIRING, HOLDERS = "remaining", "expiring", "holders"
ACTIVE_FACT, PARTICIPATING_FACT, ORDER_FACT = "active", "participating", "orders"
COHORT = "cohort."
LOT_FIGURES = (
    "cohort.issued",
    "cohort.taken_back",
    "cohort.redeemed",
    "cohort.expired",
    "cohort.forfeited",
    REMAINING,
    EXPIRING,
)

Figures = dict[tuple[date, str, str], Decimal]
Sums = dict[tuple[str, str], Decimal]


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """The instant a local day begins (UTC)."""
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def local_day(at: datetime, zone: ZoneInfo) -> date:
    return at.astimezone(zone).date()


def month_of(zone: ZoneInfo) -> Callable[[datetime], str]:
    return lambda at: at.astimezone(zone).strftime("%Y-%m")


@dataclass(frozen=True, slots=True)
class Rolled:
    """The whole rolled days a report reads from the rollups: `first` .. `last`,
    covering [start, end) in recorded time."""

    first: date
    last: date
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class RollupState:
    timezone: str
    first_day: date
    rolled_through: date


async def state(connection: Connection, program_id: int) -> RollupState | None:
    row = await connection.fetchrow(repository.ROLLUP_STATE, program_id)
    return None if row is None else RollupState(row["timezone"], row["first_day"], row["rolled_through"])


async def rolled_within(
    connection: Connection, program_id: int, zone: str, start: datetime | None, end: datetime
) -> Rolled | None:
    """The program's rolled whole days inside [start, end) (from its first day when
    start is None), if rolled in the report's timezone."""
    found = await state(connection, program_id)
    if found is None or found.timezone != zone:
        return None
    tz = ZoneInfo(zone)
    first = found.first_day
    if start is not None:
        first = max(first, local_day(start, tz))
        if day_start(first, tz) < start:
            first += timedelta(days=1)
    last = min(found.rolled_through, local_day(end, tz) - timedelta(days=1))
    if day_start(last + timedelta(days=1), tz) > end:
        last -= timedelta(days=1)
    if last < first:
        return None
    return Rolled(first, last, day_start(first, tz), day_start(last + timedelta(days=1), tz))


def live_pieces(start: datetime, end: datetime, rolled: Rolled | None) -> list[tuple[datetime, datetime]]:
    """What of [start, end) a report reads from the ledger: all of it, or the parts
    before and after the rolled days."""
    if rolled is None:
        return [(start, end)]
    return [(a, b) for a, b in ((start, rolled.start), (rolled.end, end)) if a < b]


async def daily(
    connection: Connection, program_id: int, rolled: Rolled, figures: Iterable[str]
) -> list[tuple[date, str, str, Decimal]]:
    rows = await connection.fetch(
        repository.DAY_FIGURES, program_id, rolled.first, rolled.last, list(figures)
    )
    return [(row["day"], row["figure"], row["key"], row["value"]) for row in rows]


async def sums(connection: Connection, program_id: int, last: date, figures: Iterable[str]) -> Sums:
    rows = await connection.fetch(repository.FIGURE_SUMS, program_id, last, list(figures))
    return {(row["figure"], row["key"]): row["value"] for row in rows}


# ---------------------------------------------------------------- computing figures


def _add(into: Figures, day: date, figure: str, key: str, value: Decimal | int) -> None:
    if value:
        into[day, figure, key] = into.get((day, figure, key), Decimal(0)) + Decimal(value)


async def replay(
    connection: Connection,
    program_id: int,
    before: datetime,
    zone: ZoneInfo,
    on_entry: Callable[[datetime], dict[tuple[str, str], int]] | None = None,
) -> CohortBook:
    """The lot replay of the program's entries recorded before `before`, with its
    figures' changes collected (into the dict on_entry gives for each entry's
    recorded_at, or the book's own)."""
    rows = await repository.lot_changes_before(connection, program_id, before, zone.key)
    return replay_rows(rows, zone, on_entry)


def members_of(rows: list[asyncpg.Record]) -> list[int]:
    return sorted({member for row in rows for member in row["member_ids"]})


async def kept_book(
    connection: Connection,
    program_id: int,
    members: list[int],
    day: date,
    zone: ZoneInfo,
    sources: list[uuid.UUID] | None = None,
) -> CohortBook:
    """A book holding these members' lots as kept at the end of the rolled `day`:
    an entry recorded after it changes the lots of its members only, so the book
    replays the entries since as the whole history's replay would. All their
    lots and uses (the job, which numbers new lots after them and writes what
    changed), or (a report) what entries undoing `sources` can change: the lots
    with points left and the sources' uses."""
    book = CohortBook(changes={}, expiry_month=month_of(zone))
    lots, uses = await repository.kept_lots(connection, program_id, members, day, sources)
    book.restore(lots, uses)
    return book


async def kept_since(
    connection: Connection, program_id: int, rolled: Rolled, before: datetime, zone: ZoneInfo
) -> CohortBook:
    """The lot replay of the entries recorded in [rolled.end, before) on top of
    their members' lots kept at the end of the rolled day `rolled.last`: the
    book's changes are what those entries changed."""
    rows = await repository.lot_changes_since(connection, program_id, rolled.end, before, zone.key)
    sources = sorted({row["source"] for row in rows if row["source"] is not None})
    book = await kept_book(connection, program_id, members_of(rows), rolled.last, zone, sources)
    return replay_rows(rows, zone, book=book)


@dataclass(slots=True)
class Versions:
    """The kept lots' versions a replay wrote, day by day (CohortBook.versions())."""

    lots: list[LotVersion]
    uses: list[UseVersion]


def replay_rows(
    rows: list[asyncpg.Record],
    zone: ZoneInfo,
    on_entry: Callable[[datetime], dict[tuple[str, str], int]] | None = None,
    book: CohortBook | None = None,
    versions: Versions | None = None,
) -> CohortBook:
    """Replay these lot changes (LOT_CHANGES_BEFORE's rows, in their order), on
    `book` (its kept lots) or from nothing; with `versions`, adding the lots and
    uses each day changed at that day's end (the rows come by local day)."""
    month = month_of(zone)
    if book is None:
        book = CohortBook(changes={}, expiry_month=month)
    day: date | None = None
    if versions is not None:
        book.changed = Changed()
    for row in rows:
        if on_entry is not None:
            book.changes = on_entry(row["recorded_at"])
        if versions is not None:
            today = local_day(row["recorded_at"], zone)
            if day is not None and today != day:
                _version(book, day, versions)
            day = today
        book.apply(
            row["id"],
            month(row["recorded_at"]),
            taking(row["kind"], row["reversed_kind"]),
            row["source"],
            row["expires_at"],
            list(zip(row["member_ids"], row["changes"], strict=True)),
        )
    if versions is not None and day is not None:
        _version(book, day, versions)
    return book


def _version(book: CohortBook, day: date, versions: Versions) -> None:
    lots, uses = book.versions(day)
    versions.lots += lots
    versions.uses += uses


async def compute(
    connection: Connection,
    program_id: int,
    zone_name: str,
    first: date,
    last: date,
    kept: bool = False,
) -> tuple[Figures, Versions]:
    """Every figure of days first .. last, from the ledger (the job writes them,
    `verify` compares them), and the versions of the members' lots those days
    changed: from the whole history's replay, or (kept) from the lots kept at
    the end of the day before `first` with the entries of first .. last replayed
    on them."""
    zone = ZoneInfo(zone_name)
    start, end = day_start(first, zone), day_start(last + timedelta(days=1), zone)
    out: Figures = {}
    for row in await repository.entry_nets(connection, program_id, start, end, "day", zone_name):
        _add(out, row["bucket"].date(), PARTNER_FLOW if row["partner"] else FLOW, row["kind"], row["points"])
    for row in await connection.fetch(repository.DAY_BALANCES, program_id, start, end, zone_name):
        _add(out, row["day"], BALANCE, row["kind"], row["points"])
    for row in await repository.orders(connection, program_id, start, end, "day", zone_name):
        day = row["bucket"].date()
        _add(out, day, ORDERS, row["currency"], row["orders"])
        _add(out, day, REVENUE, row["currency"], repository.decimal(row["total"]))
    for row in await repository.refunds(connection, program_id, start, end, "day", zone_name):
        _add(out, row["bucket"].date(), REFUNDED, row["currency"], repository.decimal(row["amount"]))
    for row in await connection.fetch(repository.DAY_HOLDERS, program_id, start, end, zone_name):
        _add(out, row["day"], HOLDERS, "", row["holders"])
    # the lots: each entry's changes go to the day it was recorded
    by_day: dict[date, dict[tuple[str, str], int]] = defaultdict(dict)

    def on_entry(at: datetime) -> dict[tuple[str, str], int]:
        return by_day[local_day(at, zone)]

    versions = Versions([], [])
    if kept:
        rows = await repository.lot_changes_since(connection, program_id, start, end, zone_name)
        book = await kept_book(connection, program_id, members_of(rows), first - timedelta(days=1), zone)
    else:
        # a lot's state depends on all before it: the whole history replays
        rows = await repository.lot_changes_before(connection, program_id, end, zone_name)
        book = None
    replay_rows(rows, zone, on_entry, book, versions)
    for day, changes in by_day.items():
        if first <= day <= last:
            for (figure, key), points in changes.items():
                _add(out, day, figure, key, points)
    return out, versions


def _member_days_args(program_id: int, zone_name: str, first: date, last: date) -> tuple[object, ...]:
    """MEMBER_DAYS' parameters for days first .. last."""
    zone = ZoneInfo(zone_name)
    start, end = day_start(first, zone), day_start(last + timedelta(days=1), zone)
    return (program_id, start, end, zone_name, list(ACTIVE_KINDS), list(PARTICIPATING_KINDS), first)


# ---------------------------------------------------------------- distinct members


def bucket_of(day: date, unit: str | None) -> datetime | None:
    """A rolled day's bucket, as date_trunc(unit, local time) gives it (naive
    local); None for the whole period."""
    if unit is None:
        return None
    if unit == "week":
        day -= timedelta(days=day.weekday())
    elif unit == "month":
        day = day.replace(day=1)
    elif unit == "year":
        day = day.replace(month=1, day=1)
    return datetime(day.year, day.month, day.day)


async def members_with(
    connection: Connection,
    program_id: int,
    start: datetime,
    end: datetime,
    unit: str | None,
    zone: str,
    fact: str,
    rolled: Rolled,
) -> dict[datetime | None, int]:
    """How many members have `fact` (`active` or `participating`) in [start, end),
    by bucket (None: over the whole period), on rolled days: the rolled days'
    count (report_member_day), plus the members the unrolled remainder finds that
    have no day of it in the same bucket's rolled days. Exact: each member once
    per bucket."""
    kinds = list(ACTIVE_KINDS if fact == ACTIVE_FACT else PARTICIPATING_KINDS)
    live: set[tuple[datetime | None, int]] = set()
    for piece_start, piece_end in live_pieces(start, end, rolled):
        for row in await connection.fetch(
            repository.MEMBERS_ACTIVE, program_id, piece_start, piece_end, unit, zone, kinds
        ):
            live.add((row["bucket"], row["member_id"]))
    counts: dict[datetime | None, int] = defaultdict(int)
    if unit is None:
        found = await connection.fetchval(
            repository.MEMBER_DAY_TOTAL, program_id, fact, rolled.first, rolled.last
        )
        counts[None] = int(found or 0)
    else:
        for row in await connection.fetch(
            repository.MEMBER_DAY_BUCKETS, program_id, fact, rolled.first, rolled.last, unit
        ):
            counts[row["bucket"]] += int(row["members"])
    members = sorted({member for _, member in live})
    if members:
        live -= {
            (bucket_of(row["day"], unit), row["member_id"])
            for row in await connection.fetch(
                repository.MEMBERS_DAYS, program_id, fact, members, rolled.first, rolled.last
            )
        }
    for bucket, _ in live:
        counts[bucket] += 1
    return counts


async def buyers(
    connection: Connection, program_id: int, start: datetime, end: datetime, zone: str, rolled: Rolled
) -> tuple[int, int]:
    """Members with 1+ and 2+ orders recorded in [start, end), on rolled days: the
    rolled days' counts, corrected by the orders of the unrolled remainder's
    members."""
    live: dict[int, int] = defaultdict(int)
    for piece_start, piece_end in live_pieces(start, end, rolled):
        for found in await connection.fetch(
            repository.MEMBERS_ACTIVE, program_id, piece_start, piece_end, None, zone, []
        ):
            live[found["member_id"]] += int(found["orders"])
    row = await connection.fetchrow(repository.BUYER_DAYS, program_id, rolled.first, rolled.last)
    assert row is not None
    with_orders, repeat = int(row["buyers"]), int(row["repeat_buyers"])
    rolled_orders: dict[int, int] = defaultdict(int)
    if live:
        for found in await connection.fetch(
            repository.MEMBERS_DAYS, program_id, ORDER_FACT, sorted(live), rolled.first, rolled.last
        ):
            rolled_orders[found["member_id"]] += int(found["count"])
    for member, orders in live.items():
        before = rolled_orders.get(member, 0)
        with_orders += before == 0
        repeat += before < 2 <= before + orders
    return with_orders, repeat


# ---------------------------------------------------------------- the job


@dataclass(frozen=True, slots=True)
class RolledUp:
    programs: int
    days: int
    figures: int


async def _first_day(connection: Connection, program_id: int, zone: ZoneInfo) -> date | None:
    first = await connection.fetchval(repository.FIRST_RECORDED, program_id)
    return None if first is None else local_day(first, zone)


async def roll_up_program(
    connection: Connection, program_id: int, as_of: datetime, now: datetime
) -> tuple[int, int]:
    """Roll the program's days that are final by now (and ended by as_of); the
    days rolled and figures written. One run at a time per program (an advisory
    lock): a second run waits, then finds the days rolled."""
    async with connection.transaction():
        await connection.execute(f"SET LOCAL statement_timeout = {JOB_TIMEOUT_MS}")
        await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1), $2)", LOCK, program_id)
        found = await state(connection, program_id)
        if found is None:
            zone_name = await connection.fetchval(repository.ACTIVE_TIMEZONE, program_id) or "UTC"
            zone = ZoneInfo(zone_name)
            first = await _first_day(connection, program_id, zone)
            if first is None:
                return 0, 0
            start_day = first
        else:
            zone_name, zone = found.timezone, ZoneInfo(found.timezone)
            first = found.first_day
            start_day = found.rolled_through + timedelta(days=1)
        oldest = await connection.fetchval(repository.OLDEST_TRANSACTION_AGE)
        horizon = min(as_of, now - MARGIN - (oldest or timedelta()))
        last = local_day(horizon, zone) - timedelta(days=1)
        if last < start_day:
            return 0, 0
        # the first run replays the whole history and keeps every member's lots;
        # later runs replay the days since on the kept lots of those days' members
        figures, versions = await compute(
            connection, program_id, zone_name, start_day, last, kept=found is not None
        )
        rows = sorted(figures.items())
        await connection.execute(
            repository.INSERT_FIGURES,
            program_id,
            [day for (day, _, _), _ in rows],
            [figure for (_, figure, _), _ in rows],
            [key for (_, _, key), _ in rows],
            [value for _, value in rows],
        )
        await connection.execute(
            repository.INSERT_MEMBER_DAYS,
            *_member_days_args(program_id, zone_name, start_day, last),
        )
        await repository.keep_lots(connection, program_id, found is None, versions.lots, versions.uses)
        if found is None:
            # the first run wrote a row per member (and per member day): without
            # statistics until autovacuum comes by, the planner scanned a year of
            # member days for the members a report looked up (4 s at 1,000,000
            # members, against milliseconds by the member index)
            await connection.execute("ANALYZE report_lot, report_lot_use, report_member_day")
        await connection.execute(repository.SAVE_ROLLUP, program_id, zone_name, first, last, now)
        return (last - start_day).days + 1, len(figures)


async def roll_up(
    db: Database,
    *,
    program_ids: list[int],
    as_of: datetime,
    now: datetime,
    on_progress: Callable[[int], None],
) -> RolledUp:
    days = figures = 0
    for program_id in program_ids:

        async def work(connection: Connection, program_id: int = program_id) -> tuple[int, int]:
            return await roll_up_program(connection, program_id, as_of, now)

        rolled_days, written = await db.call(work)
        days += rolled_days
        figures += written
        on_progress(1)
    return RolledUp(len(program_ids), days, figures)


# ---------------------------------------------------------------- verify


async def first_difference(connection: Connection, program_id: int) -> tuple[date, str] | None:
    """The first rolled day whose stored figures differ from the ledger's, and which
    figure; else the first member whose kept lots (their versions by day) differ
    from the whole history's replay, and the first day they differ on."""
    found = await state(connection, program_id)
    if found is None:
        return None
    expected, versions = await compute(
        connection, program_id, found.timezone, found.first_day, found.rolled_through
    )
    stored: Figures = {
        (row["day"], row["figure"], row["key"]): row["value"]
        for row in await connection.fetch(
            repository.DAY_FIGURES_ALL, program_id, found.first_day, found.rolled_through
        )
    }
    differing = [
        (day, f"{figure} {key}".strip())
        for (day, figure, key) in set(expected) | set(stored)
        if expected.get((day, figure, key), Decimal(0)) != stored.get((day, figure, key), Decimal(0))
    ]
    if differing:
        return min(differing)
    member_days = {
        tuple(row)
        for row in await connection.fetch(
            repository.MEMBER_DAYS,
            *_member_days_args(program_id, found.timezone, found.first_day, found.rolled_through),
        )
    }
    stored_days = {
        tuple(row)
        for row in await connection.fetch(
            repository.STORED_MEMBER_DAYS, program_id, found.first_day, found.rolled_through
        )
    }
    if member_days != stored_days:
        fact, member, day, *_ = min(member_days ^ stored_days, key=lambda row: (row[2], row[0], row[1]))
        return day, f"member day {fact} of member {member}"
    replayed = comparable(versions.lots, versions.uses)
    kept = comparable(*await repository.lot_versions(connection, program_id))
    lots_differing = [
        (min(version[0] for version in replayed.get(member, set()) ^ kept.get(member, set())), member)
        for member in set(replayed) | set(kept)
        if replayed.get(member) != kept.get(member)
    ]
    if lots_differing:
        day, member = min(lots_differing)
        return day, f"kept lots of member {member}"
    return None


async def verify_rollups(connection: Connection) -> list[str]:
    """Each program's rolled days recompute from the ledger: the first that does not."""
    found = []
    for program_id in await connection.fetch(repository.ROLLED_PROGRAMS):
        differs = await first_difference(connection, program_id[0])
        if differs is not None:
            day, figure = differs
            found.append(f"program={program_id[0]}, day={day.isoformat()}, figure={figure}")
    return found


# what `points-ledger verify` checks: the ledger's own checks run first, then the
# partners' settlement and the reports' rollups
VERIFY_CHECKS = (
    *partner_settlement.VERIFY_CHECKS,
    ("each program's rolled report days recompute from the ledger (first day that differs)", verify_rollups),
)
