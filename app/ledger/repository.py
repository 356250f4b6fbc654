"""All SQL of the ledger. Postings go through ledger_post() (app/sql/functions/ledger_post.sql)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from app.db import Connection, stream
from app.ledger.entries import NewEntry, Posted

# app/sql/functions/ledger_post.sql states the contract.
POST = """
SELECT replayed, request_fingerprint, status_code, response_body
  FROM ledger_post(p_entry_id => $1, p_program_id => $2, p_kind => $3, p_idempotency_key => $4,
                   p_request_fingerprint => $5, p_occurred_at => $6, p_recorded_at => $7,
                   p_actor_key_id => $8, p_reverses_entry_id => $9, p_reason => $10, p_order_id => $11,
                   p_rules_version => $12, p_expires_at => $13, p_pending_until => $14,
                   p_metadata => $15::jsonb, p_members => $16, p_accounts => $17, p_amounts => $18,
                   p_explanation => $19::jsonb, p_response_body => $20, p_source_entry_id => $21,
                   p_partners => $22, p_partner_line => $23::jsonb, p_member_check => $24)
"""

# A group of awards' members (Database.grouped): their balance rows, in ascending
# member id as ledger_post() locks them; $1 each award's program, $2 its member.
LOCK_MEMBERS = """
SELECT count(*) FROM (
    SELECT 1 FROM member_balance b
      JOIN member m ON m.program_id = b.program_id AND m.id = b.member_id
      JOIN unnest($1::bigint[], $2::text[]) AS k(program_id, external_id)
        ON m.program_id = k.program_id AND m.external_id = k.external_id
     ORDER BY b.member_id
       FOR UPDATE OF b) AS locked
"""

KEEP_RESPONSE = """
INSERT INTO idempotency_record (program_id, key, request_fingerprint, status_code, response_body, created_at)
VALUES ($1, $2, $3, 201, $4, $5)
ON CONFLICT DO NOTHING
"""

STORED_RESPONSE = """
SELECT request_fingerprint, status_code, response_body
  FROM idempotency_record WHERE program_id = $1 AND key = $2
"""

# One entry as the ledger POSTs answer it: its fields, then each posting with the
# member's balances right after the entry (equal on all of one member's postings).
# entries by id, each with its postings (in order) and its place in the chain
ENTRIES = """
SELECT e.id, e.kind, e.occurred_at, e.recorded_at, e.reason, e.order_id, e.reverses_entry_id,
       e.rules_version, e.expires_at, e.pending_until, e.metadata, e.idempotency_key, e.source_entry_id,
       m.external_id AS member, p.member_id, a.kind AS account, p.amount, a.partner_id, pa.code AS partner,
       p.available_after, p.pending_after, p.held_after, c.sequence, c.hash
  FROM journal_entry e
  JOIN posting p ON p.program_id = e.program_id AND p.entry_id = e.id
  JOIN account a ON a.program_id = p.program_id AND a.id = p.account_id
  LEFT JOIN partner pa ON pa.program_id = a.program_id AND pa.id = a.partner_id
  LEFT JOIN member m ON m.program_id = p.program_id AND m.id = p.member_id
  LEFT JOIN entry_chain c ON c.program_id = e.program_id AND c.entry_id = e.id
 WHERE e.program_id = $1 AND e.id = ANY($2::uuid[])
 ORDER BY p.id
