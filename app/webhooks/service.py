"""Webhook endpoints: create, read, change, delete, rotate the secret, test,
list deliveries, replay. Sending is app/webhooks/dispatcher.py."""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
from uuid_utils.compat import uuid7

from app.context import AppContext
from app.db import Connection
from app.errors import AppError, NotFound
from app.eventlog.types import sql_filter
from app.outbox import emit
from app.principal import Principal
from app.webhooks.schemas import (
    AttemptOut,
    DeliveryOut,
    DeliveryPage,
    ReplayIn,
    ReplayOut,
    WebhookCreated,
    WebhookIn,
    WebhookOut,
    WebhookPage,
    WebhookPatch,
)
from app.webhooks.urls import UnsafeUrl, check_url

# the previous secret keeps signing beside a new one this long
ROTATION_OVERLAP = timedelta(hours=24)
REPLAY_MAX = 100_000


class WebhookNotFound(NotFound):
    code, title = "webhook_not_found", "No such webhook"


class WebhookUrlRefused(AppError):
    status, code, title = 422, "webhook_url_refused", "Webhooks may not be sent to this URL"


class ReplayTooLarge(AppError):
    status, code, title = 422, "replay_too_large", "Too many events to replay at once"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


COLUMNS = "id, url, events, description, status, disabled_reason, created_at, updated_at"


