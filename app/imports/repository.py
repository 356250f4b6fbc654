"""Every statement an import runs. Chunks of rows go in as arrays (one round trip
for thousands of rows); lots through ledger_import_lots()
(app/sql/functions/ledger_import_lots.sql)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import uuid_utils

from app.db import Connection

# Idempotency keys and notes of imported rows begin with this: clients' keys are
# printable ASCII, so an import's key never meets one of theirs (as jobs' "job·").
KEY_PREFIX = "import\u00b7"


def row_key(source: str, reference: str) -> str:
    return f"{KEY_PREFIX}{source}\u00b7{reference}"


async def member_ids(connection: Connection, program_id: int, external_ids: Sequence[str]) -> dict[str, int]:
    rows = await connection.fetch(
        "SELECT external_id, id FROM member WHERE program_id = $1 AND external_id = ANY ($2::text[])",
        program_id,
        list(external_ids),
    )
    return {row["external_id"]: row["id"] for row in rows}


async def closed_members(connection: Connection, program_id: int, member_ids: Sequence[int]) -> set[int]:
    rows = await connection.fetch(
        "SELECT id FROM member WHERE program_id = $1 AND id = ANY ($2::bigint[]) AND status = 'closed'",
        program_id,
        list(member_ids),
    )
    return {row["id"] for row in rows}


async def taken_entry_keys(connection: Connection, program_id: int, keys: Sequence[str]) -> set[str]:
    rows = await connection.fetch(
        "SELECT idempotency_key FROM journal_entry"
        " WHERE program_id = $1 AND idempotency_key = ANY ($2::text[])",
        program_id,
        list(keys),
    )
    return {row["idempotency_key"] for row in rows}


async def existing_orders(connection: Connection, program_id: int, order_ids: Sequence[str]) -> set[str]:
    rows = await connection.fetch(
        "SELECT order_id FROM paid_order WHERE program_id = $1 AND partner_id IS NULL"
        " AND order_id = ANY ($2::text[])",
        program_id,
        list(order_ids),
    )
    return {row["order_id"] for row in rows}


async def imported_tiers(
    connection: Connection, program_id: int, member_ids: Sequence[int], note: str
) -> set[int]:
    rows = await connection.fetch(
        "SELECT DISTINCT member_id FROM tier_change WHERE program_id = $1 AND member_id = ANY ($2::bigint[])"
        " AND reason = 'imported' AND note = $3",
        program_id,
        list(member_ids),
        note,
    )
    return {row["member_id"] for row in rows}


INSERT_MEMBERS = """
INSERT INTO member (program_id, external_id, birthday, enrolled_at, metadata, created_at)
SELECT $1, x.external_id, x.birthday, x.enrolled_at, x.metadata::jsonb, $2
  FROM unnest($3::text[], $4::date[], $5::timestamptz[], $6::text[])
       WITH ORDINALITY AS x(external_id, birthday, enrolled_at, metadata, n)
 ORDER BY x.n
ON CONFLICT (program_id, external_id) DO NOTHING
RETURNING id
"""

# referrers named by external id, set once both members exist
SET_REFERRERS = """
UPDATE member m SET referred_by_member_id = r.id
  FROM unnest($2::text[], $3::text[]) AS x(external_id, referred_by)
  JOIN member r ON r.program_id = $1 AND r.external_id = x.referred_by
 WHERE m.program_id = $1 AND m.external_id = x.external_id AND m.referred_by_member_id IS NULL
"""


async def insert_members(
    connection: Connection,
    program_id: int,
    now: datetime,
    rows: Sequence[tuple[str, date | None, datetime, dict[str, Any] | None, str | None]],
) -> list[int]:
    """Members (not their accounts: the ledger opens those); those that exist are
    left alone. The ids of those written."""
    written = await connection.fetch(
        INSERT_MEMBERS,
        program_id,
        now,
        [row[0] for row in rows],
        [row[1] for row in rows],
        [row[2] for row in rows],
        [json.dumps(row[3] or {}) for row in rows],
    )
    referred = [(row[0], row[4]) for row in rows if row[4] is not None]
    if referred:
        await connection.execute(
            SET_REFERRERS, program_id, [pair[0] for pair in referred], [pair[1] for pair in referred]
        )
    return [row["id"] for row in written]


IMPORT_LOTS = """
SELECT imported, points, row_checks FROM ledger_import_lots(
    p_program_id => $1, p_source => $2, p_recorded_at => $3, p_actor_key_id => $4,
    p_entry_ids => $5, p_member_ids => $6, p_lot_refs => $7, p_points => $8,
    p_earned_at => $9, p_expires_at => $10, p_row_checks => $11)
