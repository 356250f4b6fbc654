"""All SQL about partners: agreements, balances, rates, redemptions, conversions,
settlement lines and statements."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg

from app.db import Connection, stream

_PARTNER = """
SELECT pa.id, pa.program_id, pa.code, pa.name, pa.roles, pa.billing, pa.currency, pa.credit_limit_points,
       pa.paid_points,
       pa.timezone, pa.settlement_period, pa.status, pa.created_at, pa.updated_at,
       b.funding AS funding_points, b.payable AS payable_points
  FROM partner pa
 -- numeric: each slot stays within bigint, their sum need not (refused at funding,
 -- app/partners/service.py fund(); a partner's payable can outgrow it too)
 CROSS JOIN LATERAL (SELECT sum(s.funding) AS funding, sum(s.payable) AS payable
                       FROM partner_balance s WHERE s.program_id = pa.program_id AND s.partner_id = pa.id) b
"""

# Rows of partner_balance per partner: how many of one partner's entries can check
# its funding at once without queueing (app/sql/functions/partner_balance_spread.sql).
BALANCE_SLOTS = 32

SPREAD = "SELECT partner_balance_spread(p_program_id => $1, p_partner_id => $2)"

BALANCES = """
SELECT g.code AS program, pa.code AS partner, sum(b.funding) AS funding,
       sum(b.payable) AS payable
  FROM partner pa
  JOIN partner_balance b ON b.program_id = pa.program_id AND b.partner_id = pa.id
  JOIN program g ON g.id = pa.program_id
 GROUP BY g.code, pa.code
 ORDER BY g.code, pa.code
"""

INSERT_PARTNER = """
WITH partner AS (
    INSERT INTO partner (program_id, code, name, roles, billing, currency, credit_limit_points, timezone,
                         settlement_period, status, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'active', $10, $10)
    ON CONFLICT (program_id, code) DO NOTHING
    RETURNING id
), balance AS (
    INSERT INTO partner_balance (program_id, partner_id, slot, updated_at)
    SELECT $1, id, slot, $10 FROM partner, generate_series(0, $11 - 1) AS slot
)
SELECT id FROM partner
"""

UPDATE_PARTNER = """
UPDATE partner SET name = coalesce($3, name), status = coalesce($4, status),
       credit_limit_points = CASE WHEN $5 THEN $6 ELSE credit_limit_points END, updated_at = $7
 WHERE program_id = $1 AND code = $2
RETURNING id
"""

INSERT_RATE = """
INSERT INTO partner_rate (program_id, partner_id, kind, effective_from, price_per_point,
                          partner_units_per_point, min_points, increment, rounding, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (program_id, partner_id, kind, effective_from) DO NOTHING
RETURNING *
"""

RATES = """
SELECT * FROM partner_rate WHERE program_id = $1 AND partner_id = $2 ORDER BY effective_from DESC, id DESC
"""

# the rate of each kind in force at $2 (the latest effective_from at or before it)
RATES_AT = """
SELECT DISTINCT ON (kind) * FROM partner_rate
 WHERE program_id = $1 AND partner_id = $2 AND effective_from <= $3
 ORDER BY kind, effective_from DESC
"""

RATE_AT = """
SELECT * FROM partner_rate
 WHERE program_id = $1 AND partner_id = $2 AND kind = $3 AND effective_from <= $4
 ORDER BY effective_from DESC LIMIT 1
"""

MEMBER_VIEW = """
SELECT m.external_id AS member, b.available, t.tier_code AS tier
  FROM member m JOIN member_balance b ON b.program_id = m.program_id AND b.member_id = m.id
  LEFT JOIN member_tier t ON t.program_id = m.program_id AND t.member_id = m.id
 WHERE m.program_id = $1 AND m.external_id = $2
"""

INSERT_REDEMPTION = """
INSERT INTO partner_redemption
       (id, program_id, partner_id, member_id, points, reference, donation, created_at)
SELECT $1, $2, $3, m.id, $5, $6, $7, $8 FROM member m WHERE m.program_id = $2 AND m.external_id = $4
"""

_REDEMPTION = """
SELECT r.id, r.program_id, r.partner_id, pa.code AS partner, r.member_id, m.external_id AS member, r.points,
       r.reference, r.donation, r.created_at, r.reversal_entry_id, r.reversed_at, l.price_per_point, l.rate_id
  FROM partner_redemption r
  JOIN partner pa ON pa.program_id = r.program_id AND pa.id = r.partner_id
  JOIN member m ON m.program_id = r.program_id AND m.id = r.member_id
  LEFT JOIN partner_line l
    ON l.program_id = r.program_id AND l.entry_id = r.id AND l.partner_id = r.partner_id
"""
REDEMPTION = _REDEMPTION + " WHERE r.program_id = $1 AND r.id = $2 AND r.partner_id = $3\n"
LOCKED_REDEMPTION = REDEMPTION + "   FOR UPDATE OF r\n"

REVERSE_REDEMPTION = """
UPDATE partner_redemption SET reversal_entry_id = $3, reversed_at = $4 WHERE program_id = $1 AND id = $2
"""

INSERT_CONVERSION = """
INSERT INTO conversion (id, program_id, partner_id, member_id, direction, status, points, partner_units,
                        rate_id, partner_member_id, reference, created_at, closed_at)
SELECT $1, $2, $3, m.id, $5, $6, $7, $8, $9, $10, $11, $12, $13
  FROM member m WHERE m.program_id = $2 AND m.external_id = $4
"""

_CONVERSION = """
SELECT c.id, c.program_id, c.partner_id, pa.code AS partner, c.member_id, m.external_id AS member,
       c.direction, c.status, c.points, c.partner_units, c.partner_member_id, c.reference, c.reason,
       c.created_at, c.closed_at, c.close_entry_id, r.id AS rate_id, r.partner_units_per_point,
       r.price_per_point, r.rounding
  FROM conversion c
  JOIN partner pa ON pa.program_id = c.program_id AND pa.id = c.partner_id
  JOIN member m ON m.program_id = c.program_id AND m.id = c.member_id
  JOIN partner_rate r ON r.program_id = c.program_id AND r.id = c.rate_id
"""
CONVERSION = _CONVERSION + " WHERE c.program_id = $1 AND c.id = $2 AND c.partner_id = $3\n"
LOCKED_CONVERSION = CONVERSION + "   FOR UPDATE OF c\n"
MEMBER_CONVERSIONS = (
    _CONVERSION
    + " WHERE c.program_id = $1 AND c.member_id = $2 AND (c.created_at, c.id) < ($3, $4)"
    + " ORDER BY c.created_at DESC, c.id DESC LIMIT $5\n"
)
# pending conversions out requested at or before $1, oldest first, locked for the job
DUE_CONVERSIONS = (
    _CONVERSION
    + """ WHERE c.status = 'pending' AND c.created_at <= $1 AND ($3::bigint IS NULL OR c.program_id = $3)
 ORDER BY c.created_at, c.id LIMIT $2
   FOR UPDATE OF c SKIP LOCKED
"""
)

CLOSE_CONVERSION = """
UPDATE conversion SET status = $3, reason = $4, closed_at = $5, close_entry_id = $6
 WHERE program_id = $1 AND id = $2
"""


async def insert_partner(
    connection: Connection, program_id: int, fields: dict[str, Any], now: datetime
) -> int | None:
    found: int | None = await connection.fetchval(
        INSERT_PARTNER,
        program_id,
        fields["code"],
        fields["name"],
        fields["roles"],
        fields["billing"],
        fields["currency"],
        fields["credit_limit_points"],
        fields["timezone"],
        fields["settlement_period"],
        now,
        BALANCE_SLOTS,
    )
    return found


async def balances(connection: Connection) -> list[asyncpg.Record]:
    return await connection.fetch(BALANCES)


async def partner(connection: Connection, program_id: int, code: str) -> asyncpg.Record | None:
    return await connection.fetchrow(
        _PARTNER + " WHERE pa.program_id = $1 AND pa.code = $2", program_id, code
    )


async def partner_by_id(connection: Connection, program_id: int, partner_id: int) -> asyncpg.Record | None:
    return await connection.fetchrow(
        _PARTNER + " WHERE pa.program_id = $1 AND pa.id = $2", program_id, partner_id
    )


async def partners(connection: Connection, program_id: int, after: str, limit: int) -> list[asyncpg.Record]:
    return await connection.fetch(
        _PARTNER + " WHERE pa.program_id = $1 AND pa.code > $2 ORDER BY pa.code LIMIT $3",
        program_id,
        after,
        limit,
    )


async def all_partners(connection: Connection, program_id: int | None) -> list[asyncpg.Record]:
    return await connection.fetch(
        _PARTNER + " WHERE $1::bigint IS NULL OR pa.program_id = $1 ORDER BY pa.id", program_id
    )


async def update_partner(
    connection: Connection,
    program_id: int,
    code: str,
    *,
    name: str | None,
    status: str | None,
    set_limit: bool,
    credit_limit_points: int | None,
    now: datetime,
) -> int | None:
    found: int | None = await connection.fetchval(
        UPDATE_PARTNER, program_id, code, name, status, set_limit, credit_limit_points, now
    )
    return found


async def insert_rate(
    connection: Connection, program_id: int, partner_id: int, fields: dict[str, Any], now: datetime
) -> asyncpg.Record | None:
    return await connection.fetchrow(
        INSERT_RATE,
        program_id,
        partner_id,
        fields["kind"],
        fields["effective_from"],
        fields["price_per_point"],
        fields["partner_units_per_point"],
        fields["min_points"],
        fields["increment"],
        fields["rounding"],
        now,
    )


async def rates(connection: Connection, program_id: int, partner_id: int) -> list[asyncpg.Record]:
    return await connection.fetch(RATES, program_id, partner_id)


async def rates_at(
    connection: Connection, program_id: int, partner_id: int, at: datetime
) -> list[asyncpg.Record]:
    return await connection.fetch(RATES_AT, program_id, partner_id, at)


async def rate_at(
    connection: Connection, program_id: int, partner_id: int, kind: str, at: datetime
) -> asyncpg.Record | None:
    return await connection.fetchrow(RATE_AT, program_id, partner_id, kind, at)


async def member_view(connection: Connection, program_id: int, member: str) -> asyncpg.Record | None:
    return await connection.fetchrow(MEMBER_VIEW, program_id, member)


async def insert_redemption(
    connection: Connection,
    *,
    redemption_id: uuid.UUID,
    program_id: int,
    partner_id: int,
    member: str,
    points: int,
    reference: str | None,
    donation: bool,
    now: datetime,
) -> None:
    await connection.execute(
        INSERT_REDEMPTION, redemption_id, program_id, partner_id, member, points, reference, donation, now
    )


async def redemption(
    connection: Connection, program_id: int, redemption_id: uuid.UUID, partner_id: int, *, lock: bool = False
) -> asyncpg.Record | None:
    return await connection.fetchrow(
        LOCKED_REDEMPTION if lock else REDEMPTION, program_id, redemption_id, partner_id
    )


async def reverse_redemption(
    connection: Connection, program_id: int, redemption_id: uuid.UUID, entry_id: uuid.UUID, now: datetime
) -> None:
    await connection.execute(REVERSE_REDEMPTION, program_id, redemption_id, entry_id, now)


async def insert_conversion(connection: Connection, fields: dict[str, Any]) -> None:
    await connection.execute(
        INSERT_CONVERSION,
        fields["id"],
        fields["program_id"],
        fields["partner_id"],
        fields["member"],
        fields["direction"],
        fields["status"],
        fields["points"],
        fields["partner_units"],
        fields["rate_id"],
        fields["partner_member_id"],
        fields["reference"],
        fields["created_at"],
        fields["closed_at"],
    )


async def conversion(
    connection: Connection, program_id: int, conversion_id: uuid.UUID, partner_id: int, *, lock: bool = False
) -> asyncpg.Record | None:
    return await connection.fetchrow(
        LOCKED_CONVERSION if lock else CONVERSION, program_id, conversion_id, partner_id
    )


async def member_conversions(
    connection: Connection, program_id: int, member_id: int, before: tuple[datetime, uuid.UUID], limit: int
) -> list[asyncpg.Record]:
    return await connection.fetch(MEMBER_CONVERSIONS, program_id, member_id, before[0], before[1], limit)


async def due_conversions(
    connection: Connection, requested_before: datetime, limit: int, program_id: int | None
) -> list[asyncpg.Record]:
    return await connection.fetch(DUE_CONVERSIONS, requested_before, limit, program_id)


async def close_conversion(
    connection: Connection,
    program_id: int,
    conversion_id: uuid.UUID,
    *,
    status: str,
    reason: str | None,
    now: datetime,
    entry_id: uuid.UUID,
) -> None:
    await connection.execute(CLOSE_CONVERSION, program_id, conversion_id, status, reason, now, entry_id)


# -- settlement -----------------------------------------------------------------------------------

# A line as settlement reads it: the partner line and its entry's kind. Its points
# are the line's own, which verify checks against the entry's postings.
_LINE = """
SELECT l.entry_id, l.section, e.kind, l.recorded_at, l.points, l.rate_id, l.price_per_point, l.price,
       l.undoes_entry_id
  FROM partner_line l JOIN journal_entry e ON e.program_id = l.program_id AND e.id = l.entry_id
"""
# A partner's (program $1, partner $2) lines recorded in [$3, $4); with $5, only
# those of entries the chain reached by that sequence (a settlement pinned to a
# ledger head).
_IN_PERIOD = """ WHERE l.program_id = $1 AND l.partner_id = $2 AND l.recorded_at >= $3 AND l.recorded_at < $4
   AND ($5::bigint IS NULL
        OR EXISTS (SELECT 1 FROM entry_chain c
                    WHERE c.program_id = l.program_id AND c.entry_id = l.entry_id AND c.sequence <= $5))
"""
# a page of them, after ($6, $7) in (recorded_at, entry_id) order
PERIOD_LINES = (
    _LINE
    + _IN_PERIOD
    + """   AND (l.recorded_at, l.entry_id) > ($6, $7)
 ORDER BY l.recorded_at, l.entry_id
 LIMIT $8
"""
)
STATEMENT_LINES = (
    _LINE
    + """ WHERE l.program_id = $1 AND l.statement_id = $2 AND (l.recorded_at, l.entry_id) > ($3, $4)
 ORDER BY l.recorded_at, l.entry_id
 LIMIT $5
"""
)

# A statement claims the partner's unclaimed lines recorded before its end whose
# entries the chain has reached (so chain_sequence covers every one of them).
CLAIM_LINES = """
UPDATE partner_line l SET statement_id = $3
  FROM entry_chain c
 WHERE c.program_id = l.program_id AND c.entry_id = l.entry_id
   AND l.program_id = $1 AND l.partner_id = $2 AND l.statement_id IS NULL AND l.recorded_at < $4
   AND c.sequence <= $5
"""

# NO KEY UPDATE: closes of one partner queue, while its entries (whose settlement
# lines' foreign key share-locks the partner's key) go on meanwhile
LOCK_PARTNER = "SELECT id FROM partner WHERE program_id = $1 AND id = $2 FOR NO KEY UPDATE"

LAST_STATEMENT = """
SELECT period_end FROM partner_statement WHERE program_id = $1 AND partner_id = $2
 ORDER BY period_end DESC LIMIT 1
"""

INSERT_STATEMENT = """
INSERT INTO partner_statement (id, program_id, partner_id, period_start, period_end, sections, totals,
                               lines_count, lines_digest, chain_sequence, created_at)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9, $10, $11)
"""

_STATEMENT = """
SELECT s.*, pa.code AS partner, pa.currency, pp.recorded_at AS paid_at
  FROM partner_statement s JOIN partner pa ON pa.program_id = s.program_id AND pa.id = s.partner_id
  LEFT JOIN partner_payment pp ON pp.program_id = s.program_id AND pp.statement_id = s.id
"""

INSERT_PAYMENT = """
WITH payment AS (
    INSERT INTO partner_payment (program_id, statement_id, partner_id, points, reference, recorded_at)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (program_id, statement_id) DO NOTHING
    RETURNING points
)
UPDATE partner SET paid_points = paid_points + payment.points FROM payment
 WHERE partner.program_id = $1 AND partner.id = $3
RETURNING partner.paid_points
"""
STATEMENT = _STATEMENT + " WHERE s.program_id = $1 AND s.id = $2 AND s.partner_id = $3\n"
STATEMENTS = (
    _STATEMENT
    + " WHERE s.program_id = $1 AND s.partner_id = $2 AND s.period_end < $3"
    + " ORDER BY s.period_end DESC LIMIT $4\n"
)
ALL_STATEMENTS = _STATEMENT + " ORDER BY s.partner_id, s.period_end\n"

# verify: each partner line's points against its entry's postings on the partner's accounts
LINES_AGAINST_POSTINGS = """
SELECT l.entry_id::text, l.section, l.points,
       coalesce(sum(p.amount) FILTER (WHERE a.kind = 'partner_funding'), 0) AS funding,
       coalesce(sum(p.amount) FILTER (WHERE a.kind = 'partner_payable'), 0) AS payable
  FROM partner_line l
  LEFT JOIN posting p ON p.program_id = l.program_id AND p.entry_id = l.entry_id
  LEFT JOIN account a ON a.program_id = p.program_id AND a.id = p.account_id AND a.partner_id = l.partner_id
 GROUP BY l.program_id, l.entry_id, l.partner_id, l.section, l.points
"""

# verify: entries with a partner posting and no settlement line; lines priced
# otherwise than their rate (a refund or reversal carries the price of the line it
# undoes; a prepaid partner's earn and conversions in carry none); lines a
# statement claimed outside its period or past its chain sequence
LINES_MISSING_OR_MISPRICED = """
SELECT p.entry_id::text, a.partner_id, 'no settlement line' AS problem
  FROM posting p JOIN account a ON a.program_id = p.program_id AND a.id = p.account_id
 WHERE a.partner_id IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM partner_line l
                    WHERE l.program_id = p.program_id AND l.entry_id = p.entry_id
                      AND l.partner_id = a.partner_id)
 GROUP BY p.program_id, p.entry_id, a.partner_id
