"""The reports' SQL: every figure is read by recorded time (`recorded_at` of the
posting, the entry, the order, the refund, the member), so a past instant or
period reads the same whatever was written since.

Indexes (docs/reports.md, Speed): a period's postings and orders are read through
`ix_posting_program_id_recorded_at` and `ix_paid_order_program_id_recorded_at`;
the rolled days of a period come from report_day_figure (app/reports/rollups.py),
so the ledger is read only for what the rollups do not cover yet."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from operator import itemgetter
from typing import cast

import asyncpg

from app.db import Connection
from app.reports.lots import KeptLot, KeptUse, LotVersion, Taking, UseVersion

# The rules version in force at an instant: the last one activated by then.
VERSION_AT = """
SELECT version FROM rules_activation
 WHERE program_id = $1 AND activated_at <= $2
 ORDER BY activated_at DESC, id DESC LIMIT 1
"""

# Members' points per account kind recorded from $3 up to $2 (inclusive).
BALANCES_AT = """
SELECT a.kind, coalesce(sum(p.amount), 0) AS points
  FROM posting p
  JOIN account a ON a.program_id = p.program_id AND a.id = p.account_id
 WHERE p.program_id = $1 AND p.member_id IS NOT NULL AND p.recorded_at <= $2 AND p.recorded_at >= $3
 GROUP BY a.kind
"""

# Members whose available, pending and held points add up to more than zero at $2.
HOLDERS_AT = """
SELECT count(*) FROM (
    SELECT p.member_id
      FROM posting p
      JOIN account a ON a.program_id = p.program_id AND a.id = p.account_id
     WHERE p.program_id = $1 AND p.member_id IS NOT NULL AND p.recorded_at <= $2
       AND a.kind IN ('available', 'pending', 'held')
     GROUP BY p.member_id
    HAVING sum(p.amount) > 0
) holders
"""


# The program's entries, among those recorded before $2 (and from $4 on, in
# LOT_CHANGES_SINCE), that changed some member's available points, with what a
# lot replay needs: ledger_lot_changes() (app/sql/functions/ledger_lot_changes.sql),
# the same history `verify` and rebuild-lots replay.
#
# In the order the replay takes them: by the local day ($3, a timezone) they
# were recorded on, then in commit order (the last posting's id). The day comes
# first so that a replay kept at a day's end (report_lot) and carried on with
# the days after it takes the entries in the same order as a replay of the whole
# history: an entry recorded just before midnight may commit after one recorded
# just after it.
_LOT_CHANGES = """
SELECT entry_id AS id, kind, recorded_at, source_entry_id AS source, reversed_kind, expires_at,
       member_ids, changes
  FROM ledger_lot_changes(p_program_id => $1, p_from => {start}, p_before => $2)
 ORDER BY (recorded_at AT TIME ZONE $3)::date, last_posting_id
"""

# The program's entries recorded before $2.
LOT_CHANGES_BEFORE = _LOT_CHANGES.format(start="NULL")

# The program's entries recorded in [$4, $2): what the rollup job replays on top
# of the lots kept at the last rolled day's end, and a report on top of those kept
# at the end of the rolled day before $4.
LOT_CHANGES_SINCE = _LOT_CHANGES.format(start="$4")

# The lots and lot uses of the members $2 as kept at the end of the rolled day $3
# (report_lot, report_lot_use: app/reports/lots.py CohortBook.versions()): each
# lot's and use's last version on or before that day. The uses that still hold
# points; the lots with points left or held by one of those uses ($5, $6: member
# and seq), or every lot when $4 (the job: a member's new lots number after all
# its lots, so that each lot keeps its own versions). A report replaying some
# entries needs no more than the lots with points left (what a debit takes from)
# and the uses of the entries those entries undo (SOURCE_USES, $4: what a credit
# gives back to): a member's lots taken by redemptions are held for as long as a
# redemption may be reversed, most of its lots.
KEPT_LOTS = """
SELECT member_id, seq, entry_id, cohort, expires_at, remaining FROM (
    SELECT DISTINCT ON (member_id, seq) member_id, seq, entry_id, cohort, expires_at, remaining
      FROM report_lot
     WHERE program_id = $1 AND member_id = ANY($2::bigint[]) AND day <= $3
     ORDER BY member_id, seq, day DESC
) lot
 WHERE $4 OR remaining > 0 OR (member_id, seq) IN (SELECT * FROM unnest($5::bigint[], $6::bigint[]))