"""

MEMBER_ID = "SELECT id FROM member WHERE program_id = $1 AND external_id = $2"

# Each entry puts at most four postings on one member (available, pending, held,
# debt), and they are contiguous in id order: the member's balance row lock is
# held while they are written. So a page of n entries is within 4n+1 postings
# ($4), read from the member's index alone; only the postings of its first $5
# entries (n, and one more to tell whether a page follows) are then joined to
# their entries, chain links and accounts. Joining all 4n+1 probed the journal and
# the chain up to four times per entry shown, and those probes, each to a page of
# its own in tables that grow with the ledger, were most of a page's time
# (bench/growth.py, docs/performance.md "Reads as the ledger grows").
STATEMENT = """
WITH recent AS MATERIALIZED (
    SELECT p.id, p.entry_id, p.account_id, p.amount, p.available_after, p.pending_after, p.held_after
      FROM posting p
     WHERE p.program_id = $1 AND p.member_id = $2 AND p.id < $3
     ORDER BY p.id DESC
     LIMIT $4
), shown AS MATERIALIZED (
    SELECT r.* FROM recent r
     WHERE r.entry_id IN (SELECT g.entry_id FROM recent g
                           GROUP BY g.entry_id ORDER BY max(g.id) DESC LIMIT $5)
)
SELECT p.id AS posting_id, p.entry_id, a.kind AS account, p.amount,
       p.available_after, p.pending_after, p.held_after,
       e.kind, e.occurred_at, e.recorded_at, e.reason, e.order_id, e.reverses_entry_id,
       e.rules_version, e.metadata, e.explanation, c.sequence, c.hash
  FROM shown p
  JOIN account a ON a.program_id = $1 AND a.id = p.account_id
  JOIN journal_entry e ON e.program_id = $1 AND e.id = p.entry_id
  LEFT JOIN entry_chain c ON c.program_id = $1 AND c.entry_id = p.entry_id
 ORDER BY p.id DESC
"""

BALANCE_NOW = """
SELECT b.available, b.pending, b.held
  FROM member m JOIN member_balance b ON b.program_id = m.program_id AND b.member_id = m.id
 WHERE m.program_id = $1 AND m.external_id = $2
"""

# The member's last posting of an entry recorded by then. The posting's own copy of
# recorded_at keeps this inside the member's postings (an index-only scan of
# ix_posting_member_id_id): joining each entry instead probed the whole journal once
# per posting since `as_of`, which grew with the ledger (bench/growth.py).
BALANCE_AS_OF = """
SELECT available_after, pending_after, held_after
  FROM posting
 WHERE program_id = $1 AND member_id = $2 AND recorded_at <= $3
 ORDER BY id DESC
 LIMIT 1
"""


# Pending credits due at `as_of`, oldest first, locked; SKIP LOCKED lets two job
# runs (or a run and a refund of one of these orders) work side by side.
DUE_PENDING_CREDITS = """
SELECT c.id, c.program_id, c.member_id, c.remaining, c.pending_until, m.external_id AS member,
       e.order_id, e.rules_version, e.expires_at
  FROM pending_credit c
  JOIN member m ON m.program_id = c.program_id AND m.id = c.member_id
  JOIN journal_entry e ON e.program_id = c.program_id AND e.id = c.entry_id
 WHERE c.remaining > 0 AND c.pending_until <= $1 AND ($2::bigint IS NULL OR c.program_id = $2)
 ORDER BY c.pending_until, c.id
 LIMIT $3
   FOR UPDATE OF c SKIP LOCKED
"""

# Members' balance rows, locked in member id order (as ledger_post() locks them);
# then, in a statement of its own, their statuses as the locks' last holders left
# them (a closing takes the same lock).
LOCK_BALANCES = """
SELECT b.member_id FROM member_balance b
  JOIN unnest($1::bigint[], $2::bigint[]) AS x(program_id, member_id)
    ON b.program_id = x.program_id AND b.member_id = x.member_id
 ORDER BY b.member_id
   FOR UPDATE OF b
"""
MEMBER_STATUSES = """
SELECT m.id, m.status FROM member m
  JOIN unnest($1::bigint[], $2::bigint[]) AS x(program_id, member_id)
    ON m.program_id = x.program_id AND m.id = x.member_id
"""

MARK_ACTIVATED = """
UPDATE pending_credit c SET remaining = 0, activated_at = $3, activation_entry_id = x.entry_id
  FROM unnest($1::bigint[], $2::bigint[], $4::uuid[]) AS x(program_id, id, entry_id)
 WHERE c.program_id = x.program_id AND c.id = x.id
