"""All SQL about orders and refunds."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from app.db import Connection, stream
from app.ledger.entries import Leg, PartnerLine
from app.rules.tier_machine import TierDecision

# Everything the rules need to know about the member, and the balance row's version
# that ledger_post_order() checks, in one round trip. Earned points are summed per
# local day over the three UTC dates around `paid_at`, since the active rules'
# timezone (and so the order's local day) is only known once this row is read.
# A daily cap, and "first order", count the orders of the same earner: the
# program's own orders, or one partner's ($5). When the caller already knows the
# active rules, it also asks for the member's activity in the windows an upgrade
# is judged on ($6 starts, $7 ends), unless they hold the top tier ($8): the
# checkout then needs no third round trip for tiers. The member's RFM segment is
# the one in the latest segment snapshot taken before the order's paid_at ($9).
ORDER_FACTS = """
SELECT m.id AS member_id, m.birthday, m.status, b.version, b.debt, r.version AS rules_version,
       t.tier_code AS tier,
       h.found IS NOT NULL AS has_orders, d.days, d.points, m.referred_by_member_id,
       a.orders AS window_orders, a.spend AS window_spend, a.points AS window_points,
       a.referrals AS window_referrals, sg.segment
  FROM member m
  JOIN member_balance b ON b.program_id = m.program_id AND b.member_id = m.id
  JOIN rules_version r ON r.program_id = m.program_id AND r.active
  LEFT JOIN member_tier t ON t.program_id = m.program_id AND t.member_id = m.id
  -- a LIMIT 1 lateral, not EXISTS: PostgreSQL may answer an EXISTS by hashing all
  -- of paid_order when it expects several member rows
  LEFT JOIN LATERAL (
       SELECT true AS found FROM paid_order o
        WHERE o.program_id = m.program_id AND o.member_id = m.id
          AND o.partner_id IS NOT DISTINCT FROM $5
        LIMIT 1
       ) h ON true
 CROSS JOIN LATERAL (
       SELECT array_agg(x.local_day) AS days, array_agg(x.points) AS points
         FROM (SELECT o.local_day, sum(o.points)::bigint AS points
                 FROM paid_order o
                WHERE o.program_id = m.program_id AND o.member_id = m.id AND o.local_day BETWEEN $3 AND $4
                  AND o.partner_id IS NOT DISTINCT FROM $5
                GROUP BY o.local_day) x
       ) d
 CROSS JOIN LATERAL (
       SELECT array_agg(w.orders ORDER BY w.n) AS orders, array_agg(w.spend ORDER BY w.n) AS spend,
              array_agg(w.points ORDER BY w.n) AS points, array_agg(w.referrals ORDER BY w.n) AS referrals
         FROM tier_activity(p_program_id => m.program_id,
                            p_members => array_fill(m.id, ARRAY[cardinality($6::timestamptz[])]),
                            p_starts => $6, p_ends => $7) w
        WHERE $6 IS NOT NULL AND t.tier_code IS DISTINCT FROM $8
       ) a
  -- the member's segment in the latest snapshot taken before paid_at ($9)
  LEFT JOIN LATERAL (
       SELECT ms.segment FROM member_segment ms
        WHERE ms.program_id = m.program_id AND ms.member_id = m.id
          AND ms.as_of = (SELECT max(ss.as_of) FROM segment_snapshot ss
                           WHERE ss.program_id = m.program_id AND ss.as_of < $9::timestamptz)
       ) sg ON true
 WHERE m.program_id = $1 AND m.external_id = $2
"""
# The member's segment for an order paid at $3, as ORDER_FACTS reads it.
MEMBER_SEGMENT = """
SELECT ms.segment FROM member_segment ms
 WHERE ms.program_id = $1 AND ms.member_id = $2
   AND ms.as_of = (SELECT max(ss.as_of) FROM segment_snapshot ss WHERE ss.program_id = $1 AND ss.as_of < $3)
"""
# The member's balance row, held until the caller's transaction ends: taken in a
# statement of its own before the facts are read, so that they (the member's
# status too) are read after the lock, as the lock's last holder left them.
LOCK_MEMBER_BALANCE = """
SELECT 1 FROM member_balance b
  JOIN member m ON m.program_id = b.program_id AND m.id = b.member_id
 WHERE m.program_id = $1 AND m.external_id = $2
   FOR UPDATE OF b