"""
KEPT_USES = """
SELECT member_id, entry_id, seq, taking, points FROM (
    SELECT DISTINCT ON (member_id, entry_id, seq) member_id, entry_id, seq, taking, points
      FROM report_lot_use
     WHERE program_id = $1 AND member_id = ANY($2::bigint[]) AND day <= $3
     ORDER BY member_id, entry_id, seq, day DESC
) used
 WHERE points > 0
"""
SOURCE_USES = """
SELECT member_id, entry_id, seq, taking, points FROM (
    SELECT DISTINCT ON (member_id, entry_id, seq) member_id, entry_id, seq, taking, points
      FROM report_lot_use
     WHERE program_id = $1 AND member_id = ANY($2::bigint[]) AND entry_id = ANY($4::uuid[]) AND day <= $3
     ORDER BY member_id, entry_id, seq, day DESC
) used
 WHERE points > 0
"""
LOT_VERSIONS = """
SELECT member_id, seq, day, entry_id, cohort, expires_at, remaining FROM report_lot WHERE program_id = $1
"""
USE_VERSIONS = """
SELECT member_id, entry_id, seq, day, taking, points FROM report_lot_use WHERE program_id = $1
"""

# How many more members hold points at $3 (inclusive) than before $2: over the
# members with a posting in between (a change of debt alone leaves both counts
# alike), their whole history read by the member index (posting.member_id without
# the heap: member ids are the program's own) and their available, pending and
# held accounts looked up by member (not every such account of the program).
HOLDERS_CHANGE = """
WITH touched AS MATERIALIZED (
    SELECT DISTINCT p.member_id
      FROM posting p
     WHERE p.program_id = $1 AND p.member_id IS NOT NULL AND p.recorded_at >= $2 AND p.recorded_at <= $3
), accounts AS MATERIALIZED (
    SELECT a.id
      FROM touched t JOIN account a ON a.program_id = $1 AND a.member_id = t.member_id
     WHERE a.kind IN ('available', 'pending', 'held')
), balance AS (
    SELECT p.member_id, coalesce(sum(p.amount) FILTER (WHERE p.recorded_at < $2), 0) AS before,
           sum(p.amount) AS after
      FROM touched t
      JOIN posting p ON p.member_id = t.member_id
     WHERE p.member_id IS NOT NULL AND p.recorded_at <= $3 AND p.account_id IN (SELECT id FROM accounts)
     GROUP BY p.member_id
)
SELECT (count(*) FILTER (WHERE after > 0) - count(*) FILTER (WHERE before > 0))::bigint FROM balance
"""

# ---- the rollups (app/reports/rollups.py)

ROLLED_PROGRAMS = "SELECT program_id FROM report_rollup ORDER BY program_id"

ROLLUP_STATE = """
SELECT timezone, first_day, rolled_through FROM report_rollup WHERE program_id = $1
"""

SAVE_ROLLUP = """
INSERT INTO report_rollup (program_id, timezone, first_day, rolled_through, rolled_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (program_id) DO UPDATE
   SET rolled_through = excluded.rolled_through, rolled_at = excluded.rolled_at
"""

INSERT_FIGURES = """
INSERT INTO report_day_figure (program_id, day, figure, key, value)
SELECT $1, x.day, x.figure, x.key, x.value
  FROM unnest($2::date[], $3::text[], $4::text[], $5::numeric[]) AS x(day, figure, key, value)
"""

DAY_FIGURES = """
SELECT day, figure, key, value FROM report_day_figure
 WHERE program_id = $1 AND day BETWEEN $2 AND $3 AND figure = ANY($4::text[])
"""

DAY_FIGURES_ALL = """
SELECT day, figure, key, value FROM report_day_figure
 WHERE program_id = $1 AND day BETWEEN $2 AND $3
"""

FIGURE_SUMS = """
SELECT figure, key, sum(value) AS value FROM report_day_figure
 WHERE program_id = $1 AND day <= $2 AND figure = ANY($3::text[])
 GROUP BY figure, key
"""

# Members' points per account kind and local day ($4) recorded in [$2, $3).
DAY_BALANCES = """
SELECT (p.recorded_at AT TIME ZONE $4)::date AS day, a.kind, sum(p.amount) AS points
  FROM posting p
  JOIN account a ON a.program_id = p.program_id AND a.id = p.account_id
 WHERE p.program_id = $1 AND p.member_id IS NOT NULL AND p.recorded_at >= $2 AND p.recorded_at < $3
 GROUP BY 1, 2
"""

# Per local day ($4) from $2 to $3: members who came to hold points (available,
# pending and held above zero) that day less those who stopped. Only members
# whose points changed in [$2, $3) can: their history alone is summed (a day's
# run reads that day's members, not every member's history).
DAY_HOLDERS = """
WITH touched AS (
    SELECT DISTINCT p.member_id
      FROM posting p
      JOIN account a ON a.program_id = p.program_id AND a.id = p.account_id
     WHERE p.program_id = $1 AND p.member_id IS NOT NULL AND p.recorded_at >= $2 AND p.recorded_at < $3
       AND a.kind IN ('available', 'pending', 'held')
), member_day AS (
    SELECT p.member_id, (p.recorded_at AT TIME ZONE $4)::date AS day, sum(p.amount) AS change
      FROM posting p
      JOIN account a ON a.program_id = p.program_id AND a.id = p.account_id
     WHERE p.program_id = $1 AND p.member_id IN (SELECT member_id FROM touched) AND p.recorded_at < $3
       AND a.kind IN ('available', 'pending', 'held')
     GROUP BY 1, 2
), running AS (
    SELECT day, change, sum(change) OVER (PARTITION BY member_id ORDER BY day) AS after FROM member_day
)
SELECT day, sum((after > 0)::int - (after - change > 0)::int)::bigint AS holders
  FROM running WHERE day >= ($2 AT TIME ZONE $4)::date
 GROUP BY day
"""

# The first instant the program recorded anything the reports read.
FIRST_RECORDED = """
SELECT least((SELECT min(recorded_at) FROM posting WHERE program_id = $1),
             (SELECT min(recorded_at) FROM paid_order WHERE program_id = $1),
             (SELECT min(created_at) FROM order_refund WHERE program_id = $1))
"""

ACTIVE_TIMEZONE = """
SELECT coalesce(document ->> 'timezone', 'UTC') FROM rules_version WHERE program_id = $1 AND active
"""

# How long the oldest transaction still running in this database (but this one) has run.
OLDEST_TRANSACTION_AGE = """
SELECT max(clock_timestamp() - xact_start) FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL
   AND backend_type = 'client backend'
"""

# Each entry recorded in [$2, $3): its kind (a reversal: the reversed entry's), the
# net change of members' available, pending and held points, whether a partner
# funded it, and its bucket: the local time ($5) truncated to $4 (day, week, month).
ENTRY_NETS = """
WITH entry_net AS (
    SELECT p.entry_id,
           coalesce(sum(p.amount) FILTER (WHERE a.kind IN ('available', 'pending', 'held')), 0)::bigint
               AS member_net,
           bool_or(a.kind = 'partner_funding') AS partner
      FROM posting p
      JOIN account a ON a.program_id = p.program_id AND a.id = p.account_id
     WHERE p.program_id = $1 AND p.recorded_at >= $2 AND p.recorded_at < $3
     GROUP BY p.entry_id
)
SELECT date_trunc($4, e.recorded_at AT TIME ZONE $5) AS bucket,
       coalesce(r.kind, e.kind) AS kind, e.reverses_entry_id IS NOT NULL AS reversal,
       n.partner, sum(n.member_net) AS points
  FROM entry_net n
  JOIN journal_entry e ON e.program_id = $1 AND e.id = n.entry_id
  LEFT JOIN journal_entry r ON r.program_id = $1 AND r.id = e.reverses_entry_id
 GROUP BY 1, 2, 3, 4
"""

# Orders recorded in [$2, $3), by bucket and currency: how many, their total.
ORDERS = """
SELECT date_trunc($4, o.recorded_at AT TIME ZONE $5) AS bucket, o.currency,
       count(*) AS orders, sum(o.total) AS total, count(DISTINCT o.member_id) AS members
  FROM paid_order o
 WHERE o.program_id = $1 AND o.recorded_at >= $2 AND o.recorded_at < $3
 GROUP BY 1, 2
"""

# Refunds recorded in [$2, $3), by bucket and currency: the amounts given back.
REFUNDS = """
SELECT date_trunc($4, r.created_at AT TIME ZONE $5) AS bucket, o.currency, sum(r.amount) AS amount
  FROM order_refund r
  JOIN paid_order o ON o.program_id = r.program_id AND o.id = r.paid_order_id
 WHERE r.program_id = $1 AND r.created_at >= $2 AND r.created_at < $3
 GROUP BY 1, 2
"""

# Members enrolled in [$2, $3) and recorded by $3 (an import later of members
# enrolled back then does not change a past period), by bucket.
NEW_MEMBERS = """
SELECT date_trunc($4, m.enrolled_at AT TIME ZONE $5) AS bucket, count(*) AS members
  FROM member m
 WHERE m.program_id = $1 AND m.enrolled_at >= $2 AND m.enrolled_at < $3 AND m.created_at < $3
 GROUP BY 1
"""

# Members enrolled (and recorded) before $2.
ENROLLED_BEFORE = """
SELECT count(*) FROM member WHERE program_id = $1 AND enrolled_at < $2 AND created_at < $2
"""

# Members active in [$2, $3), by bucket: an order, or an entry of one of the kinds $6
# (events, redemptions, holds, conversions, transfers) on their accounts.
ACTIVE_MEMBERS = """
WITH activity AS (
    SELECT o.member_id, o.recorded_at FROM paid_order o
     WHERE o.program_id = $1 AND o.recorded_at >= $2 AND o.recorded_at < $3
    UNION ALL
    SELECT p.member_id, p.recorded_at
      FROM posting p JOIN journal_entry e ON e.program_id = p.program_id AND e.id = p.entry_id
     WHERE p.program_id = $1 AND p.recorded_at >= $2 AND p.recorded_at < $3
       AND p.member_id IS NOT NULL AND e.kind = ANY($6::text[])
)
SELECT date_trunc($4, recorded_at AT TIME ZONE $5) AS bucket, count(DISTINCT member_id) AS members
  FROM activity GROUP BY 1
"""

# The same over the whole period: how many members.
ACTIVE_MEMBERS_TOTAL = """
SELECT count(*) FROM (
    SELECT o.member_id FROM paid_order o
     WHERE o.program_id = $1 AND o.recorded_at >= $2 AND o.recorded_at < $3
    UNION
    SELECT p.member_id
      FROM posting p JOIN journal_entry e ON e.program_id = p.program_id AND e.id = p.entry_id
     WHERE p.program_id = $1 AND p.recorded_at >= $2 AND p.recorded_at < $3
       AND p.member_id IS NOT NULL AND e.kind = ANY($4::text[])
) active
"""

# Members with 1+ and 2+ orders recorded in [$2, $3).
REPEAT_BUYERS = """
SELECT count(*) AS buyers, count(*) FILTER (WHERE orders >= 2) AS repeat_buyers FROM (
    SELECT member_id, count(*) AS orders FROM paid_order
     WHERE program_id = $1 AND recorded_at >= $2 AND recorded_at < $3
     GROUP BY member_id
) buyers
"""

# ---- members' activity by day (report_member_day, app/reports/rollups.py)

# Each member's activity per local day ($4) recorded in [$2, $3), as facts: `active`
# (an order, or an entry of the kinds $5 on their accounts: the activity report's
# active members), `participating` (an order, or the kinds $6: the overview's) and
# `orders` (their orders); `count` how many that day. Each fact links to the
# member's day of the same fact before it (`previous_day`, its `previous_count`)
# and the one before that (`previous2_day`), rows before the day $7 read from
# report_member_day: a distinct count over days is then a count of rows whose
# previous day lies before them (docs/reports.md, Speed).
MEMBER_DAYS = """
WITH activity AS (
    SELECT o.member_id, o.recorded_at, true AS ordered, NULL::text AS kind FROM paid_order o
     WHERE o.program_id = $1 AND o.recorded_at >= $2 AND o.recorded_at < $3
    UNION ALL
    SELECT p.member_id, p.recorded_at, false, e.kind
      FROM posting p JOIN journal_entry e ON e.program_id = p.program_id AND e.id = p.entry_id
     WHERE p.program_id = $1 AND p.recorded_at >= $2 AND p.recorded_at < $3
       AND p.member_id IS NOT NULL AND (e.kind = ANY($5::text[]) OR e.kind = ANY($6::text[]))
), by_day AS (
    SELECT member_id, (recorded_at AT TIME ZONE $4)::date AS day, ordered, kind FROM activity
), facts AS (
    SELECT 'active' AS fact, member_id, day, count(*) AS count FROM by_day
     WHERE ordered OR kind = ANY($5::text[]) GROUP BY member_id, day
    UNION ALL
    SELECT 'participating', member_id, day, count(*) FROM by_day
     WHERE ordered OR kind = ANY($6::text[]) GROUP BY member_id, day
    UNION ALL
    SELECT 'orders', member_id, day, count(*) FROM by_day WHERE ordered GROUP BY member_id, day
), before AS (
    SELECT DISTINCT ON (r.fact, r.member_id) r.fact, r.member_id, r.day, r.count, r.previous_day
      FROM report_member_day r
     WHERE r.program_id = $1 AND r.day < $7
       AND (r.fact, r.member_id) IN (SELECT DISTINCT fact, member_id FROM facts)
     ORDER BY r.fact, r.member_id, r.day DESC
), chained AS (
    SELECT fact, member_id, day, count, previous_day AS kept_previous, true AS kept FROM before
    UNION ALL
    SELECT fact, member_id, day, count, NULL, false FROM facts
), linked AS (
    SELECT fact, member_id, day, count, kept,
           CASE WHEN kept THEN kept_previous ELSE lag(day) OVER w END AS previous_day,
           lag(count) OVER w AS previous_count
      FROM chained WINDOW w AS (PARTITION BY fact, member_id ORDER BY day)
), twice AS (
    SELECT fact, member_id, day, count, kept, previous_day, previous_count,
           lag(previous_day) OVER (PARTITION BY fact, member_id ORDER BY day) AS previous2_day
      FROM linked
)
SELECT fact, member_id, day, count, previous_day, previous_count, previous2_day FROM twice WHERE NOT kept
"""

MEMBER_DAY_COLUMNS = "fact, member_id, day, count, previous_day, previous_count, previous2_day"

INSERT_MEMBER_DAYS = f"""
INSERT INTO report_member_day (program_id, {MEMBER_DAY_COLUMNS})
SELECT $1, {MEMBER_DAY_COLUMNS} FROM ({MEMBER_DAYS}) computed
"""

STORED_MEMBER_DAYS = f"""
SELECT {MEMBER_DAY_COLUMNS} FROM report_member_day WHERE program_id = $1 AND day BETWEEN $2 AND $3
"""

# Per bucket (the rolled day truncated to $5: day, week, month, year) of the days
# $3 .. $4: how many members have the fact $2 in the bucket's days (a member's
# first day of it there: the day before it was before the bucket or $3).
MEMBER_DAY_BUCKETS = """
SELECT date_trunc($5, day::timestamp) AS bucket,
       count(*) FILTER (WHERE previous_day IS NULL
                           OR previous_day < greatest(date_trunc($5, day::timestamp)::date, $3)) AS members
  FROM report_member_day
 WHERE program_id = $1 AND fact = $2 AND day BETWEEN $3 AND $4
 GROUP BY 1
"""

# Over the days $3 .. $4: how many members have the fact $2.
MEMBER_DAY_TOTAL = """
SELECT count(*) FILTER (WHERE previous_day IS NULL OR previous_day < $3) FROM report_member_day
 WHERE program_id = $1 AND fact = $2 AND day BETWEEN $3 AND $4
"""

# Over the days $2 .. $3: members with an order, and with two or more (their first
# day there had two, or their second day there follows a first with one).
BUYER_DAYS = """
SELECT count(*) FILTER (WHERE previous_day IS NULL OR previous_day < $2) AS buyers,
       count(*) FILTER (WHERE (previous_day IS NULL OR previous_day < $2) AND count >= 2)
     + count(*) FILTER (WHERE previous_day >= $2 AND (previous2_day IS NULL OR previous2_day < $2)
                          AND previous_count = 1) AS repeat_buyers
  FROM report_member_day
 WHERE program_id = $1 AND fact = 'orders' AND day BETWEEN $2 AND $3
"""

# The days $4 .. $5 with the fact $2 of the members $3, and their count.
MEMBERS_DAYS = """
SELECT member_id, day, count FROM report_member_day
 WHERE program_id = $1 AND fact = $2 AND member_id = ANY($3::bigint[]) AND day BETWEEN $4 AND $5
"""

# Members with an order, or an entry of the kinds $6, recorded in [$2, $3), and
# how many orders they had: by bucket ($4 of local time $5).
MEMBERS_ACTIVE = """
WITH activity AS (
    SELECT o.member_id, o.recorded_at, 1 AS orders FROM paid_order o
     WHERE o.program_id = $1 AND o.recorded_at >= $2 AND o.recorded_at < $3
    UNION ALL
    SELECT p.member_id, p.recorded_at, 0
      FROM posting p JOIN journal_entry e ON e.program_id = p.program_id AND e.id = p.entry_id
     WHERE p.program_id = $1 AND p.recorded_at >= $2 AND p.recorded_at < $3
       AND p.member_id IS NOT NULL AND e.kind = ANY($6::text[])
)
SELECT date_trunc($4, recorded_at AT TIME ZONE $5) AS bucket, member_id, sum(orders)::bigint AS orders
  FROM activity GROUP BY 1, 2
"""

# A `cost.cap_exceeded` already written for a period (the data names it).
CAP_EVENT = """
SELECT 1 FROM event_log
 WHERE program_id = $1 AND type = 'cost.cap_exceeded' AND data ->> 'from' = $2 AND data ->> 'to' = $3
"""


async def version_at(connection: Connection, program_id: int, at: datetime) -> int | None:
    version = await connection.fetchval(VERSION_AT, program_id, at)
    return None if version is None else int(version)


async def balances_at(
    connection: Connection, program_id: int, at: datetime, since: datetime
) -> dict[str, int]:
    rows = await connection.fetch(BALANCES_AT, program_id, at, since)
    return {row["kind"]: int(row["points"]) for row in rows}


async def holders_at(connection: Connection, program_id: int, at: datetime) -> int:
    return int(await connection.fetchval(HOLDERS_AT, program_id, at))


async def lot_changes_before(
    connection: Connection, program_id: int, before: datetime, timezone: str
) -> list[asyncpg.Record]:
    return list(await connection.fetch(LOT_CHANGES_BEFORE, program_id, before, timezone))


async def lot_changes_since(
    connection: Connection, program_id: int, start: datetime, before: datetime, timezone: str
) -> list[asyncpg.Record]:
    return list(await connection.fetch(LOT_CHANGES_SINCE, program_id, before, timezone, start))


async def kept_lots(
    connection: Connection,
    program_id: int,
    members: list[int],
    day: date,
    sources: list[uuid.UUID] | None = None,
) -> tuple[list[KeptLot], list[KeptUse]]:
    """The lots and uses kept for these members at the end of the rolled `day`:
    every lot and the uses that hold points, or (sources) the lots with points
    left and the uses of those entries."""
    if sources is None:
        uses = await connection.fetch(KEPT_USES, program_id, members, day)
    else:
        uses = await connection.fetch(SOURCE_USES, program_id, members, day, sources)
    held = ([row[0] for row in uses], [row[2] for row in uses])
    lots = await connection.fetch(KEPT_LOTS, program_id, members, day, sources is None, *held)
    return (
        [(row[0], row[1], row[2], row[3], row[4], row[5]) for row in lots],
        [(row[0], row[1], row[2], cast(Taking, row[3]), row[4]) for row in uses],
    )


async def lot_versions(connection: Connection, program_id: int) -> tuple[list[LotVersion], list[UseVersion]]:
    """Every version of the program's kept lots and uses."""
    lots = await connection.fetch(LOT_VERSIONS, program_id)
    uses = await connection.fetch(USE_VERSIONS, program_id)
    return (
        [(row[0], row[1], row[2], row[3], row[4], row[5], row[6]) for row in lots],
        [(row[0], row[1], row[2], row[3], cast(Taking, row[4]), row[5]) for row in uses],
    )


async def keep_lots(
    connection: Connection,
    program_id: int,
    first: bool,
    lots: list[LotVersion],
    uses: list[UseVersion],
) -> None:
    """Add these versions of the kept lots and uses (on the program's first run,
    in place of any it had), in each member's order: a report reads a member's
    versions together, from a few pages rather than one page for each day."""
    lots = sorted(lots, key=itemgetter(0, 1, 2))
    uses = sorted(uses, key=itemgetter(0, 1, 2, 3))
    if first:
        await connection.execute("DELETE FROM report_lot WHERE program_id = $1", program_id)
        await connection.execute("DELETE FROM report_lot_use WHERE program_id = $1", program_id)
    await connection.copy_records_to_table(
        "report_lot",
        records=[(program_id, *lot) for lot in lots],
        columns=["program_id", "member_id", "seq", "day", "entry_id", "cohort", "expires_at", "remaining"],
    )
    await connection.copy_records_to_table(
        "report_lot_use",
        records=[(program_id, *use) for use in uses],
        columns=["program_id", "member_id", "entry_id", "seq", "day", "taking", "points"],
    )


async def holders_change(connection: Connection, program_id: int, start: datetime, at: datetime) -> int:
    return int(await connection.fetchval(HOLDERS_CHANGE, program_id, start, at))


async def entry_nets(
    connection: Connection, program_id: int, start: datetime, end: datetime, unit: str, timezone: str
) -> list[asyncpg.Record]:
    return list(await connection.fetch(ENTRY_NETS, program_id, start, end, unit, timezone))


async def orders(
    connection: Connection, program_id: int, start: datetime, end: datetime, unit: str, timezone: str
) -> list[asyncpg.Record]:
    return list(await connection.fetch(ORDERS, program_id, start, end, unit, timezone))


async def refunds(
    connection: Connection, program_id: int, start: datetime, end: datetime, unit: str, timezone: str
) -> list[asyncpg.Record]:
    return list(await connection.fetch(REFUNDS, program_id, start, end, unit, timezone))


async def new_members(
    connection: Connection, program_id: int, start: datetime, end: datetime, unit: str, timezone: str
) -> list[asyncpg.Record]:
    return list(await connection.fetch(NEW_MEMBERS, program_id, start, end, unit, timezone))


async def enrolled_before(connection: Connection, program_id: int, end: datetime) -> int:
    return int(await connection.fetchval(ENROLLED_BEFORE, program_id, end))


async def active_members(
    connection: Connection,
    program_id: int,
    start: datetime,
    end: datetime,
    unit: str,
    timezone: str,
    kinds: list[str],
) -> list[asyncpg.Record]:
    return list(await connection.fetch(ACTIVE_MEMBERS, program_id, start, end, unit, timezone, kinds))


async def active_members_total(
    connection: Connection, program_id: int, start: datetime, end: datetime, kinds: list[str]
) -> int:
    return int(await connection.fetchval(ACTIVE_MEMBERS_TOTAL, program_id, start, end, kinds))


async def repeat_buyers(
    connection: Connection, program_id: int, start: datetime, end: datetime
) -> tuple[int, int]:
    row = await connection.fetchrow(REPEAT_BUYERS, program_id, start, end)
    assert row is not None
    return int(row["buyers"]), int(row["repeat_buyers"])


async def cap_event_written(connection: Connection, program_id: int, start: str, end: str) -> bool:
    return await connection.fetchval(CAP_EVENT, program_id, start, end) is not None


def decimal(value: object) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value or 0))
