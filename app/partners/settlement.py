"""What a partner owes or is owed, derived from its settlement lines: the lines
ledger_post() wrote with each partner entry (section, points, and the rate or
funding price they were priced at when they were recorded).

Money is exact decimal arithmetic: each line's money is its points x its price per
point, rounded half up once per line to the currency's minor unit (a funding line
carries its own price). Sections add their lines; `partner_owes` is earn, earn
refunds, funding and conversions in; `program_owes` is redemptions, their
reversals, donations and conversions out. A prepaid partner's earn lines carry
points and no money (it paid through funding); a postpaid partner's carry its
earn rate. A refund or reversal carries the price of the line it undoes.

Statements close a period: under the partner's row lock, a statement claims the
partner's unclaimed lines recorded before its end whose entries the chain has
reached (`chain_sequence` is the head it read), so a line recorded late, or not
yet chained, lands in the next statement, never in a closed one. Its digest is
SHA-256 over its lines in (recorded_at, entry) order; `verify` derives every
closed statement again and compares."""

from __future__ import annotations

import csv
import decimal
import hashlib
import io
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

import asyncpg
from uuid_utils.compat import uuid7

from app.context import AppContext
from app.db import Connection, Database
from app.errors import AppError, NotFound, ValidationFailed
from app.fields import minor_units
from app.ledger import chain
from app.outbox import emit
from app.pagination import InvalidCursor
from app.partners import repository
from app.partners.schemas import (
    SECTIONS,
    PaymentOut,
    Sections,
    SectionTotal,
    Settlement,
    SettlementLine,
    SettlementLinePage,
    SignedMoney,
    StatementOut,
    StatementPage,
    Totals,
)

logger = logging.getLogger(__name__)

PARTNER_OWES = ("earn", "earn_refunds", "funding", "conversions_in")
PROGRAM_OWES = ("redemptions", "redemption_reversals", "donations", "conversions_out")
EARLIEST_LINE = (datetime(1900, 1, 1, tzinfo=UTC), uuid.UUID(int=0))


# how long one statement's close may take (its claim of the period's lines)
CLOSE_TIMEOUT_MS = 30 * 60 * 1000


class StatementNotFound(NotFound):
    code, title = "statement_not_found", "Statement not found"


class StatementPaid(AppError):
    status, code, title = 409, "statement_paid", "The statement's payment was already recorded"


class PartnerNotPostpaid(AppError):
    status, code, title = 422, "partner_not_postpaid", "Only a postpaid partner pays statements"


class PeriodClosed(AppError):
    status, code, title = 409, "period_closed", "A statement already closed this period"


# Money is exact: 60 digits hold any line (19-digit points x a rate of at most
# 1,000,000 with 10 decimals) and any sum of lines; an inexact product or sum
# raises instead of rounding silently. The one rounding is the quantize below.
MONEY = decimal.Context(prec=60, traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow])
ROUNDING = decimal.Context(prec=60, rounding=ROUND_HALF_UP)


def line_money(points: int, price_per_point: Decimal | None, price: Decimal | None, currency: str) -> Decimal:
    """One line's money: a funding's own price, or points x price per point rounded
    half up to the currency's minor unit; zero when the line carries no price."""
    places = Decimal(1).scaleb(-minor_units(currency))
    if price is not None:
        amount = price
    elif price_per_point is None:
        amount = Decimal(0)
    else:
        amount = MONEY.multiply(Decimal(points), price_per_point)
    # `+ 0` turns a negative zero (-0.004 rounded) into 0.00
    return MONEY.add(amount.quantize(places, context=ROUNDING), Decimal(0))


def _sum(amounts: Iterable[Decimal]) -> Decimal:
    total = Decimal(0)
    for amount in amounts:
        total = MONEY.add(total, amount)
    return total


def _line_text(line: asyncpg.Record, money: Decimal) -> bytes:
    # what the digest covers: one line per settlement line, fields in this order
    return (
        f"{line['entry_id']}|{line['section']}|{line['points']}|"
        f"{'' if line['price_per_point'] is None else line['price_per_point']}|"
        f"{'' if line['price'] is None else line['price']}|{money}\n"
    ).encode()


