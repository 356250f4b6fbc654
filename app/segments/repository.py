"""SQL for RFM segments: computed from the ledger's recorded orders and refunds as
of an instant, or read from a snapshot the `snapshot-segments` job kept."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from app.db import Connection

# Every member recorded by $2 with their RFM scores over the window of $3 days
# ending at $2; members without an order in it are `lapsed`. Monetary counts the
# orders paid in $4 (the segments' currency, service._currency): net spend is
# never a sum of amounts in different currencies; orders in others still count
# for recency and frequency. Only what was
# recorded by $2 counts (orders by recorded_at, refunds by created_at), so a past
# as_of gives the same answer whenever it is asked. Each score is 1-5 by quintile:
# 1 + floor(5 * (rank - 1) / n) over the n members with an order, rank() so ties
# share a score; recency ranks fewer days higher. The segment table is
# docs/segments.md's (and SEGMENT_CASE below).
SEGMENT_CASE = """
       CASE WHEN sc.member_id IS NULL THEN 'lapsed'
            WHEN sc.r >= 4 AND sc.f >= 4 AND sc.m >= 4 THEN 'core'
            WHEN sc.m >= 4 THEN 'potential'
            WHEN sc.f >= 4 THEN 'regular'
            ELSE 'basic' END"""

RFM = f"""
WITH o AS (
     SELECT o.member_id, count(*)::int AS frequency, max(o.paid_at) AS last_paid,
            coalesce(sum(o.total) FILTER (WHERE o.currency = $4::text), 0)
            - coalesce(sum(rf.amount) FILTER (WHERE o.currency = $4::text), 0) AS monetary
       FROM paid_order o
       LEFT JOIN LATERAL (
            SELECT sum(r.amount) AS amount FROM order_refund r
             WHERE r.program_id = o.program_id AND r.paid_order_id = o.id AND r.created_at <= $2
            ) rf ON true
      WHERE o.program_id = $1 AND o.recorded_at <= $2 AND o.paid_at <= $2
        AND o.paid_at > $2 - make_interval(days => $3)
      GROUP BY o.member_id
), s AS (
     SELECT o.*, floor(extract(epoch FROM $2 - o.last_paid) / 86400)::int AS recency_days,
            count(*) OVER () AS n
       FROM o
), sc AS (
     SELECT s.member_id, s.recency_days, s.frequency, s.monetary,
            (1 + 5 * (rank() OVER (ORDER BY s.recency_days DESC) - 1) / s.n)::smallint AS r,
            (1 + 5 * (rank() OVER (ORDER BY s.frequency) - 1) / s.n)::smallint AS f,
            (1 + 5 * (rank() OVER (ORDER BY s.monetary) - 1) / s.n)::smallint AS m
       FROM s
)
SELECT mb.id AS member_id, mb.external_id, sc.recency_days, coalesce(sc.frequency, 0) AS frequency,
       coalesce(sc.monetary, 0) AS monetary, sc.r, sc.f, sc.m, {SEGMENT_CASE} AS segment
  FROM member mb LEFT JOIN sc ON sc.member_id = mb.id
 WHERE mb.program_id = $1 AND mb.created_at <= $2
"""

# The chain's sequence as of $2: the last entry it had chained by then.
CHAIN_SEQUENCE = """
SELECT coalesce(max(sequence), 0) FROM entry_chain WHERE program_id = $1 AND chained_at <= $2
"""

# The rules version in force at $2 (the last activated by then).
VERSION_AT = """
SELECT version FROM rules_activation
 WHERE program_id = $1 AND activated_at <= $2
 ORDER BY activated_at DESC, id DESC LIMIT 1
"""

# The currency most of the window's orders were paid in (ties: the first code),
# and how many orders of the window were paid in others than $4.
MOST_USED_CURRENCY = """
SELECT o.currency FROM paid_order o
 WHERE o.program_id = $1 AND o.recorded_at <= $2 AND o.paid_at <= $2
   AND o.paid_at > $2 - make_interval(days => $3)
 GROUP BY o.currency ORDER BY count(*) DESC, o.currency LIMIT 1
"""

OTHER_CURRENCY_ORDERS = """
SELECT count(*) FROM paid_order o
 WHERE o.program_id = $1 AND o.recorded_at <= $2 AND o.paid_at <= $2
   AND o.paid_at > $2 - make_interval(days => $3) AND o.currency IS DISTINCT FROM $4::text
"""

SNAPSHOT = """
SELECT as_of, window_days, chain_sequence, members, taken_at FROM segment_snapshot
 WHERE program_id = $1 AND as_of = $2
"""

COUNTS = f"""
SELECT segment, count(*) AS members FROM ({RFM}) x GROUP BY segment
"""

SNAPSHOT_COUNTS = """
SELECT segment, count(*) AS members FROM member_segment
 WHERE program_id = $1 AND as_of = $2 GROUP BY segment
