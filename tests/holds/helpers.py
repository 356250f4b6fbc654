"""Small async helpers for the holds tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import httpx

from tests.support import Api

JsonObject = dict[str, Any]


async def funded_member(api: Api, points: int) -> str:
    """A new member with `points` available."""
    member = await api.enrol()
    awarded = await api.award(member, points)
    assert awarded.status_code == 201, awarded.text
    return member


async def place(
    api: Api, member: str, points: int, *, idempotency_key: str | None = "auto", **fields: Any
) -> httpx.Response:
    return await api.post(
        f"/v1/members/{member}/holds", {"points": points, **fields}, idempotency_key=idempotency_key
    )


async def new_hold(api: Api, member: str, points: int, **fields: Any) -> JsonObject:
    """Place a hold that must succeed; its response body."""
    response = await place(api, member, points, **fields)
    assert response.status_code == 201, response.text
    body: JsonObject = response.json()
    return body


async def capture(
    api: Api, hold_id: str, points: int | None = None, *, idempotency_key: str | None = "auto"
) -> httpx.Response:
    body = {} if points is None else {"points": points}
    return await api.post(f"/v1/holds/{hold_id}/capture", body, idempotency_key=idempotency_key)


async def release(
    api: Api, hold_id: str, reason: str | None = None, *, idempotency_key: str | None = "auto"
) -> httpx.Response:
    body = None if reason is None else {"reason": reason}
    return await api.post(f"/v1/holds/{hold_id}/release", body, idempotency_key=idempotency_key)


async def get_hold(api: Api, hold_id: str) -> JsonObject:
    response = await api.get(f"/v1/holds/{hold_id}")
    assert response.status_code == 200, response.text
    body: JsonObject = response.json()
    return body


async def release_holds_job(api: Api, as_of: datetime | None = None) -> JsonObject:
    """Run the release-holds job over HTTP; its summary."""
    body = {} if as_of is None else {"as_of": as_of.isoformat()}
    response = await api.post("/v1/jobs/release-holds", body, idempotency_key=None)
    assert response.status_code == 200, response.text
    summary: JsonObject = response.json()
    return summary


async def statement(api: Api, member: str) -> list[JsonObject]:
    """The member's entries, newest first."""
    response = await api.get(f"/v1/members/{member}/entries", limit=100)
    assert response.status_code == 200, response.text
    items: list[JsonObject] = response.json()["items"]
    return items


def code(response: httpx.Response) -> tuple[int, str]:
    """A problem response's status and stable code."""
    return response.status_code, str(response.json().get("code"))


def instant(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def hold_rows(db: asyncpg.Connection, program: str) -> int:
    """How many holds a program has in the database."""
    count = await db.fetchval(
        "SELECT count(*) FROM point_hold h JOIN program p ON p.id = h.program_id WHERE p.code = $1", program
    )
    return int(count)


async def entry_postings(db: asyncpg.Connection, entry_id: str) -> set[tuple[str, int]]:
    """An entry's postings as (account kind, amount)."""
    rows = await db.fetch(
        "SELECT a.kind, p.amount FROM posting p JOIN account a ON a.id = p.account_id"
        " WHERE p.entry_id = $1::uuid",
        entry_id,
    )
    return {(row["kind"], int(row["amount"])) for row in rows}