def _out(row: asyncpg.Record) -> WebhookOut:
    return WebhookOut(
        id=row["id"],
        url=row["url"],
        events=list(row["events"]),
        description=row["description"],
        status=row["status"],
        disabled_reason=row["disabled_reason"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _url(context: AppContext, url: str) -> str:
    try:
        return check_url(url, context.settings.env)
    except UnsafeUrl as exc:
        raise WebhookUrlRefused(f"{url}: {exc}") from None


async def _row(
    connection: Connection, program_id: int, webhook_id: uuid.UUID, *, lock: bool = False
) -> asyncpg.Record:
    row = await connection.fetchrow(
        f"SELECT {COLUMNS}, secret FROM webhook_endpoint"
        " WHERE program_id = $1 AND id = $2 AND deleted_at IS NULL" + (" FOR UPDATE" if lock else ""),
        program_id,
        webhook_id,
    )
    if row is None:
        raise WebhookNotFound(f"no webhook {webhook_id} in this program")
    return row


async def create(context: AppContext, principal: Principal, body: WebhookIn) -> WebhookCreated:
    url = _url(context, body.url)
    now = context.clock.now()
    secret = new_secret()
    async with context.db.pool.acquire() as connection:
        row = await connection.fetchrow(
            f"""INSERT INTO webhook_endpoint (id, program_id, url, events, description, status, secret,
                                              created_at, updated_at)
                VALUES ($1, $2, $3, $4, $5, 'enabled', $6, $7, $7) RETURNING {COLUMNS}""",
            uuid7(),
            principal.program_id,
            url,
            list(dict.fromkeys(body.events)),
            body.description,
            secret,
            now,
        )
    assert row is not None
    return WebhookCreated(**_out(row).model_dump(), secret=secret)


async def listing(
    context: AppContext, principal: Principal, *, limit: int, cursor: str | None
) -> WebhookPage:
    list_id = f"webhooks:{principal.program_id}"
    before = (
        uuid.UUID(int=2**128 - 1) if cursor is None else uuid.UUID(context.cursors.read(list_id, cursor)[0])
    )
    async with context.db.pool.acquire() as connection:
        rows = await connection.fetch(
            f"SELECT {COLUMNS} FROM webhook_endpoint WHERE program_id = $1 AND deleted_at IS NULL AND id < $2"
            " ORDER BY id DESC LIMIT $3",
            principal.program_id,
            before,
            limit + 1,
        )
    items = [_out(row) for row in rows[:limit]]
    return WebhookPage(
        items=items,
        next_cursor=context.cursors.issue(list_id, str(items[-1].id)) if len(rows) > limit else None,
    )


async def get(context: AppContext, principal: Principal, webhook_id: uuid.UUID) -> WebhookOut:
    async with context.db.pool.acquire() as connection:
        return _out(await _row(connection, principal.program_id, webhook_id))


async def patch(
    context: AppContext, principal: Principal, webhook_id: uuid.UUID, body: WebhookPatch
) -> WebhookOut:
    sent = body.model_fields_set
    changes: dict[str, Any] = {}
    if "url" in sent and body.url is not None:
        changes["url"] = _url(context, body.url)
    if "events" in sent and body.events is not None:
        changes["events"] = list(dict.fromkeys(body.events))
    if "description" in sent:
        changes["description"] = body.description
    if "status" in sent and body.status is not None:
        changes["status"] = body.status
        changes["disabled_reason"] = "by request" if body.status == "disabled" else None
        if body.status == "enabled":
            changes["failing_since"] = None
    async with context.db.pool.acquire() as connection, connection.transaction():
        await _row(connection, principal.program_id, webhook_id, lock=True)
        if changes:
            assignments = ", ".join(f"{name} = ${n}" for n, name in enumerate(changes, start=4))
            await connection.execute(
                f"UPDATE webhook_endpoint SET updated_at = $3, {assignments}"
                " WHERE program_id = $1 AND id = $2",
                principal.program_id,
                webhook_id,
                context.clock.now(),
                *changes.values(),
            )
        return _out(await _row(connection, principal.program_id, webhook_id))


async def delete(context: AppContext, principal: Principal, webhook_id: uuid.UUID) -> None:
    """Stop sending to it, for good; its deliveries stay for the record."""
    now = context.clock.now()
    async with context.db.pool.acquire() as connection, connection.transaction():
        await _row(connection, principal.program_id, webhook_id, lock=True)
        await connection.execute(
            "UPDATE webhook_endpoint SET deleted_at = $3, updated_at = $3, status = 'disabled',"
            " disabled_reason = 'deleted' WHERE program_id = $1 AND id = $2",
            principal.program_id,
            webhook_id,
            now,
        )


async def rotate_secret(context: AppContext, principal: Principal, webhook_id: uuid.UUID) -> WebhookCreated:
    """A new secret; the old one keeps signing beside it for 24 hours."""
    now = context.clock.now()
    secret = new_secret()
    async with context.db.pool.acquire() as connection, connection.transaction():
        old = await _row(connection, principal.program_id, webhook_id, lock=True)
        await connection.execute(
            "UPDATE webhook_endpoint SET previous_secret = $3, previous_until = $4, secret = $5,"
            " updated_at = $6 WHERE program_id = $1 AND id = $2",
            principal.program_id,
            webhook_id,
            old["secret"],
            now + ROTATION_OVERLAP,
            secret,
            now,
        )
        row = await _row(connection, principal.program_id, webhook_id)
    return WebhookCreated(**_out(row).model_dump(), secret=secret)


async def send_test(context: AppContext, principal: Principal, webhook_id: uuid.UUID) -> uuid.UUID:
    """A `webhook.test` event for this endpoint only; its id."""
    now = context.clock.now()
    async with context.db.pool.acquire() as connection, connection.transaction():
        row = await _row(connection, principal.program_id, webhook_id)
        event_id = await emit(
            connection,
            principal.program_id,
            "webhook.test",
            {"webhook": str(row["id"]), "url": row["url"]},
            occurred_at=now,
            now=now,
            endpoint_id=row["id"],
        )
    return uuid.UUID(event_id)


DELIVERIES = """
SELECT d.id, d.event_id, l.type AS event_type, l.sequence AS event_sequence, d.status, d.next_attempt_at,
       d.created_at,
       coalesce((SELECT json_agg(json_build_object(
                     'attempt', a.attempt, 'attempted_at', ledger_rfc3339(a.attempted_at),
                     'status_code', a.status_code, 'duration_ms', a.duration_ms, 'error', a.error)
                     ORDER BY a.attempt)
                   FROM webhook_attempt a
                  WHERE a.program_id = d.program_id AND a.delivery_id = d.id), '[]')::text AS attempts
  FROM webhook_delivery d JOIN event_log l ON l.program_id = d.program_id AND l.id = d.event_id
 WHERE d.program_id = $1 AND d.endpoint_id = $2 AND d.id < $3 AND ($4::text IS NULL OR d.status = $4)
 ORDER BY d.id DESC
 LIMIT $5
"""


async def deliveries(
    context: AppContext,
    principal: Principal,
    webhook_id: uuid.UUID,
    *,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> DeliveryPage:
    list_id = f"webhook-deliveries:{webhook_id}:{status or ''}"
    (before,) = [2**63 - 1] if cursor is None else context.cursors.read(list_id, cursor)
    async with context.db.pool.acquire() as connection:
        await _row(connection, principal.program_id, webhook_id)
        rows = await connection.fetch(DELIVERIES, principal.program_id, webhook_id, before, status, limit + 1)
    items = [
        DeliveryOut(
            id=row["id"],
            event_id=row["event_id"],
            event_type=row["event_type"],
            event_sequence=row["event_sequence"],
            status=row["status"],
            next_attempt_at=row["next_attempt_at"] if row["status"] == "pending" else None,
            created_at=row["created_at"],
            attempts=[AttemptOut.model_validate(a) for a in _json(row["attempts"])],
        )
        for row in rows[:limit]
    ]
    return DeliveryPage(
        items=items, next_cursor=context.cursors.issue(list_id, items[-1].id) if len(rows) > limit else None
    )


def _json(text: str) -> list[dict[str, Any]]:
    value: list[dict[str, Any]] = json.loads(text)
    return value


REPLAY = """
INSERT INTO webhook_delivery (program_id, endpoint_id, event_id, status, next_attempt_at, created_at,
                              updated_at)
SELECT $1, $2, l.id, 'pending', $5, $5, $5
  FROM event_log l
 WHERE l.program_id = $1 AND l.sequence > $3 AND ($4::bigint IS NULL OR l.sequence <= $4)
   AND (l.endpoint_id IS NULL OR l.endpoint_id = $2)
   AND (l.type = ANY($6) OR l.type LIKE ANY($7::text[]) OR $8)
 ORDER BY l.sequence
"""


async def replay(
    context: AppContext, principal: Principal, webhook_id: uuid.UUID, body: ReplayIn
) -> ReplayOut:
    """Queue the endpoint's events in the range again (same event ids)."""
    now = context.clock.now()
    async with context.db.pool.acquire() as connection, connection.transaction():
        row = await _row(connection, principal.program_id, webhook_id)
        selected = sql_filter(row["events"])
        exact, prefixes = selected if selected is not None else ([], [])
        until = body.until_sequence
        if until is not None and until <= body.after_sequence:
            return ReplayOut(deliveries=0)
        span = await connection.fetchval(
            "SELECT count(*) FROM event_log WHERE program_id = $1 AND sequence > $2"
            " AND ($3::bigint IS NULL OR sequence <= $3)",
            principal.program_id,
            body.after_sequence,
            until,
        )
        if span > REPLAY_MAX:
            raise ReplayTooLarge(f"{span} events in that range; replay at most {REPLAY_MAX} at a time")
        status = await connection.execute(
            REPLAY,
            principal.program_id,
            webhook_id,
            body.after_sequence,
            until,
            now,
            exact,
            prefixes,
            selected is None,
        )
        await connection.execute("SELECT pg_notify('ledger_events', $1)", str(principal.program_id))
    return ReplayOut(deliveries=int(status.split()[-1]))