UNION ALL
SELECT l.entry_id::text, l.partner_id, 'priced otherwise than its rate'
  FROM partner_line l JOIN partner_rate r ON r.program_id = l.program_id AND r.id = l.rate_id
 WHERE l.undoes_entry_id IS NULL AND l.price_per_point IS NOT NULL
   AND (r.partner_id <> l.partner_id OR l.price_per_point <> r.price_per_point)
UNION ALL
SELECT l.entry_id::text, l.partner_id, 'priced otherwise than the line it undoes'
  FROM partner_line l
  JOIN partner_line u
    ON u.program_id = l.program_id AND u.entry_id = l.undoes_entry_id AND u.partner_id = l.partner_id
 WHERE l.price_per_point IS DISTINCT FROM u.price_per_point
UNION ALL
SELECT l.entry_id::text, l.partner_id, 'claimed outside its statement''s period or chain'
  FROM partner_line l
  JOIN partner_statement s ON s.program_id = l.program_id AND s.id = l.statement_id
  LEFT JOIN entry_chain c ON c.program_id = l.program_id AND c.entry_id = l.entry_id
 WHERE l.partner_id <> s.partner_id OR l.recorded_at >= s.period_end
    OR c.sequence IS NULL OR c.sequence > s.chain_sequence
"""

# verify: each partner's cached balances against the sums of its postings
BALANCES_AGAINST_POSTINGS = """
WITH balances AS (
    SELECT program_id, partner_id, sum(funding) AS funding, sum(payable) AS payable
      FROM partner_balance GROUP BY program_id, partner_id
), postings AS (
    SELECT a.program_id, a.partner_id,
           coalesce(sum(p.amount) FILTER (WHERE a.kind = 'partner_funding'), 0) AS funding,
           coalesce(sum(p.amount) FILTER (WHERE a.kind = 'partner_payable'), 0) AS payable
      FROM account a LEFT JOIN posting p ON p.program_id = a.program_id AND p.account_id = a.id
     WHERE a.partner_id IS NOT NULL
     GROUP BY a.program_id, a.partner_id
)
SELECT pa.code, b.funding, b.payable, coalesce(s.funding, 0) AS funding_postings,
       coalesce(s.payable, 0) AS payable_postings
  FROM partner pa
  JOIN balances b ON b.program_id = pa.program_id AND b.partner_id = pa.id
  LEFT JOIN postings s ON s.program_id = pa.program_id AND s.partner_id = pa.id
 WHERE b.funding <> coalesce(s.funding, 0) OR b.payable <> coalesce(s.payable, 0)