@dataclass(slots=True)
class Tally:
    """Sections and totals of a run of lines, with their digest."""

    currency: str
    points: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SECTIONS, 0))
    money: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys(SECTIONS, Decimal(0)))
    count: int = 0
    digest: Any = field(default_factory=hashlib.sha256)

    def add_sums(self, row: asyncpg.Record) -> None:
        """A section's sums, added up in the database (repository.PERIOD_SECTIONS)."""
        self.points[row["section"]] += row["points"]
        self.money[row["section"]] = MONEY.add(self.money[row["section"]], row["money"] + 0)
        self.count += row["lines"]

    def add(self, line: asyncpg.Record) -> None:
        money = line_money(line["points"], line["price_per_point"], line["price"], self.currency)
        self.points[line["section"]] += line["points"]
        self.money[line["section"]] = MONEY.add(self.money[line["section"]], money)
        self.count += 1
        self.digest.update(_line_text(line, money))

    def _money(self, amount: Decimal) -> SignedMoney:
        places = Decimal(1).scaleb(-minor_units(self.currency))
        return SignedMoney(amount=amount.quantize(places), currency=self.currency)

    def sections(self) -> Sections:
        return Sections(
            **{
                name: SectionTotal(points=self.points[name], money=self._money(self.money[name]))
                for name in SECTIONS
            }
        )

    def totals(self) -> Totals:
        partner_owes = _sum(self.money[name] for name in PARTNER_OWES)
        program_owes = _sum(self.money[name] for name in PROGRAM_OWES)
        net = MONEY.subtract(partner_owes, program_owes)
        direction: Literal["partner_owes", "program_owes", "none"] = (
            "partner_owes" if net > 0 else "program_owes" if net < 0 else "none"
        )
        return Totals(
            partner_owes=self._money(partner_owes),
            program_owes=self._money(program_owes),
            net=self._money(net),
            direction=direction,
        )


async def _tally(connection: Connection, currency: str, query: str, *args: Any) -> Tally:
    tally = Tally(currency)
    async for line in repository.lines_cursor(connection, query, *args):
        tally.add(line)
    return tally


def check_period(start: datetime, end: datetime) -> None:
    if end <= start:
        raise ValidationFailed.on("query.to", "must be after from")


async def _pinned(connection: Connection, program_id: int, chain_sequence: int | None) -> int:
    """The head a settlement is read at: the ledger's now, or an earlier one asked for."""
    head = (await chain.head(connection, program_id)).sequence
    if chain_sequence is not None and chain_sequence > head:
        raise ValidationFailed.on(
            "query.chain_sequence", f"the chain has reached {head}; ask for a sequence it has reached"
        )
    return head if chain_sequence is None else chain_sequence


async def settlement(
    context: AppContext,
    program_id: int,
    partner: asyncpg.Record,
    start: datetime,
    end: datetime,
    chain_sequence: int | None = None,
) -> Settlement:
    """GET .../settlement?from=&to=: the entries recorded in [from, to), derived now;
    with `chain_sequence`, only the entries the chain had reached by then, so the
    same question always gets the same figures (a transaction that started inside
    the period may commit, and be chained, after it ended)."""
    check_period(start, end)
    async with context.db.pool.acquire() as connection:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            head = await _pinned(connection, program_id, chain_sequence)
            # Summed in the database (a month of a busy partner is millions of lines):
            # the same rounding per line as line_money(), which statements use.
            tally = Tally(partner["currency"])
            for row in await repository.period_sections(
                connection,
                partner["program_id"],
                partner["id"],
                start,
                end,
                chain_sequence,
                minor_units(partner["currency"]),
            ):
                tally.add_sums(row)
    return Settlement(
        partner=partner["code"],
        from_=start,
        to=end,
        currency=partner["currency"],
        sections=tally.sections(),
        totals=tally.totals(),
        lines_count=tally.count,
        chain_sequence=head,
    )


def _line_out(line: asyncpg.Record, currency: str) -> SettlementLine:
    money = line_money(line["points"], line["price_per_point"], line["price"], currency)
    return SettlementLine(
        entry_id=line["entry_id"],
        section=line["section"],
        kind=line["kind"],
        recorded_at=line["recorded_at"],
        points=line["points"],
        price_per_point=line["price_per_point"],
        money=SignedMoney(amount=money, currency=currency),
        rate_id=line["rate_id"],
        undoes=line["undoes_entry_id"],
    )


def _after(context: AppContext, list_id: str, cursor: str | None) -> tuple[datetime, uuid.UUID]:
    if cursor is None:
        return EARLIEST_LINE
    recorded, entry_id = context.cursors.read(list_id, cursor)
    try:
        return datetime.fromisoformat(recorded), uuid.UUID(entry_id)
    except (TypeError, ValueError):
        raise InvalidCursor("this cursor was not issued for this list") from None