"""


def post_args(entry: NewEntry, response_body: bytes | None = None) -> tuple[Any, ...]:
    """POST's parameters for `entry`."""
    return (
        entry.id,
        entry.program_id,
        entry.kind,
        entry.idempotency_key,
        entry.request_fingerprint,
        entry.occurred_at,
        entry.recorded_at,
        entry.actor_key_id,
        entry.reverses,
        entry.reason,
        entry.order_id,
        entry.rules_version,
        entry.expires_at,
        entry.pending_until,
        json.dumps(entry.metadata or {}),
        [leg.member for leg in entry.legs],
        [leg.account for leg in entry.legs],
        [leg.amount for leg in entry.legs],
        None if entry.explanation is None else json.dumps(entry.explanation),
        response_body,
        entry.source_entry_id,
        [leg.partner for leg in entry.legs] if any(leg.partner for leg in entry.legs) else None,
        None if entry.partner_line is None else json.dumps(entry.partner_line.to_json()),
        entry.member_check,
    )


def posted(row: asyncpg.Record) -> Posted:
    """POST's answer."""
    return Posted(row["replayed"], row["request_fingerprint"], row["status_code"], row["response_body"])


async def post(connection: Connection, entry: NewEntry, *, response_body: bytes | None = None) -> Posted:
    row = await connection.fetchrow(POST, *post_args(entry, response_body))
    assert row is not None
    return posted(row)


async def keep_response(
    connection: Connection, program_id: int, key: str, fingerprint: str, body: bytes, now: datetime
) -> bool:
    """Keep a response with no entry behind it; False if the key is already taken."""
    status = await connection.execute(KEEP_RESPONSE, program_id, key, fingerprint, body, now)
    return bool(status.endswith(" 1"))


async def stored_response(connection: Connection, program_id: int, key: str) -> asyncpg.Record | None:
    return await connection.fetchrow(STORED_RESPONSE, program_id, key)


async def entries(
    connection: Connection, program_id: int, entry_ids: list[uuid.UUID]
) -> list[asyncpg.Record]:
    return await connection.fetch(ENTRIES, program_id, entry_ids)


async def member_id(connection: Connection, program_id: int, external_id: str) -> int | None:
    value = await connection.fetchval(MEMBER_ID, program_id, external_id)
    return None if value is None else int(value)


async def statement_postings(
    connection: Connection, program_id: int, member_id: int, *, before_posting_id: int, entries: int
) -> list[asyncpg.Record]:
    """The member's postings before `before_posting_id`, newest first, of its next
    `entries` entries (the last one possibly cut short), each with its entry."""
    return await connection.fetch(
        STATEMENT, program_id, member_id, before_posting_id, 4 * entries + 1, entries
    )


async def balance_now(connection: Connection, program_id: int, external_id: str) -> asyncpg.Record | None:
    return await connection.fetchrow(BALANCE_NOW, program_id, external_id)


async def balance_as_of(
    connection: Connection, program_id: int, member_id: int, as_of: datetime
) -> asyncpg.Record | None:
    return await connection.fetchrow(BALANCE_AS_OF, program_id, member_id, as_of)


async def due_pending_credits(
    connection: Connection, program_id: int | None, as_of: datetime, limit: int
) -> list[asyncpg.Record]:
    return await connection.fetch(DUE_PENDING_CREDITS, as_of, program_id, limit)


async def mark_activated(
    connection: Connection,
    credits: list[tuple[int, int]],
    entry_ids: list[uuid.UUID],
    now: datetime,
) -> None:
    """Each credit, by (program_id, id), activated by the entry at the same place."""
    await connection.execute(
        MARK_ACTIVATED, [program for program, _ in credits], [credit for _, credit in credits], now, entry_ids
    )


# app/sql/functions/ledger_expire.sql states the contract.
EXPIRE_BATCH = """
SELECT members, lots, points
  FROM ledger_expire(p_program_id => $1, p_member_ids => $2, p_as_of => $3, p_recorded_at => $4,
                     p_rules_version => $5, p_inactivity_months => $6, p_timezone => $7, p_entry_ids => $8)
"""

