"""The yardstick: a bare FastAPI + asyncpg endpoint doing the earn's SQL (an
entry, two postings, the member's balance update, the points' lot) and nothing
else: no auth, no idempotency record, no rules, no metrics, no problem documents."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from pydantic import BaseModel

PROGRAM_ID = 1
pool: Any = None


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    global pool
    pool = await asyncpg.create_pool(
        os.environ["BENCH_DSN"], min_size=4, max_size=int(os.environ.get("BENCH_POOL", "16"))
    )
    yield
    await pool.close()


app = FastAPI(lifespan=lifespan)


class Award(BaseModel):
    points: int
    reason: str


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/awards/{member}", status_code=201)
async def award(member: str, body: Award, request: Request) -> dict[str, Any]:
    entry_id = uuid.uuid4()
    key = request.headers.get("idempotency-key") or str(entry_id)
    async with pool.acquire() as connection, connection.transaction():
        balance = await connection.fetchrow(
            "UPDATE member_balance b SET available = b.available + $3, version = b.version + 1,"
            " updated_at = now() FROM member m"
            " WHERE m.program_id = $1 AND m.external_id = $2 AND b.program_id = m.program_id"
            " AND b.member_id = m.id"
            " RETURNING b.member_id, b.available, b.pending, b.held",
            PROGRAM_ID,
            member,
            body.points,
        )
        await connection.execute(
            "INSERT INTO journal_entry (id, program_id, kind, occurred_at, recorded_at, idempotency_key,"
            " request_fingerprint, reason) VALUES ($1, $2, 'award', now(), now(), $3, '', $4)",
            entry_id,
            PROGRAM_ID,
            key,
            body.reason,
        )
        await connection.execute(
            "INSERT INTO posting (program_id, entry_id, account_id, member_id, amount, available_after,"
            " pending_after, held_after, recorded_at) VALUES"
            " ($7, $1, (SELECT id FROM account"
            "           WHERE program_id = $7 AND member_id = $2 AND kind = 'available'),"
            " $2, $3::bigint, $4, $5, $6, now()),"
            " ($7, $1, (SELECT id FROM account"
            "           WHERE program_id = $7 AND member_id IS NULL AND kind = 'issuance'),"
            " NULL, -($3::bigint), NULL, NULL, NULL, now())",
            entry_id,
            balance["member_id"],
            body.points,
            balance["available"],
            balance["pending"],
            balance["held"],
            PROGRAM_ID,
        )
        await connection.execute(
            "INSERT INTO point_lot (program_id, member_id, entry_id, points, remaining)"
            " VALUES ($1, $2, $3, $4, $4)",
            PROGRAM_ID,
            balance["member_id"],
            entry_id,
            body.points,
        )
    return {"id": str(entry_id), "available": balance["available"]}