"""
# A partner's order ($5): the same facts and the partner's earn rate in force at $10.
PARTNER_ORDER_FACTS = ORDER_FACTS.replace(
    "SELECT m.id AS member_id,", "SELECT pr.id AS rate_id, pr.price_per_point, m.id AS member_id,"
).replace(
    " WHERE m.program_id = $1 AND m.external_id = $2",
    """  LEFT JOIN LATERAL (
       SELECT r.id, r.price_per_point FROM partner_rate r
        WHERE r.program_id = m.program_id AND r.partner_id = $5 AND r.kind = 'earn'
          AND r.effective_from <= $10
        ORDER BY r.effective_from DESC LIMIT 1) pr ON true
 WHERE m.program_id = $1 AND m.external_id = $2""",
)


def _with_referrals(query: str) -> str:
    # Rules whose tiers name `referrals`: the windows count the member's referees
    # too. A separate text rather than a parameter, so that for every other program
    # the function inlines with p_referrals false and plans exactly as before.
    plain = "p_starts => $6, p_ends => $7)"
    return query.replace(plain, plain[:-1] + ", p_referrals => true)")


_SEGMENT_JOIN = ORDER_FACTS[
    ORDER_FACTS.index("  -- the member's segment") : ORDER_FACTS.index(" WHERE m.program_id = $1 AND")
]


def _without_segment(query: str) -> str:
    # Rules that name no `when: {segment}`: the segment is not read at all (the
    # order's recorded facts then leave it out, and a what-if replay looks it up).
    # The lookup (a max() over the program's snapshots and an index probe, planned
    # on every execution) cost 9-18% of the facts read's PostgreSQL CPU (bench/facts.py).
    # paid_at ($9) is then no parameter: a partner's rate instant moves to $9.
    query = query.replace(_SEGMENT_JOIN, "").replace(", sg.segment\n", ", NULL::text AS segment\n")
    assert "$9" not in query
    return query.replace("$10", "$9")


# (partner's order, with referrals, with the segment) -> the facts query
_FACTS_QUERIES = {
    (partner, referrals, segment): (
        (_with_referrals(query) if referrals else query)
        if segment
        else _without_segment(_with_referrals(query) if referrals else query)
    )
    for partner, query in {False: ORDER_FACTS, True: PARTNER_ORDER_FACTS}.items()
    for referrals in (False, True)
    for segment in (False, True)
}
assert all("p_referrals => true" in q for (_, r, _), q in _FACTS_QUERIES.items() if r)
assert all(("segment_snapshot" in q) == s for (_, _, s), q in _FACTS_QUERIES.items())
assert all("sg.segment" not in q for (_, _, s), q in _FACTS_QUERIES.items() if not s)


def facts_query(*, partner: bool, referrals: bool, segment: bool) -> str:
    """The facts query member_facts() sends (bench/facts.py times it)."""
    return _FACTS_QUERIES[partner, referrals, segment]


# app/sql/functions/ledger_post_order.sql states the contract.
POST_ORDER = """
SELECT outcome, request_fingerprint, response_body
  FROM ledger_post_order(
       p_entry_id => $1, p_program_id => $2, p_member_id => $3, p_expected_version => $4,
       p_order_id => $5, p_idempotency_key => $6, p_request_fingerprint => $7, p_paid_at => $8,
       p_recorded_at => $9, p_actor_key_id => $10, p_rules_version => $11, p_local_day => $12,
       p_currency => $13, p_total => $14, p_channel => $15, p_lines => $16::jsonb, p_facts => $17::jsonb,
       p_segments => $18::jsonb, p_explanation => $19::jsonb, p_points => $20, p_pending_until => $21,
       p_expires_at => $22, p_members => $23, p_accounts => $24, p_amounts => $25,
       p_response_body => $26, p_tier => $27::jsonb, p_partner_id => $28, p_partners => $29,
       p_partner_line => $30::jsonb, p_budget_charges => $31::jsonb)