# Who the expire job looks at, in member id order, each read through an index on a
# date rather than by reading every member (ledger_expire() checks each exactly):
# members with a lot past its date ($2), and under an inactivity policy those who
# may have been inactive for long enough (last order, or enrolment, at or before
# `possibly`: InactivityCutoffs.possibly) and hold points. The inactive are found
# among the members whose last activity reached the cutoff since the last run
# (after its `inactive_through`) and those whose points moved in a transaction
# since it began (its txid): everyone else with an old last activity lost their
# points then and has been given none since (JobWatermark). Without a watermark
# every member with points is looked at, as the job always did.
_DUE_LOTS = """
    SELECT l.member_id FROM point_lot l
     WHERE l.program_id = $1 AND l.remaining > 0 AND l.expires_at <= $2
"""
EXPIRY_DUE = f"""
SELECT coalesce(array_agg(member_id ORDER BY member_id), '{{}}') FROM ({_DUE_LOTS}) due
"""
# With a watermark, in two steps: first who may have become inactive since the last
# run (three narrow ranges of indexed dates and txids), then which of them did, one
# primary-key lookup each. As one query the planner joined the two the other way
# round whenever the statistics put one row in a range (a range at the newest end of
# a date, or after an UPDATE the statistics had not seen): 10,000 candidates each
# compared with 5,000 members, 50 million comparisons, 330 s for 1% of 1,000,000
# members due (bench.due).
EXPIRY_REACHED_THE_CUTOFF = """
SELECT coalesce(array_agg(DISTINCT member_id), '{}') FROM (
    SELECT o.member_id FROM paid_order o
     WHERE o.program_id = $1 AND o.paid_at > $2 AND o.paid_at <= $3
    UNION ALL
    SELECT m.id FROM member m
     WHERE m.program_id = $1 AND m.enrolled_at > $2 AND m.enrolled_at <= $3
    UNION ALL
    SELECT p.member_id FROM journal_entry e
      JOIN posting p ON p.program_id = e.program_id AND p.entry_id = e.id
     WHERE e.program_id = $1 AND e.txid >= $4 AND p.member_id IS NOT NULL AND p.amount > 0
) reached
"""
# Which of the members ($2) may be inactive as of the cutoff $3 and hold points:
# no order paid after it (local_day bounds the index range; two days of slack for
# any time zone), enrolled at or before it.
_INACTIVE_HOLDING_POINTS = """
    SELECT m.id AS member_id
      FROM {members}
      JOIN member_balance b ON b.program_id = m.program_id AND b.member_id = m.id
     WHERE m.program_id = $1 AND b.available > 0 AND m.enrolled_at <= $3
       AND NOT EXISTS (SELECT 1 FROM paid_order o
                        WHERE o.program_id = m.program_id AND o.member_id = m.id
                          AND o.local_day >= ($3 AT TIME ZONE 'UTC')::date - 2
                          AND o.paid_at > $3)
"""
EXPIRY_INACTIVE_AMONG = f"""
SELECT coalesce(array_agg(member_id ORDER BY member_id), '{{}}') FROM (
    {
    _INACTIVE_HOLDING_POINTS.format(
        members="unnest($2::bigint[]) s(member_id) JOIN member m ON m.program_id = $1 AND m.id = s.member_id"
    )
}
) inactive
"""
EXPIRY_DUE_OR_INACTIVE = f"""
SELECT coalesce(array_agg(member_id ORDER BY member_id), '{{}}') FROM (
    {_DUE_LOTS}
    UNION
    {_INACTIVE_HOLDING_POINTS.format(members="member m")}
) due
"""

EXPIRING_LOTS = """
SELECT l.expires_at, sum(l.remaining)::bigint AS points
  FROM point_lot l
 WHERE l.program_id = $1 AND l.member_id = $2 AND l.remaining > 0 AND l.expires_at IS NOT NULL
 GROUP BY l.expires_at
 ORDER BY l.expires_at
 LIMIT $3
"""

# When the member last showed activity for an inactivity policy: their last order,
# or their enrolment if they never ordered (ledger_expire() reads it the same way).
LAST_ACTIVITY = """
SELECT greatest(m.enrolled_at, (SELECT max(o.paid_at) FROM paid_order o
                                 WHERE o.program_id = m.program_id AND o.member_id = m.id))
           AS last_activity,
       b.available
  FROM member m JOIN member_balance b ON b.program_id = m.program_id AND b.member_id = m.id
 WHERE m.program_id = $1 AND m.id = $2
"""


