"""Writing an event into the event log inside the caller's transaction (the
outbox): a committed change always has its event, a rolled-back one never does.
The chainer gives it its place in the program's sequence once the transaction is
final (app/ledger/chain.py). Tier and rules events are written by triggers
(app/sql/functions/event_*.sql); entries become `points.*` events as they are chained."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from app.db import Connection

INSERT = """
INSERT INTO event_log (id, program_id, type, occurred_at, created_at, members, data, endpoint_id)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)
"""


async def emit(
    connection: Connection,
    program_id: int,
    type_: str,
    data: dict[str, Any],
    *,
    occurred_at: datetime,
    now: datetime,
    members: Sequence[int] = (),
    endpoint_id: Any = None,
) -> str:
    """Write one event in the connection's transaction; its id."""
    event_id = uuid7()
    await connection.execute(
        INSERT, event_id, program_id, type_, occurred_at, now, list(members), json.dumps(data), endpoint_id
    )
    return str(event_id)


async def emit_in_session(
    session: AsyncSession,
    program_id: int,
    type_: str,
    data: dict[str, Any],
    *,
    occurred_at: datetime,
    now: datetime,
    members: Sequence[int] = (),
) -> None:
    """The same, in a SQLAlchemy session's transaction."""
    await session.execute(
        text(
            "INSERT INTO event_log (id, program_id, type, occurred_at, created_at, members, data) "
            "VALUES (:id, :program_id, :type, :occurred_at, :now, :members, CAST(:data AS jsonb))"
        ),
        {
            "id": uuid7(),
            "program_id": program_id,
            "type": type_,
            "occurred_at": occurred_at,
            "now": now,
            "members": list(members),
            "data": json.dumps(data),
        },
    )