"""


async def period_lines(
    connection: Connection,
    program_id: int,
    partner_id: int,
    start: datetime,
    end: datetime,
    *,
    after: tuple[datetime, uuid.UUID],
    limit: int,
    chain_sequence: int | None = None,
) -> list[asyncpg.Record]:
    return await connection.fetch(
        PERIOD_LINES, program_id, partner_id, start, end, chain_sequence, after[0], after[1], limit
    )


async def statement_lines(
    connection: Connection,
    program_id: int,
    statement_id: uuid.UUID,
    *,
    after: tuple[datetime, uuid.UUID],
    limit: int,
) -> list[asyncpg.Record]:
    return await connection.fetch(STATEMENT_LINES, program_id, statement_id, after[0], after[1], limit)


async def lines_cursor(
    connection: Connection, query: str, *args: Any, prefetch: int = 5000
) -> AsyncIterator[asyncpg.Record]:
    """Every line a query selects, through a server-side cursor (the caller holds a
    transaction): memory stays flat whatever the number of lines."""
    async for row in stream(connection, query, *args, batch=prefetch):
        yield row


ALL_PERIOD_LINES = _LINE + _IN_PERIOD + " ORDER BY l.recorded_at, l.entry_id\n"
# The same lines as ALL_PERIOD_LINES summed by section in the database: each line's
# money rounded to $6 decimals first (numeric round() is half away from zero, as
# app.partners.settlement.line_money rounds), then added. The settlement endpoint
# reads these sums; statements and verify derive line by line (and digest them).
PERIOD_SECTIONS = (
    """