@dataclass(frozen=True, slots=True)
class ExpiredBatch:
    members: int
    lots: int
    points: int


async def expire_batch(
    connection: Connection,
    *,
    program_id: int,
    member_ids: list[int],
    as_of: datetime,
    now: datetime,
    rules_version: int,
    inactivity_months: int | None,
    timezone: str,
    entry_ids: list[uuid.UUID],
) -> ExpiredBatch:
    row = await connection.fetchrow(
        EXPIRE_BATCH,
        program_id,
        member_ids,
        as_of,
        now,
        rules_version,
        inactivity_months,
        timezone,
        entry_ids,
    )
    assert row is not None
    return ExpiredBatch(row["members"], row["lots"], row["points"])


async def expiry_candidates(
    connection: Connection,
    program_id: int,
    as_of: datetime,
    *,
    possibly_inactive: datetime | None,
    inactive_through: datetime | None,
    since_txid: int | None,
) -> list[int]:
    """The members the expire job looks at, in id order (EXPIRY_DUE...)."""
    if possibly_inactive is None:
        return list(await connection.fetchval(EXPIRY_DUE, program_id, as_of))
    if inactive_through is None or since_txid is None:
        return list(await connection.fetchval(EXPIRY_DUE_OR_INACTIVE, program_id, as_of, possibly_inactive))
    due = await connection.fetchval(EXPIRY_DUE, program_id, as_of)
    reached = await connection.fetchval(
        EXPIRY_REACHED_THE_CUTOFF, program_id, inactive_through, possibly_inactive, since_txid
    )
    inactive = await connection.fetchval(EXPIRY_INACTIVE_AMONG, program_id, reached, possibly_inactive)
    return sorted(set(due) | set(inactive))


async def expiring_lots(
    connection: Connection, program_id: int, member_id: int, limit: int
) -> list[asyncpg.Record]:
    return await connection.fetch(EXPIRING_LOTS, program_id, member_id, limit)


async def last_activity(connection: Connection, program_id: int, member_id: int) -> tuple[datetime, int]:
    row = await connection.fetchrow(LAST_ACTIVITY, program_id, member_id)
    assert row is not None
    return row["last_activity"], row["available"]


# -- job watermarks (app/ledger/jobs.py) ------------------------------------------------------

# The id below which every transaction of this database has ended: the snapshot's
# xmax, or the oldest transaction it saw running unless that one is provably in
# another database (its own lock names a backend connected to another). Another
# database's long transaction (a report, a benchmark) cannot write here, and would
# otherwise hold the watermark back for as long as it runs; a transaction that ended
# since the snapshot, or a prepared one, stays in (its rows are then read anyway).
# pg_locks and pg_stat_activity's pid and datname are visible to every role.
SNAPSHOT_TXID = """
SELECT least(pg_snapshot_xmax(s.snapshot)::text::bigint,
             (SELECT min(x::text::bigint)
                FROM pg_snapshot_xip(s.snapshot) AS x
               WHERE NOT EXISTS (
                     SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                      WHERE l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' AND l.granted
                        AND l.transactionid::text::bigint = x::text::bigint % 4294967296
                        AND a.datname <> current_database())))
  FROM (SELECT pg_current_snapshot() AS snapshot) s
"""

WATERMARK = """
SELECT rules_version, as_of, ran_at, txid, inactive_through
  FROM job_watermark
 WHERE program_id = $1 AND job = $2
"""

SET_WATERMARK = """
INSERT INTO job_watermark (program_id, job, rules_version, as_of, ran_at, txid, inactive_through, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (program_id, job) DO UPDATE
   SET rules_version = excluded.rules_version, as_of = excluded.as_of, ran_at = excluded.ran_at,
       txid = excluded.txid, inactive_through = excluded.inactive_through, updated_at = excluded.updated_at
"""

