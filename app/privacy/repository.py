"""All SQL of erasure. It writes the personal columns of other domains' tables
(member, paid_order) on purpose: this package is the one place personal data is
erased, so a reader finds all of it here."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from app.db import Connection

# The member row, locked until the erasure's transaction ends (a second erasure,
# a patch, an enrolment of the same pseudonym queue behind it).
LOCK_MEMBER = """
SELECT m.id, m.external_id, m.status
  FROM member m
 WHERE m.program_id = $1 AND m.external_id = $2
   FOR UPDATE
"""

ERASURE = """
SELECT erased_at, reason, entry_id FROM member_erasure WHERE program_id = $1 AND member_id = $2
"""

INSERT_ERASURE = """
INSERT INTO member_erasure (program_id, member_id, reason, actor_key_id, entry_id, erased_at)
VALUES ($1, $2, $3, $4, $5, $6)
"""

# The members this one referred: their link to it stays (it is their enrolment), and
# their enrolment events name it (by pseudonym once erased).
REFERRED = "SELECT id FROM member WHERE program_id = $1 AND referred_by_member_id = $2"

# The personal data on the member row goes; the pseudonym takes the external id's place.
ERASE_MEMBER = """
UPDATE member
   SET external_id = $3, birthday = NULL, metadata = '{}'::jsonb, referred_by_member_id = NULL
 WHERE program_id = $1 AND id = $2
"""

# The birthday each of the member's orders told the rules (paid_order.facts), kept
# for what-if replays: erased too.
FORGET_BIRTHDAYS = """
UPDATE paid_order SET facts = jsonb_set(facts, '{birthday}', 'null'::jsonb)
 WHERE program_id = $1 AND member_id = $2 AND facts ? 'birthday' AND facts->'birthday' <> 'null'::jsonb
"""


async def lock_member(connection: Connection, program_id: int, external_id: str) -> asyncpg.Record | None:
    return await connection.fetchrow(LOCK_MEMBER, program_id, external_id)


async def erasure(connection: Connection, program_id: int, member_id: int) -> asyncpg.Record | None:
    return await connection.fetchrow(ERASURE, program_id, member_id)


async def referred(connection: Connection, program_id: int, member_id: int) -> list[int]:
    return [int(row["id"]) for row in await connection.fetch(REFERRED, program_id, member_id)]


async def erase_member(connection: Connection, program_id: int, member_id: int, pseudonym: str) -> None:
    await connection.execute(ERASE_MEMBER, program_id, member_id, pseudonym)


async def forget_birthdays(connection: Connection, program_id: int, member_id: int) -> None:
    await connection.execute(FORGET_BIRTHDAYS, program_id, member_id)


async def insert_erasure(
    connection: Connection,
    *,
    program_id: int,
    member_id: int,
    reason: str,
    actor_key_id: uuid.UUID | None,
    entry_id: uuid.UUID | None,
    erased_at: datetime,
) -> None:
    await connection.execute(INSERT_ERASURE, program_id, member_id, reason, actor_key_id, entry_id, erased_at)