def _line_page(
    context: AppContext, list_id: str, rows: list[asyncpg.Record], limit: int, currency: str
) -> SettlementLinePage:
    items = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = context.cursors.issue(
            list_id, items[-1]["recorded_at"].isoformat(), str(items[-1]["entry_id"])
        )
    return SettlementLinePage(items=[_line_out(row, currency) for row in items], next_cursor=next_cursor)


async def period_lines(
    context: AppContext,
    partner: asyncpg.Record,
    start: datetime,
    end: datetime,
    *,
    limit: int,
    cursor: str | None,
    chain_sequence: int | None = None,
) -> SettlementLinePage:
    check_period(start, end)
    list_id = f"settlement-lines:{partner['id']}:{start.isoformat()}:{end.isoformat()}:{chain_sequence}"
    after = _after(context, list_id, cursor)
    async with context.db.pool.acquire() as connection:
        rows = await repository.period_lines(
            connection,
            partner["program_id"],
            partner["id"],
            start,
            end,
            after=after,
            limit=limit + 1,
            chain_sequence=chain_sequence,
        )
    return _line_page(context, list_id, rows, limit, partner["currency"])


CSV_COLUMNS = (
    "entry_id",
    "section",
    "kind",
    "recorded_at",
    "points",
    "price_per_point",
    "money",
    "currency",
    "rate_id",
    "undoes",
)


async def lines_csv(
    context: AppContext, partner: asyncpg.Record, query: str, *args: Any
) -> AsyncIterator[bytes]:
    """Every line a query selects, as CSV, streamed from a server-side cursor."""
    currency = partner["currency"]

    def row_text(values: list[Any]) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(values)
        return buffer.getvalue().encode()

    async with (
        context.db.pool.acquire() as connection,
        connection.transaction(isolation="repeatable_read", readonly=True),
    ):
        # the header once the database answers (the endpoint reads it before it
        # starts the response, so a database that is away is a 503, not a cut CSV)
        yield row_text(list(CSV_COLUMNS))
        async for line in repository.lines_cursor(connection, query, *args):
            out = _line_out(line, currency)
            yield row_text(
                [
                    out.entry_id,
                    out.section,
                    out.kind,
                    out.recorded_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                    out.points,
                    "" if out.price_per_point is None else out.price_per_point,
                    out.money.amount,
                    currency,
                    "" if out.rate_id is None else out.rate_id,
                    "" if out.undoes is None else out.undoes,
                ]
            )


# -- statements ---------------------------------------------------------------------------------


def statement_out(row: asyncpg.Record) -> StatementOut:
    return StatementOut(
        id=row["id"],
        partner=row["partner"],
        period_start=row["period_start"],
        period_end=row["period_end"],
        currency=row["currency"],
        sections=Sections.model_validate(json.loads(row["sections"])),
        totals=Totals.model_validate(json.loads(row["totals"])),
        lines_count=row["lines_count"],
        lines_digest=row["lines_digest"],
        chain_sequence=row["chain_sequence"],
        created_at=row["created_at"],
        paid_at=row["paid_at"],
    )


async def close(db: Database, partner: asyncpg.Record, period_end: datetime, now: datetime) -> asyncpg.Record:
    """Close the partner's period since its previous statement (or its creation) up
    to `period_end` into an immutable statement."""
    if period_end > now:
        raise ValidationFailed.on("body.period_end", "must not be in the future")

    async def work(connection: Connection) -> asyncpg.Record:
        async with connection.transaction():
            # A close is batch work (a busy partner's month is millions of lines), not
            # a request a caller waits on: the service's statement timeout is for those.
            await connection.execute(f"SET LOCAL statement_timeout = {CLOSE_TIMEOUT_MS}")
            await repository.lock_partner(connection, partner["program_id"], partner["id"])
            previous = await repository.last_period_end(connection, partner["program_id"], partner["id"])
            period_start = previous or partner["created_at"]
            if period_end <= period_start:
                raise PeriodClosed(
                    f"partner {partner['code']}'s statements already run to {period_start.isoformat()}"
                )
            head = await chain.head(connection, partner["program_id"])
            statement_id = uuid7()
            claimed = await repository.claim_lines(
                connection, partner["program_id"], partner["id"], statement_id, period_end, head.sequence
            )
            tally = await _tally(
                connection,
                partner["currency"],
                repository.ALL_STATEMENT_LINES,
                partner["program_id"],
                statement_id,
            )
            assert tally.count == claimed
            sections = tally.sections().model_dump(mode="json")
            totals = tally.totals().model_dump(mode="json")
            await repository.insert_statement(
                connection,
                {
                    "id": statement_id,
                    "program_id": partner["program_id"],
                    "partner_id": partner["id"],
                    "period_start": period_start,
                    "period_end": period_end,
                    "sections": sections,
                    "totals": totals,
                    "lines_count": tally.count,
                    "lines_digest": tally.digest.hexdigest(),
                    "chain_sequence": head.sequence,
                    "created_at": now,
                },
            )
            row = await repository.statement(connection, partner["program_id"], statement_id, partner["id"])
            assert row is not None
            await emit(
                connection,
                partner["program_id"],
                "partner.statement_closed",
                statement_out(row).model_dump(mode="json"),
                occurred_at=period_end,
                now=now,
            )
            return row

    return await db.call(work)


