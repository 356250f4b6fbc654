"""All SQL of the ledger. Postings go through ledger_post() (app/sql/functions/ledger_post.sql)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from app.db import Connection
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
                   p_partners => $22, p_partner_line => $23::jsonb)
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
  JOIN posting p ON p.entry_id = e.id
  JOIN account a ON a.id = p.account_id
  LEFT JOIN partner pa ON pa.id = a.partner_id
  LEFT JOIN member m ON m.id = p.member_id
  LEFT JOIN entry_chain c ON c.entry_id = e.id
 WHERE e.program_id = $1 AND e.id = ANY($2::uuid[])
 ORDER BY p.id
"""

MEMBER_ID = "SELECT id FROM member WHERE program_id = $1 AND external_id = $2"

# Each entry puts at most four postings on one member (available, pending, held,
# debt), and they are contiguous in id order: the member's balance row lock is
# held while they are written. So a page of n entries is within 4n+1 postings.
STATEMENT = """
SELECT p.id AS posting_id, p.entry_id, a.kind AS account, p.amount,
       p.available_after, p.pending_after, p.held_after,
       e.kind, e.occurred_at, e.recorded_at, e.reason, e.order_id, e.reverses_entry_id,
       e.rules_version, e.metadata, e.explanation, c.sequence, c.hash
  FROM posting p
  JOIN account a ON a.id = p.account_id
  JOIN journal_entry e ON e.id = p.entry_id
  LEFT JOIN entry_chain c ON c.entry_id = e.id
 WHERE p.member_id = $1 AND p.id < $2
 ORDER BY p.id DESC
 LIMIT $3
"""

BALANCE_NOW = """
SELECT b.available, b.pending, b.held
  FROM member m JOIN member_balance b ON b.member_id = m.id
 WHERE m.program_id = $1 AND m.external_id = $2
"""

# The member's last posting of an entry recorded by then. The posting's own copy of
# recorded_at keeps this inside the member's postings (an index-only scan of
# ix_posting_member_id_id): joining each entry instead probed the whole journal once
# per posting since `as_of`, which grew with the ledger (bench/growth.py).
BALANCE_AS_OF = """
SELECT available_after, pending_after, held_after
  FROM posting
 WHERE member_id = $1 AND recorded_at <= $2
 ORDER BY id DESC
 LIMIT 1
"""


# Pending credits due at `as_of`, oldest first, locked; SKIP LOCKED lets two job
# runs (or a run and a refund of one of these orders) work side by side.
DUE_PENDING_CREDITS = """
SELECT c.id, c.program_id, c.member_id, c.remaining, c.pending_until, m.external_id AS member,
       e.order_id, e.rules_version, e.expires_at
  FROM pending_credit c
  JOIN member m ON m.id = c.member_id
  JOIN journal_entry e ON e.id = c.entry_id
 WHERE c.remaining > 0 AND c.pending_until <= $1 AND ($2::bigint IS NULL OR c.program_id = $2)
 ORDER BY c.pending_until, c.id
 LIMIT $3
   FOR UPDATE OF c SKIP LOCKED
"""

MARK_ACTIVATED = """
UPDATE pending_credit c SET remaining = 0, activated_at = $2, activation_entry_id = x.entry_id
  FROM unnest($1::bigint[], $3::uuid[]) AS x(id, entry_id)
 WHERE c.id = x.id
"""


async def post(connection: Connection, entry: NewEntry, *, response_body: bytes | None = None) -> Posted:
    row = await connection.fetchrow(
        POST,
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
    )
    assert row is not None
    return Posted(row["replayed"], row["request_fingerprint"], row["status_code"], row["response_body"])


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
    connection: Connection, member_id: int, *, before_posting_id: int, limit: int
) -> list[asyncpg.Record]:
    return await connection.fetch(STATEMENT, member_id, before_posting_id, limit)


async def balance_now(connection: Connection, program_id: int, external_id: str) -> asyncpg.Record | None:
    return await connection.fetchrow(BALANCE_NOW, program_id, external_id)


async def balance_as_of(connection: Connection, member_id: int, as_of: datetime) -> asyncpg.Record | None:
    return await connection.fetchrow(BALANCE_AS_OF, member_id, as_of)


async def due_pending_credits(
    connection: Connection, program_id: int | None, as_of: datetime, limit: int
) -> list[asyncpg.Record]:
    return await connection.fetch(DUE_PENDING_CREDITS, as_of, program_id, limit)


async def mark_activated(
    connection: Connection, credit_ids: list[int], entry_ids: list[uuid.UUID], now: datetime
) -> None:
    await connection.execute(MARK_ACTIVATED, credit_ids, now, entry_ids)


# app/sql/functions/ledger_expire.sql states the contract.
EXPIRE_BATCH = """
SELECT last_member_id, candidates, members, lots, points
  FROM ledger_expire(p_program_id => $1, p_after_member_id => $2, p_limit => $3, p_as_of => $4,
                     p_recorded_at => $5, p_rules_version => $6, p_inactivity_months => $7,
                     p_timezone => $8, p_entry_ids => $9)
"""

# For the progress bar: members with lots (under inactivity, all of them may be looked at).
EXPIRY_CANDIDATES = """
SELECT count(DISTINCT l.member_id)
  FROM point_lot l
 WHERE l.program_id = $1 AND l.remaining > 0 AND ($3::integer IS NOT NULL OR l.expires_at <= $2)
"""

EXPIRING_LOTS = """
SELECT l.expires_at, sum(l.remaining)::bigint AS points
  FROM point_lot l
 WHERE l.member_id = $1 AND l.remaining > 0 AND l.expires_at IS NOT NULL
 GROUP BY l.expires_at
 ORDER BY l.expires_at
 LIMIT $2
"""

# When the member last showed activity for an inactivity policy: their last order,
# or their enrolment if they never ordered (ledger_expire() reads it the same way).
LAST_ACTIVITY = """
SELECT greatest(m.enrolled_at, (SELECT max(o.paid_at) FROM paid_order o WHERE o.member_id = m.id))
           AS last_activity,
       b.available
  FROM member m JOIN member_balance b ON b.member_id = m.id
 WHERE m.id = $1
"""


@dataclass(frozen=True, slots=True)
class ExpiredBatch:
    last_member_id: int | None
    candidates: int
    members: int
    lots: int
    points: int


async def expire_batch(
    connection: Connection,
    *,
    program_id: int,
    after_member_id: int,
    limit: int,
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
        after_member_id,
        limit,
        as_of,
        now,
        rules_version,
        inactivity_months,
        timezone,
        entry_ids,
    )
    assert row is not None
    return ExpiredBatch(row["last_member_id"], row["candidates"], row["members"], row["lots"], row["points"])


async def expiry_candidates(
    connection: Connection, program_id: int, as_of: datetime, inactivity_months: int | None
) -> int:
    return int(await connection.fetchval(EXPIRY_CANDIDATES, program_id, as_of, inactivity_months))


async def expiring_lots(connection: Connection, member_id: int, limit: int) -> list[asyncpg.Record]:
    return await connection.fetch(EXPIRING_LOTS, member_id, limit)


async def last_activity(connection: Connection, member_id: int) -> tuple[datetime, int]:
    row = await connection.fetchrow(LAST_ACTIVITY, member_id)
    assert row is not None
    return row["last_activity"], row["available"]
