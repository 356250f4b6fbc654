from __future__ import annotations

import asyncpg

from app.db import Connection

PAGE = """
SELECT id, type, sequence, occurred_at, created_at, data::text AS data, entry_id
  FROM event_log
 WHERE program_id = $1 AND sequence > $2
   AND ($3::text[] IS NULL OR type = ANY($3) OR type LIKE ANY($4::text[]))
   AND ($5::bigint IS NULL OR members @> ARRAY[$5::bigint])
 ORDER BY sequence
 LIMIT $6
"""


async def page(
    connection: Connection,
    program_id: int,
    *,
    after: int,
    types: tuple[list[str], list[str]] | None,
    member_id: int | None,
    limit: int,
) -> list[asyncpg.Record]:
    exact, prefixes = types if types is not None else (None, [])
    return await connection.fetch(PAGE, program_id, after, exact, prefixes, member_id, limit)


# The events that may name a member being erased: its own (by `members`, the GIN
# index), and the enrolments of the members it referred (their `referred_by`).
# Entries' events are left out: they hold no data (rendered when read).
ABOUT_MEMBER = """
SELECT position, type, members, data::text AS data
  FROM event_log
 WHERE program_id = $1 AND data IS NOT NULL
   AND (members @> ARRAY[$2::bigint] OR (type = 'member.created' AND members && $3::bigint[]))
 ORDER BY position
"""

REWRITE_DATA = "UPDATE event_log SET data = $3::jsonb WHERE program_id = $1 AND position = $2"


async def about_member(
    connection: Connection, program_id: int, member_id: int, referred: list[int]
) -> list[asyncpg.Record]:
    return await connection.fetch(ABOUT_MEMBER, program_id, member_id, referred)


async def rewrite_data(connection: Connection, program_id: int, changed: list[tuple[int, str]]) -> None:
    """New `data` for events by position; only in an erasure's transaction (the
    guard lets `data` change only while `ledger.erasure` is on)."""
    await connection.execute("SET LOCAL ledger.erasure = 'on'")
    await connection.executemany(REWRITE_DATA, [(program_id, position, data) for position, data in changed])
    await connection.execute("SET LOCAL ledger.erasure = 'off'")