# what a postpaid partner's statement billed it for, in points given out on credit
BILLED_SECTIONS = ("earn", "earn_refunds", "conversions_in")


async def pay(
    db: Database, partner: asyncpg.Record, statement_id: uuid.UUID, reference: str, now: datetime
) -> PaymentOut:
    """A postpaid partner paid a statement: the points it billed no longer count
    against the partner's credit limit (its slots share the new headroom out)."""
    if partner["billing"] != "postpaid":
        raise PartnerNotPostpaid(f"partner {partner['code']} is prepaid: it pays for points in advance")

    async def work(connection: Connection) -> PaymentOut:
        async with connection.transaction():
            await repository.lock_partner(connection, partner["program_id"], partner["id"])
            row = await statement(connection, partner, statement_id)
            if row["paid_at"] is not None:
                raise StatementPaid(f"statement {statement_id} was paid at {row['paid_at'].isoformat()}")
            sections = json.loads(row["sections"])
            points = sum(int(sections[name]["points"]) for name in BILLED_SECTIONS)
            paid = await repository.insert_payment(
                connection, partner["program_id"], statement_id, partner["id"], points, reference, now
            )
            if paid is None:
                raise StatementPaid(f"statement {statement_id} was already paid")
            await repository.spread(connection, partner["program_id"], partner["id"])
            out = PaymentOut(
                statement_id=statement_id,
                partner=partner["code"],
                points=points,
                reference=reference,
                paid_points=paid,
                recorded_at=now,
            )
            await emit(
                connection,
                partner["program_id"],
                "partner.statement_paid",
                out.model_dump(mode="json"),
                occurred_at=now,
                now=now,
            )
            return out

    return await db.call(work)


async def statement(
    connection: Connection, partner: asyncpg.Record, statement_id: uuid.UUID
) -> asyncpg.Record:
    row = await repository.statement(connection, partner["program_id"], statement_id, partner["id"])
    if row is None:
        raise StatementNotFound(f"no statement {statement_id} of partner {partner['code']}")
    return row


async def statements(
    context: AppContext, partner: asyncpg.Record, *, limit: int, cursor: str | None
) -> StatementPage:
    list_id = f"statements:{partner['id']}"
    before = datetime(9000, 1, 1, tzinfo=UTC)
    if cursor is not None:
        (ended,) = context.cursors.read(list_id, cursor)
        try:
            before = datetime.fromisoformat(ended)
        except (TypeError, ValueError):
            raise InvalidCursor("this cursor was not issued for this list") from None
    async with context.db.pool.acquire() as connection:
        rows = await repository.statements(
            connection, partner["program_id"], partner["id"], before, limit + 1
        )
    items = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = context.cursors.issue(list_id, items[-1]["period_end"].isoformat())
    return StatementPage(items=[statement_out(row) for row in items], next_cursor=next_cursor)


async def statement_lines(
    context: AppContext, partner: asyncpg.Record, statement_id: uuid.UUID, *, limit: int, cursor: str | None
) -> SettlementLinePage:
    list_id = f"statement-lines:{statement_id}"
    after = _after(context, list_id, cursor)
    async with context.db.pool.acquire() as connection:
        await statement(connection, partner, statement_id)
        rows = await repository.statement_lines(
            connection, partner["program_id"], statement_id, after=after, limit=limit + 1
        )
    return _line_page(context, list_id, rows, limit, partner["currency"])


