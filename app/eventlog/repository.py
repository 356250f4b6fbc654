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