"""


@dataclass(frozen=True, slots=True)
class LotsWritten:
    lots: int
    points: int
    # the per-row triggers ran (the role may not set session_replication_role, or
    # they were asked for), rather than the function's set-wise checks
    row_checks: bool


async def import_lots(
    connection: Connection,
    program_id: int,
    source: str,
    now: datetime,
    actor_key_id: uuid.UUID | None,
    entry_ids: Sequence[uuid.UUID | uuid_utils.UUID],
    lots: Sequence[tuple[int, str, int, datetime, datetime | None]],
    row_checks: bool = False,
) -> LotsWritten:
    """One chunk of lots (member id, lot_ref, points, earned_at, expires_at), in
    the order to write them. `row_checks`: keep the per-row foreign-key and
    balanced-entry triggers even where the function could check set-wise."""
    row = await connection.fetchrow(
        IMPORT_LOTS,
        program_id,
        source,
        now,
        actor_key_id,
        list(entry_ids),
        [lot[0] for lot in lots],
        [lot[1] for lot in lots],
        [lot[2] for lot in lots],
        [lot[3] for lot in lots],
        [lot[4] for lot in lots],
        row_checks,
    )
    assert row is not None
    return LotsWritten(int(row["imported"]), int(row["points"]), bool(row["row_checks"]))


INSERT_ORDERS = """
INSERT INTO paid_order (
    program_id, partner_id, order_id, member_id, idempotency_key, request_fingerprint, entry_id,
    rules_version, paid_at, recorded_at, local_day, currency, total, channel, lines, facts, points, segments)
SELECT $1, NULL, x.order_id, x.member_id, $2 || x.order_id, 'import', NULL,
       $3, x.paid_at, $4, x.local_day, x.currency, x.total, x.channel, x.lines::jsonb,
       jsonb_build_object('imported', $5::text), 0, '[]'::jsonb
  FROM unnest($6::text[], $7::bigint[], $8::timestamptz[], $9::date[], $10::text[], $11::numeric[],
              $12::text[], $13::text[])
       WITH ORDINALITY AS x(order_id, member_id, paid_at, local_day, currency, total, channel, lines, n)
 ORDER BY x.n
ON CONFLICT ON CONSTRAINT uq_paid_order_program_id_order_id_partner_id DO NOTHING
RETURNING id
"""


async def insert_orders(
    connection: Connection,
    program_id: int,
    source: str,
    rules_version: int,
    now: datetime,
    rows: Sequence[tuple[str, int, datetime, date, str, Decimal, str | None, list[Any]]],
) -> int:
    """Past orders: no entry, no points; those whose order id exists are left alone."""
    written = await connection.fetch(
        INSERT_ORDERS,
        program_id,
        row_key(source, ""),
        rules_version,
        now,
        source,
        [row[0] for row in rows],
        [row[1] for row in rows],
        [row[2] for row in rows],
        [row[3] for row in rows],
        [row[4] for row in rows],
        [row[5] for row in rows],
        [row[6] for row in rows],
        [json.dumps(row[7]) for row in rows],
    )
    return len(written)


LOCK_MEMBERS = """
SELECT b.member_id, t.tier_code
  FROM member_balance b
  LEFT JOIN member_tier t ON t.program_id = b.program_id AND t.member_id = b.member_id
 WHERE b.program_id = $1 AND b.member_id = ANY ($2::bigint[])
 ORDER BY b.member_id
   FOR UPDATE OF b
"""

APPLY_TIERS = """
SELECT tier_apply(p_program_id => $1, p_rules_version => $2, p_recorded_at => $3, p_decisions => $4::jsonb)
"""


async def apply_tiers(
    connection: Connection,
    program_id: int,
    rules_version: int,
    now: datetime,
    note: str,
    rows: Sequence[tuple[int, str, datetime, datetime | None]],
    actor_key_id: uuid.UUID | None,
) -> int:
    """Each member's tier (member id, tier, since, term_ends_at) and an `imported`
    history row, under the members' balance-row locks (as every tier change)."""
    current = {
        row["member_id"]: row["tier_code"]
        for row in await connection.fetch(LOCK_MEMBERS, program_id, [row[0] for row in rows])
    }
    decisions = [
        {
            "member_id": member_id,
            "from": current.get(member_id),
            "state": {"tier": tier, "since": since.isoformat(), "term_ends_at": _iso(term_ends_at)},
            "changes": [
                {
                    "from": current.get(member_id),
                    "to": tier,
                    "reason": "imported",
                    "effective_at": since.isoformat(),
                    "term_ends_at": _iso(term_ends_at),
                    "actor_key_id": None if actor_key_id is None else str(actor_key_id),
                    "note": note,
                }
            ],
        }
        for member_id, tier, since, term_ends_at in rows
    ]
    return int(await connection.fetchval(APPLY_TIERS, program_id, rules_version, now, json.dumps(decisions)))


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