# Members with a posting in an entry written by a transaction from $2 on; with $3,
# only entries of these kinds, and with $4 only those decided under another rules
# version than $4.
MEMBERS_POSTED_SINCE = """
SELECT coalesce(array_agg(DISTINCT p.member_id), '{}')
  FROM journal_entry e JOIN posting p ON p.entry_id = e.id
 WHERE e.program_id = $1 AND e.txid >= $2 AND p.member_id IS NOT NULL
   AND ($3::text[] IS NULL OR e.kind = ANY ($3::text[]))
   AND ($4::integer IS NULL OR e.rules_version IS DISTINCT FROM $4::integer)
"""


async def snapshot_txid(connection: Connection) -> int:
    return int(await connection.fetchval(SNAPSHOT_TXID))


async def watermark(connection: Connection, program_id: int, job: str) -> asyncpg.Record | None:
    return await connection.fetchrow(WATERMARK, program_id, job)


async def set_watermark(
    connection: Connection,
    program_id: int,
    job: str,
    *,
    rules_version: int,
    as_of: datetime,
    ran_at: datetime,
    txid: int,
    inactive_through: datetime | None,
    now: datetime,
) -> None:
    await connection.execute(
        SET_WATERMARK, program_id, job, rules_version, as_of, ran_at, txid, inactive_through, now
    )


async def members_posted_since(
    connection: Connection,
    program_id: int,
    txid: int,
    *,
    kinds: list[str] | None,
    other_rules_than: int | None,
) -> list[int]:
    return list(await connection.fetchval(MEMBERS_POSTED_SINCE, program_id, txid, kinds, other_rules_than))


async def locked_statuses(connection: Connection, members: list[tuple[int, int]]) -> dict[int, str]:
    """Lock the balance rows of these (program id, member id)s in id order, then read
    their statuses: member id -> status."""
    programs = [program_id for program_id, _ in members]
    ids = [member_id for _, member_id in members]
    await connection.execute(LOCK_BALANCES, programs, ids)
    return {row["id"]: row["status"] for row in await connection.fetch(MEMBER_STATUSES, programs, ids)}


# The ids of a member's entries, newest first, from its postings' index alone
# (ix_posting_member_id_id), before a posting id. An entry's postings for one
# member are written together (consecutive ids), as the statement reads them.
MEMBER_ENTRY_IDS = """
SELECT p.id AS posting_id, p.entry_id
  FROM posting p
 WHERE p.program_id = $1 AND p.member_id = $2 AND p.id < $3
 ORDER BY p.id DESC
 LIMIT $4
"""

# A member's lots that still hold points (ix_point_lot_member_fifo), after a lot id.
MEMBER_LOTS = """
SELECT l.id, l.entry_id, l.points, l.remaining, l.expires_at
  FROM point_lot l
 WHERE l.program_id = $1 AND l.member_id = $2 AND l.remaining > 0 AND l.id > $3
 ORDER BY l.id
 LIMIT $4
"""

# Erasure: the first responses kept for the keys of the member's entries, with the
# member's external id (a JSON string: external ids need no escaping) replaced.
REDACT_RESPONSES = """
UPDATE idempotency_record r
   SET response_body = convert_to(replace(convert_from(r.response_body, 'UTF8'), $3, $4), 'UTF8')
  FROM journal_entry e
 WHERE e.program_id = $1
   AND e.id IN (SELECT p.entry_id FROM posting p WHERE p.program_id = $1 AND p.member_id = $2)
   AND r.program_id = e.program_id AND r.key = e.idempotency_key
   AND strpos(convert_from(r.response_body, 'UTF8'), $3) > 0
"""


async def member_entry_ids(
    connection: Connection, program_id: int, member_id: int, *, before_posting_id: int, limit: int
) -> list[asyncpg.Record]:
    return await connection.fetch(MEMBER_ENTRY_IDS, program_id, member_id, before_posting_id, limit)


async def member_lots(
    connection: Connection, program_id: int, member_id: int, *, after_lot_id: int, limit: int
) -> list[asyncpg.Record]:
    return await connection.fetch(MEMBER_LOTS, program_id, member_id, after_lot_id, limit)


async def redact_responses(
    connection: Connection, program_id: int, member_id: int, old: str, new: str
) -> int:
    status = await connection.execute(REDACT_RESPONSES, program_id, member_id, old, new)
    return int(status.split()[-1])