"""

# An order as recorded, with what the read endpoints show of it: the answer it got
# (its breakdown), whether its points still wait in pending, its refunds.
_RECORDED_ORDER = """
SELECT o.id, o.order_id, pa.code AS partner, m.external_id AS member, o.currency, o.total, o.lines,
       o.channel, o.paid_at, o.recorded_at, o.rules_version, o.points, o.points_taken_back, o.entry_id,
       e.pending_until, r.response_body,
       EXISTS (SELECT 1 FROM pending_credit c
                WHERE c.program_id = o.program_id AND c.entry_id = o.entry_id
                  AND c.activated_at IS NULL AND c.remaining > 0) AS pending,
       (SELECT coalesce(json_agg(json_build_object(
                   'refund_id', f.refund_id, 'amount', f.amount::text, 'points_reversed', f.points,
                   'created_at', f.created_at) ORDER BY f.id), '[]')
          FROM order_refund f WHERE f.program_id = o.program_id AND f.paid_order_id = o.id) AS refunds
  FROM paid_order o
  JOIN member m ON m.program_id = o.program_id AND m.id = o.member_id
  LEFT JOIN partner pa ON pa.program_id = o.program_id AND pa.id = o.partner_id
  LEFT JOIN journal_entry e ON e.program_id = o.program_id AND e.id = o.entry_id
  LEFT JOIN idempotency_record r ON r.program_id = o.program_id AND r.key = o.idempotency_key
"""
RECORDED_ORDER = (
    _RECORDED_ORDER
    + " WHERE o.program_id = $1 AND o.order_id = $2 AND o.partner_id IS NOT DISTINCT FROM $3\n"
)
MEMBER_ORDERS = (
    _RECORDED_ORDER
    + " WHERE o.program_id = $1 AND o.member_id = $2 AND (o.paid_at, o.id) < ($3, $4)"
    + " ORDER BY o.paid_at DESC, o.id DESC LIMIT $5\n"
)

STORED_ORDER = """
SELECT o.request_fingerprint, r.response_body
  FROM paid_order o
  LEFT JOIN idempotency_record r ON r.program_id = o.program_id AND r.key = o.idempotency_key
 WHERE o.program_id = $1 AND o.order_id = $2 AND o.partner_id IS NOT DISTINCT FROM $3
"""

ORDER_FOR_REFUND = """
SELECT o.id, o.program_id, o.order_id, o.partner_id, o.member_id, m.external_id AS member, o.entry_id,
       o.rules_version,
       o.currency, o.total, o.lines, o.points, o.segments, o.refund_state, o.points_taken_back,
       o.budget_charges,
       (SELECT version FROM rules_version WHERE program_id = o.program_id AND active) AS active_rules_version,
       -- a partner's order: the price its points were given out at
       (SELECT l.price_per_point FROM partner_line l
         WHERE l.program_id = o.program_id AND l.entry_id = o.entry_id AND l.partner_id = o.partner_id)
           AS earn_price_per_point,
       (SELECT l.rate_id FROM partner_line l
         WHERE l.program_id = o.program_id AND l.entry_id = o.entry_id AND l.partner_id = o.partner_id)
           AS earn_rate_id,
       -- the entry that put the order's points in lots: its activation, or itself
       coalesce((SELECT c.activation_entry_id FROM pending_credit c
                  WHERE c.program_id = o.program_id AND c.entry_id = o.entry_id
                    AND c.member_id = o.member_id),
                o.entry_id) AS lot_entry_id
  FROM paid_order o JOIN member m ON m.program_id = o.program_id AND m.id = o.member_id
 WHERE o.program_id = $1 AND o.order_id = $2 AND o.partner_id IS NOT DISTINCT FROM $3
   FOR UPDATE OF o
"""

STORED_REFUND = """
SELECT f.request_fingerprint, r.response_body
  FROM order_refund f
  JOIN idempotency_record r ON r.program_id = f.program_id AND r.key = f.idempotency_key
 WHERE f.program_id = $1 AND f.paid_order_id = $2 AND f.refund_id = $3
"""

LOCK_PENDING_CREDIT = """
SELECT id, remaining FROM pending_credit WHERE program_id = $1 AND entry_id = $2 AND member_id = $3 FOR UPDATE
"""

TAKE_FROM_PENDING_CREDIT = (
    "UPDATE pending_credit SET remaining = remaining - $3 WHERE program_id = $1 AND id = $2"
)

LOCK_BALANCE = (
    "SELECT available, debt FROM member_balance WHERE program_id = $1 AND member_id = $2 FOR UPDATE"
)

RECORD_REFUND = """
WITH refund AS (
    INSERT INTO order_refund (program_id, paid_order_id, refund_id, idempotency_key, request_fingerprint,
                              entry_id, amount, points, from_pending, from_available, shortfall, debt,
                              created_at, budget_returns)
    VALUES ($15, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $16::jsonb)
)
UPDATE paid_order SET refund_state = $13::jsonb, points_taken_back = $14, refunded_total = refunded_total + $6
 WHERE program_id = $15 AND id = $1