"""

PAGE = f"""
SELECT * FROM ({RFM}) x WHERE x.segment = $5 AND x.member_id > $6 ORDER BY x.member_id LIMIT $7
"""

SNAPSHOT_PAGE = """
SELECT ms.member_id, mb.external_id, ms.recency_days, ms.frequency, ms.monetary, ms.r, ms.f, ms.m, ms.segment
  FROM member_segment ms JOIN member mb ON mb.program_id = ms.program_id AND mb.id = ms.member_id
 WHERE ms.program_id = $1 AND ms.as_of = $2 AND ms.segment = $3 AND ms.member_id > $4
 ORDER BY ms.member_id LIMIT $5
"""

# One snapshot, once per (program, as_of): a second run for the same as_of
# inserts nothing (the job is idempotent).
TAKE_SNAPSHOT = """
INSERT INTO segment_snapshot (program_id, as_of, window_days, chain_sequence, members, taken_at)
VALUES ($1, $2, $3, $4, 0, $5)
ON CONFLICT (program_id, as_of) DO NOTHING
RETURNING as_of
"""

FILL_SNAPSHOT = f"""
WITH ins AS (
  INSERT INTO member_segment (program_id, as_of, member_id, segment, recency_days, frequency,
                              monetary, r, f, m)
  SELECT $1, $2, x.member_id, x.segment, x.recency_days, x.frequency, x.monetary, x.r, x.f, x.m
    FROM ({RFM}) x
  RETURNING 1
)
UPDATE segment_snapshot SET members = (SELECT count(*) FROM ins)
 WHERE program_id = $1 AND as_of = $2
RETURNING members
"""


# Snapshots older than the latest one taken before $2 (the retention's cutoff):
# an order paid at or after $2 reads that one or a later one, never these.
PRUNE = """
DELETE FROM segment_snapshot s
 WHERE s.program_id = $1
   AND s.as_of < (SELECT max(k.as_of) FROM segment_snapshot k WHERE k.program_id = $1 AND k.as_of < $2)
RETURNING s.as_of
"""


async def chain_sequence(connection: Connection, program_id: int, as_of: datetime) -> int:
    value: int = await connection.fetchval(CHAIN_SEQUENCE, program_id, as_of)
    return value


async def version_at(connection: Connection, program_id: int, at: datetime) -> int | None:
    version = await connection.fetchval(VERSION_AT, program_id, at)
    return None if version is None else int(version)


async def most_used_currency(
    connection: Connection, program_id: int, as_of: datetime, window_days: int
) -> str | None:
    found: str | None = await connection.fetchval(MOST_USED_CURRENCY, program_id, as_of, window_days)
    return found


async def other_currency_orders(
    connection: Connection, program_id: int, as_of: datetime, window_days: int, currency: str | None
) -> int:
    return int(await connection.fetchval(OTHER_CURRENCY_ORDERS, program_id, as_of, window_days, currency))


async def snapshot(connection: Connection, program_id: int, as_of: datetime) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await connection.fetchrow(SNAPSHOT, program_id, as_of)
    return row


async def counts(
    connection: Connection,
    program_id: int,
    as_of: datetime,
    window_days: int,
    currency: str | None,
    from_snapshot: bool,
) -> dict[str, int]:
    if from_snapshot:
        rows = await connection.fetch(SNAPSHOT_COUNTS, program_id, as_of)
    else:
        rows = await connection.fetch(COUNTS, program_id, as_of, window_days, currency)
    return {row["segment"]: row["members"] for row in rows}


async def page(
    connection: Connection,
    program_id: int,
    as_of: datetime,
    window_days: int,
    currency: str | None,
    from_snapshot: bool,
    *,
    segment: str,
    after: int,
    limit: int,
) -> list[asyncpg.Record]:
    rows: list[Any]
    if from_snapshot:
        rows = await connection.fetch(SNAPSHOT_PAGE, program_id, as_of, segment, after, limit)
    else:
        rows = await connection.fetch(PAGE, program_id, as_of, window_days, currency, segment, after, limit)
    return rows


async def take_snapshot(
    connection: Connection,
    program_id: int,
    as_of: datetime,
    window_days: int,
    currency: str | None,
    now: datetime,
) -> int | None:
    """Members snapshotted, or None when a snapshot for this as_of already exists."""
    async with connection.transaction():
        sequence = await chain_sequence(connection, program_id, as_of)
        taken = await connection.fetchval(TAKE_SNAPSHOT, program_id, as_of, window_days, sequence, now)
        if taken is None:
            return None
        members: int = await connection.fetchval(FILL_SNAPSHOT, program_id, as_of, window_days, currency)
        return members


async def prune(connection: Connection, program_id: int, cutoff: datetime) -> int:
    """Snapshots deleted (their members' rows go with them, ON DELETE CASCADE)."""
    return len(await connection.fetch(PRUNE, program_id, cutoff))