def period_ends(partner: asyncpg.Record, since: datetime, until: datetime) -> list[datetime]:
    """The ends of the partner's complete settlement periods after `since`, up to
    `until`: midnights of the 1st of each month (or Mondays), in its timezone."""
    zone = ZoneInfo(partner["timezone"])
    local = since.astimezone(zone)
    ends: list[datetime] = []
    while True:
        if partner["settlement_period"] == "week":
            day = local.date() + timedelta(days=7 - local.weekday())
        else:
            day = (local.date().replace(day=1) + timedelta(days=32)).replace(day=1)
        end = datetime(day.year, day.month, day.day, tzinfo=zone)
        if end > until:
            return ends
        ends.append(end.astimezone(UTC))
        local = end


async def close_due(
    db: Database, *, program_id: int | None, as_of: datetime, now: datetime
) -> tuple[int, int]:
    """Job `close-statements`: every partner's complete periods up to `as_of`, each
    one statement (of one program's partners, or all). (statements, lines)."""
    async with db.pool.acquire() as connection:
        partners = await repository.all_partners(connection, program_id)
    closed = lines = 0
    for partner in partners:
        async with db.pool.acquire() as connection:
            previous = await repository.last_period_end(connection, partner["program_id"], partner["id"])
        for end in period_ends(partner, previous or partner["created_at"], min(as_of, now)):
            try:
                row = await close(db, partner, end, now)
            except PeriodClosed:  # another worker closed it meanwhile
                continue
            except Exception:
                # one partner's failure (logged) must not stop every other partner's close
                logger.exception("closing partner %s's statement to %s failed", partner["code"], end)
                break
            closed += 1
            lines += row["lines_count"]
    return closed, lines


async def verify_statements(connection: Connection) -> list[str]:
    """Each closed statement derived again from its lines: count, digest, sections
    and totals as recorded. Call inside verify's snapshot transaction."""
    problems: list[str] = []
    for row in await connection.fetch(repository.ALL_STATEMENTS):
        tally = await _tally(
            connection, row["currency"], repository.ALL_STATEMENT_LINES, row["program_id"], row["id"]
        )
        recorded = (
            row["lines_count"],
            row["lines_digest"],
            json.loads(row["sections"]),
            json.loads(row["totals"]),
        )
        derived = (
            tally.count,
            tally.digest.hexdigest(),
            tally.sections().model_dump(mode="json"),
            tally.totals().model_dump(mode="json"),
        )
        if recorded != derived:
            problems.append(
                f"statement={row['id']}, partner={row['partner']}, recorded lines={row['lines_count']} "
                f"digest={row['lines_digest'][:16]}, derived lines={tally.count} digest={derived[1][:16]}"
            )
    return problems


async def verify_lines(connection: Connection) -> list[str]:
    """Each settlement line's points against its entry's postings on the partner's
    accounts, and each partner's balances against its postings."""
    problems: list[str] = []
    for row in await connection.fetch(repository.LINES_AGAINST_POSTINGS):
        expected = _expected_points(row["section"], row["funding"], row["payable"])
        if expected != row["points"]:
            problems.append(
                f"entry={row['entry_id']}, section={row['section']}, line={row['points']}, "
                f"postings={expected}"
            )
    for row in await connection.fetch(repository.LINES_MISSING_OR_MISPRICED):
        problems.append(f"entry={row['entry_id']}, partner={row['partner_id']}: {row['problem']}")
    for row in await connection.fetch(repository.BALANCES_AGAINST_POSTINGS):
        problems.append(
            f"partner={row['code']}, funding={row['funding']} vs postings {row['funding_postings']}, "
            f"payable={row['payable']} vs postings {row['payable_postings']}"
        )
    return problems


def _expected_points(section: str, funding: int, payable: int) -> int:
    # earn and conversions in debit the funding (refunds credit it back: negative
    # lines); a funding credits it; the rest move the payable
    if section in ("earn", "earn_refunds", "conversions_in"):
        return -funding
    if section == "funding":
        return funding
    return payable


# what `points-ledger verify` checks of partners, beside the ledger's own checks
VERIFY_CHECKS = (
    (
        "each partner entry has its settlement line, matching its postings and priced as recorded, "
        "and each partner's balances match its postings",
        verify_lines,
    ),
    (
        "each closed partner statement derives again from its lines (count, digest, sections, totals)",
        verify_statements,
    ),
)