"""


# Orders paid in a period, in the order they were recorded, with the facts the
# rules saw and what they earned: the input of a what-if replay. An order placed
# under rules that named no segment did not read it (its facts have no `segment`):
# the replay takes the member's segment in the latest snapshot before paid_at among
# those taken by the time the order was recorded, as the order would have read it.
# An imported order (facts {"imported": source}) had no segment and keeps none. A
# replay under rules that name no segment ($4 false) needs none: no lookup.
PAST_ORDERS = """
SELECT o.member_id, pa.code AS partner, o.total, o.currency, o.paid_at, o.lines, o.channel, o.facts,
       o.points,
       CASE WHEN NOT $4 OR o.facts ? 'segment' OR o.facts ? 'imported' THEN o.facts->>'segment'
            ELSE (SELECT ms.segment FROM member_segment ms
                   WHERE ms.program_id = o.program_id AND ms.member_id = o.member_id
                     AND ms.as_of = (SELECT max(ss.as_of) FROM segment_snapshot ss
                                      WHERE ss.program_id = o.program_id AND ss.as_of < o.paid_at
                                        AND ss.taken_at <= o.recorded_at))
       END AS segment
  FROM paid_order o LEFT JOIN partner pa ON pa.program_id = o.program_id AND pa.id = o.partner_id
 WHERE o.program_id = $1 AND o.paid_at >= $2 AND o.paid_at < $3
 ORDER BY o.id
"""

# Member events that occurred in a period and still count (not reversed), in the
# order they were recorded: the what-if's replay of event points and streaks.
PAST_EVENTS = """
SELECT v.member_id, v.type, v.occurred_at, v.points + v.referrer_points AS points
  FROM member_event v
 WHERE v.program_id = $1 AND v.occurred_at >= $2 AND v.occurred_at < $3
   AND NOT EXISTS (SELECT 1 FROM journal_entry r
                    WHERE r.program_id = v.program_id AND r.reverses_entry_id = v.entry_id)
 ORDER BY v.id
"""

# What each rule gave the same orders, summed from their entries' explanations.
PAST_POINTS_BY_RULE = """
SELECT line->>'rule' AS rule, sum((line->>'points')::bigint)::bigint AS points
  FROM paid_order o
  JOIN journal_entry e ON e.program_id = o.program_id AND e.id = o.entry_id
 CROSS JOIN LATERAL jsonb_array_elements(e.explanation) AS line
 WHERE o.program_id = $1 AND o.paid_at >= $2 AND o.paid_at < $3
 GROUP BY 1