# The rules' daily limits (app/ledger/limits.py). A counter row per program, limit,
# subject and local day; the conditional upsert adds `n` only while the total stays
# within the limit, under the row's lock, so concurrent requests never pass it
# together. No row comes back when it would pass. A member's subject is its id,
# never its external id (which erasure replaces). $3: the subject, or NULL with
# the member's external id in $8.
CHARGE_LIMIT = """
INSERT INTO limit_usage AS usage (program_id, limit_name, subject, day, used, updated_at)
SELECT $1::bigint, $2::text, coalesce($3::text, 'member:' || m.id), $4::date, $5::bigint, $7::timestamptz
  FROM (SELECT 1) AS one
  LEFT JOIN member m ON $3::text IS NULL AND m.program_id = $1::bigint AND m.external_id = $8::text
 WHERE $3::text IS NOT NULL OR m.id IS NOT NULL
ON CONFLICT (program_id, limit_name, subject, day) DO UPDATE
   SET used = usage.used + excluded.used, updated_at = excluded.updated_at
 WHERE usage.used + excluded.used <= $6::bigint
RETURNING used
"""

LIMIT_USED = """
SELECT s.subject,
       coalesce((SELECT usage.used FROM limit_usage usage
                  WHERE usage.program_id = $1 AND usage.limit_name = $2 AND usage.subject = s.subject
                    AND usage.day = $4::date), 0) AS used
  FROM (SELECT coalesce(
          $3::text,
          (SELECT 'member:' || m.id FROM member m
            WHERE m.program_id = $1 AND m.external_id = $5::text)) AS subject
       ) AS s
"""


async def charge_limit(
    connection: Connection,
    program_id: int,
    limit_name: str,
    *,
    subject: str | None,
    member: str | None,
    day: date,
    amount: int,
    allowed: int,
    now: datetime,
) -> int | None:
    """Add `amount` to the subject's use of a daily limit if it stays within
    `allowed`: the new total, or None when it would pass (nothing added)."""
    value = await connection.fetchval(
        CHARGE_LIMIT, program_id, limit_name, subject, day, amount, allowed, now, member
    )
    return None if value is None else int(value)


async def limit_used(
    connection: Connection,
    program_id: int,
    limit_name: str,
    *,
    subject: str | None,
    member: str | None,
    day: date,
) -> int | None:
    """The subject's use of a daily limit on `day`; None when `member` is not in the program."""
    row = await connection.fetchrow(LIMIT_USED, program_id, limit_name, subject, day, member)
    assert row is not None
    return None if row["subject"] is None else int(row["used"])


# What-if of limits (app/ledger/limits.py: past_movements): the program's awards,
# redemptions, holds and transfers recorded in [$2, $3), in the order they were
# recorded, each with the points members were credited (an award's) or debited (the
# rest's) and the member who paid. Reversed ones stay in: a limit counted them then.
PAST_LIMITED_MOVEMENTS = """
SELECT e.kind, e.recorded_at, e.actor_key_id,
       min(p.member_id) FILTER (WHERE p.amount < 0) AS payer,
       coalesce(sum(p.amount) FILTER (WHERE p.amount > 0), 0)::bigint AS credited,
       coalesce(-sum(p.amount) FILTER (WHERE p.amount < 0), 0)::bigint AS debited
  FROM journal_entry e
  JOIN posting p ON p.program_id = e.program_id AND p.entry_id = e.id AND p.member_id IS NOT NULL
 WHERE e.program_id = $1 AND e.recorded_at >= $2 AND e.recorded_at < $3
   AND e.kind IN ('award', 'redemption', 'hold', 'transfer')
 GROUP BY e.id, e.kind, e.recorded_at, e.actor_key_id
 ORDER BY e.recorded_at, e.id
"""


def past_limited_movements(
    connection: Connection, program_id: int, start: datetime, end: datetime, *, prefetch: int = 2000
) -> AsyncIterator[asyncpg.Record]:
    """A server-side cursor (call inside a transaction)."""
    return stream(connection, PAST_LIMITED_MOVEMENTS, program_id, start, end, batch=prefetch)