SELECT l.section, count(*) AS lines, sum(l.points)::bigint AS points,
       sum(CASE WHEN l.price IS NOT NULL THEN round(l.price, $6)
                WHEN l.price_per_point IS NOT NULL THEN round(l.points * l.price_per_point, $6)
                ELSE 0 END) AS money
  FROM partner_line l"""
    + _IN_PERIOD
    + " GROUP BY l.section\n"
)

ALL_STATEMENT_LINES = (
    _LINE + " WHERE l.program_id = $1 AND l.statement_id = $2 ORDER BY l.recorded_at, l.entry_id\n"
)


async def period_sections(
    connection: Connection,
    program_id: int,
    partner_id: int,
    start: datetime,
    end: datetime,
    chain_sequence: int | None,
    places: int,
) -> list[asyncpg.Record]:
    return await connection.fetch(PERIOD_SECTIONS, program_id, partner_id, start, end, chain_sequence, places)


async def lock_balance(connection: Connection, program_id: int, partner_id: int) -> int:
    """The partner's funding points, every slot of its balance locked (in slot order,
    as ledger_post() locks them) until the transaction ends."""
    funding = await connection.fetchval(
        "SELECT sum(funding) FROM (SELECT funding FROM partner_balance"
        " WHERE program_id = $1 AND partner_id = $2 ORDER BY slot FOR UPDATE) s",
        program_id,
        partner_id,
    )
    return int(funding or 0)


async def spread(connection: Connection, program_id: int, partner_id: int) -> None:
    """Share the partner's funding headroom out over its slots again (after it is
    created, or its credit limit changed)."""
    await connection.execute(SPREAD, program_id, partner_id)


async def insert_payment(
    connection: Connection,
    program_id: int,
    statement_id: uuid.UUID,
    partner_id: int,
    points: int,
    reference: str,
    now: datetime,
) -> int | None:
    """Record a statement's payment; the partner's paid points after it, or None
    when the statement was already paid."""
    paid: int | None = await connection.fetchval(
        INSERT_PAYMENT, program_id, statement_id, partner_id, points, reference, now
    )
    return paid


async def lock_partner(connection: Connection, program_id: int, partner_id: int) -> None:
    await connection.execute(LOCK_PARTNER, program_id, partner_id)


async def last_period_end(connection: Connection, program_id: int, partner_id: int) -> datetime | None:
    found: datetime | None = await connection.fetchval(LAST_STATEMENT, program_id, partner_id)
    return found


async def claim_lines(
    connection: Connection,
    program_id: int,
    partner_id: int,
    statement_id: uuid.UUID,
    period_end: datetime,
    chain_sequence: int,
) -> int:
    status = await connection.execute(
        CLAIM_LINES, program_id, partner_id, statement_id, period_end, chain_sequence
    )
    return int(status.split()[-1])


async def insert_statement(connection: Connection, fields: dict[str, Any]) -> None:
    await connection.execute(
        INSERT_STATEMENT,
        fields["id"],
        fields["program_id"],
        fields["partner_id"],
        fields["period_start"],
        fields["period_end"],
        json.dumps(fields["sections"]),
        json.dumps(fields["totals"]),
        fields["lines_count"],
        fields["lines_digest"],
        fields["chain_sequence"],
        fields["created_at"],
    )


async def statement(
    connection: Connection, program_id: int, statement_id: uuid.UUID, partner_id: int
) -> asyncpg.Record | None:
    return await connection.fetchrow(STATEMENT, program_id, statement_id, partner_id)


async def statements(
    connection: Connection, program_id: int, partner_id: int, before: datetime, limit: int
) -> list[asyncpg.Record]:
    return await connection.fetch(STATEMENTS, program_id, partner_id, before, limit)