"""


@dataclass(frozen=True, slots=True)
class MemberFacts:
    member_id: int
    birthday: date | None
    status: str  # read with `version`: a status change moves the version on
    version: int
    debt: int  # the debt account's balance: zero or negative
    rules_version: int
    has_orders: bool
    earned_by_day: dict[date, int]
    tier: str | None = None
    segment: str | None = None  # in the latest segment snapshot before paid_at
    segment_read: bool = True  # False: not looked up (the rules read named no segment)
    # (orders, spend, points, referrals) in each window asked for; None when not
    # asked, or when the member holds the top tier
    window_activity: tuple[tuple[int, Decimal, int, int], ...] | None = None
    referred_by_member_id: int | None = None
    # a partner's order: its earn rate in force, if any
    rate_id: int | None = None
    price_per_point: Decimal | None = None


async def member_facts(
    connection: Connection,
    program_id: int,
    member: str,
    first_day: date,
    last_day: date,
    *,
    lock: bool = False,
    partner_id: int | None = None,
    now: datetime | None = None,
    windows: Sequence[tuple[datetime | None, datetime]] | None = None,
    top_tier: str | None = None,
    referrals: bool = False,
    segment: bool = True,
    paid_at: datetime | None = None,
) -> MemberFacts | None:
    """The member's facts for an order; `segment=False` leaves the segment unread
    (None, and `segment_read` false), for rules that name none."""
    starts = None if windows is None else [start for start, _ in windows]
    ends = None if windows is None else [end for _, end in windows]
    if lock:
        await connection.execute(LOCK_MEMBER_BALANCE, program_id, member)
    query = facts_query(partner=partner_id is not None, referrals=referrals, segment=segment)
    arguments: list[Any] = [program_id, member, first_day, last_day, partner_id, starts, ends, top_tier]
    if segment:
        arguments.append(paid_at)
    if partner_id is not None:
        arguments.append(now)
    row = await connection.fetchrow(query, *arguments)
    if row is None:
        return None
    days = row["days"] or []
    points = row["points"] or []
    window_activity = None
    if row["window_orders"] is not None:
        window_activity = tuple(
            zip(
                row["window_orders"],
                row["window_spend"],
                row["window_points"],
                row["window_referrals"],
                strict=True,
            )
        )
    return MemberFacts(
        member_id=row["member_id"],
        birthday=row["birthday"],
        status=row["status"],
        version=row["version"],
        debt=row["debt"],
        rules_version=row["rules_version"],
        has_orders=row["has_orders"],
        earned_by_day=dict(zip(days, points, strict=True)),
        tier=row["tier"],
        segment=row["segment"],
        segment_read=segment,
        window_activity=window_activity,
        referred_by_member_id=row["referred_by_member_id"],
        rate_id=row["rate_id"] if partner_id is not None else None,
        price_per_point=row["price_per_point"] if partner_id is not None else None,
    )


async def member_segment(
    connection: Connection, program_id: int, member_id: int, paid_at: datetime
) -> str | None:
    segment: str | None = await connection.fetchval(MEMBER_SEGMENT, program_id, member_id, paid_at)
    return segment


@dataclass(frozen=True, slots=True)
class NewOrder:
    entry_id: uuid.UUID
    program_id: int
    member_id: int
    expected_version: int
    order_id: str
    idempotency_key: str
    request_fingerprint: str
    paid_at: datetime
    recorded_at: datetime
    actor_key_id: uuid.UUID | None
    rules_version: int
    local_day: date
    currency: str
    total: Decimal
    channel: str | None
    lines: list[dict[str, Any]]
    facts: dict[str, Any]
    segments: list[dict[str, str]]
    explanation: list[dict[str, Any]]
    points: int
    pending_until: datetime | None
    legs: tuple[Leg, ...]  # the earn entry's postings; none when the order earns nothing
    response_body: bytes
    expires_at: datetime | None = None  # the lot's expiry, when the points are available or activate
    tier: TierDecision | None = None  # the member's upgrade this order makes
    partner_id: int | None = None  # a partner's order: the partner that funds it
    partner_line: PartnerLine | None = None  # its settlement line
    # what it takes from campaign budgets (app/rules/budgets.py charge_json()), or None
    budget_charges: list[dict[str, Any]] | None = None


# A group of orders' members (Database.grouped): their balance rows, in ascending
# member id as every writer locks them; $1 each order's program, $2 its member's id.
LOCK_MEMBERS = """
SELECT count(*) FROM (
    SELECT 1 FROM member_balance b
      JOIN unnest($1::bigint[], $2::bigint[]) AS k(program_id, member_id)
        ON b.program_id = k.program_id AND b.member_id = k.member_id
     ORDER BY b.member_id
       FOR UPDATE OF b) AS locked
"""


def post_order_args(order: NewOrder) -> tuple[Any, ...]:
    """POST_ORDER's parameters for `order`."""
    return (
        order.entry_id,
        order.program_id,
        order.member_id,
        order.expected_version,
        order.order_id,
        order.idempotency_key,
        order.request_fingerprint,
        order.paid_at,
        order.recorded_at,
        order.actor_key_id,
        order.rules_version,
        order.local_day,
        order.currency,
        order.total,
        order.channel,
        json.dumps(order.lines),
        json.dumps(order.facts),
        json.dumps(order.segments),
        json.dumps(order.explanation),
        order.points,
        order.pending_until,
        order.expires_at,
        [leg.member for leg in order.legs],
        [leg.account for leg in order.legs],
        [leg.amount for leg in order.legs],
        order.response_body,
        None if order.tier is None else json.dumps(order.tier.as_json()),  # tier_apply()'s element
        order.partner_id,
        None if order.partner_id is None else [leg.partner for leg in order.legs],
        None if order.partner_line is None else json.dumps(order.partner_line.to_json()),
        None if order.budget_charges is None else json.dumps(order.budget_charges),
    )


async def post_order(connection: Connection, order: NewOrder) -> asyncpg.Record:
    row = await connection.fetchrow(POST_ORDER, *post_order_args(order))
    assert row is not None
    return row


async def recorded_order(
    connection: Connection, program_id: int, order_id: str, partner_id: int | None = None
) -> asyncpg.Record | None:
    return await connection.fetchrow(RECORDED_ORDER, program_id, order_id, partner_id)


async def member_orders(
    connection: Connection, program_id: int, member_id: int, *, before: tuple[datetime, int], limit: int
) -> list[asyncpg.Record]:
    return await connection.fetch(MEMBER_ORDERS, program_id, member_id, before[0], before[1], limit)


async def stored_order(
    connection: Connection, program_id: int, order_id: str, partner_id: int | None = None
) -> asyncpg.Record | None:
    return await connection.fetchrow(STORED_ORDER, program_id, order_id, partner_id)


async def order_for_refund(
    connection: Connection, program_id: int, order_id: str, partner_id: int | None = None
) -> asyncpg.Record | None:
    """The order, locked until the end of the caller's transaction."""
    return await connection.fetchrow(ORDER_FOR_REFUND, program_id, order_id, partner_id)


async def stored_refund(
    connection: Connection, program_id: int, paid_order_id: int, refund_id: str
) -> asyncpg.Record | None:
    return await connection.fetchrow(STORED_REFUND, program_id, paid_order_id, refund_id)


async def lock_pending_credit(
    connection: Connection, program_id: int, entry_id: uuid.UUID, member_id: int
) -> asyncpg.Record | None:
    return await connection.fetchrow(LOCK_PENDING_CREDIT, program_id, entry_id, member_id)


async def take_from_pending_credit(
    connection: Connection, program_id: int, credit_id: int, points: int
) -> None:
    await connection.execute(TAKE_FROM_PENDING_CREDIT, program_id, credit_id, points)


async def lock_balance(connection: Connection, program_id: int, member_id: int) -> asyncpg.Record:
    row = await connection.fetchrow(LOCK_BALANCE, program_id, member_id)
    assert row is not None
    return row


async def member_status(connection: Connection, program_id: int, member_id: int) -> str:
    """The member's status; read after lock_balance(), in a statement of its own, it is
    the status as the balance-row lock's last holder left it (a closing takes it too)."""
    return str(
        await connection.fetchval(
            "SELECT status FROM member WHERE program_id = $1 AND id = $2", program_id, member_id
        )
    )


@dataclass(frozen=True, slots=True)
class NewRefund:
    program_id: int
    paid_order_id: int
    refund_id: str
    idempotency_key: str
    request_fingerprint: str
    entry_id: uuid.UUID | None
    amount: Decimal
    points: int
    from_pending: int
    from_available: int
    shortfall: int
    debt: int
    created_at: datetime
    refund_state: dict[str, Any]
    points_taken_back: int
    # what it gave back to campaign budgets: [{budget, points}], or None
    budget_returns: list[dict[str, Any]] | None = None


async def record_refund(connection: Connection, refund: NewRefund) -> None:
    await connection.execute(
        RECORD_REFUND,
        refund.paid_order_id,
        refund.refund_id,
        refund.idempotency_key,
        refund.request_fingerprint,
        refund.entry_id,
        refund.amount,
        refund.points,
        refund.from_pending,
        refund.from_available,
        refund.shortfall,
        refund.debt,
        refund.created_at,
        json.dumps(refund.refund_state),
        refund.points_taken_back,
        refund.program_id,
        None if refund.budget_returns is None else json.dumps(refund.budget_returns),
    )


def past_orders(
    connection: Connection,
    program_id: int,
    start: datetime,
    end: datetime,
    *,
    segments: bool = True,
    prefetch: int = 2000,
) -> AsyncIterator[asyncpg.Record]:
    """A server-side cursor (the caller holds a transaction): memory stays flat.
    `segments=False` (rules that name none) leaves unread segments unread."""
    return stream(connection, PAST_ORDERS, program_id, start, end, segments, batch=prefetch)


def past_events(
    connection: Connection, program_id: int, start: datetime, end: datetime, *, prefetch: int = 2000
) -> AsyncIterator[asyncpg.Record]:
    """A server-side cursor, like past_orders()."""
    return stream(connection, PAST_EVENTS, program_id, start, end, batch=prefetch)


async def past_points_by_rule(
    connection: Connection, program_id: int, start: datetime, end: datetime
) -> dict[str, int]:
    rows = await connection.fetch(PAST_POINTS_BY_RULE, program_id, start, end)
    return {row["rule"]: row["points"] for row in rows}
