"""Sending events to webhook endpoints: at least once, signed (Standard Webhooks),
retried on a schedule, fast.

Two steps, each safe to run in any number of processes at once:
1. Fan-out: the program's events beyond its fan-out cursor (webhook_fanout, row
   locked while it moves) become one delivery per enabled endpoint whose patterns
   match, in the same transaction that moves the cursor: no event is skipped or
   fanned out twice.
2. Sending: due deliveries are claimed with FOR UPDATE SKIP LOCKED and leased (their
   next attempt moved past the timeout) before anything is sent, so a process that
   dies mid-send leaves them to be tried again when the lease ends: at least once,
   with the same `webhook-id` (the event id) every time.

The chainer NOTIFYs `ledger_events` when it sequences events; the dispatcher LISTENs
and wakes at once (and at least every second, for retries that fall due)."""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from standardwebhooks.webhooks import Webhook

from app.clock import Clock
from app.config import Settings
from app.db import Connection, Database, listen
from app.eventlog.service import render
from app.eventlog.types import matches
from app.ledger.chain import CHANNEL
from app.metrics import WEBHOOK_DELIVERIES, WEBHOOK_DELIVERY_LATENCY
from app.outbox import emit
from app.webhooks.urls import CheckedTransport, UnsafeUrl

logger = logging.getLogger(__name__)

FANOUT_BATCH = 1000
# a round claims as many as it sends at once, so a claim's lease need only cover
# one attempt (the timeout) and the recording of its outcome
CONCURRENCY = 16
CLAIM_BATCH = CONCURRENCY
LEASE_MARGIN = timedelta(seconds=5)
# an endpoint whose every attempt failed this long is disabled
FAILING_LIMIT = timedelta(days=5)

BEHIND = """
SELECT h.program_id FROM chain_head h LEFT JOIN webhook_fanout f ON f.program_id = h.program_id
 WHERE h.event_sequence > coalesce(f.sequence, 0)
"""

FANOUT_EVENTS = """
SELECT id, type, sequence, created_at, endpoint_id FROM event_log
 WHERE program_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3
"""

FANOUT_ENDPOINTS = """
SELECT id, events, created_at FROM webhook_endpoint
 WHERE program_id = $1 AND status = 'enabled' AND deleted_at IS NULL
"""

INSERT_DELIVERIES = """
INSERT INTO webhook_delivery (program_id, endpoint_id, event_id, status, next_attempt_at, created_at,
                              updated_at)
SELECT $4, x.endpoint_id, x.event_id, 'pending', $3, $3, $3
  FROM unnest($1::uuid[], $2::uuid[]) AS x(endpoint_id, event_id)
"""

CLAIM = """
WITH due AS (
    SELECT d.program_id, d.id
      FROM webhook_delivery d JOIN webhook_endpoint w ON w.program_id = d.program_id AND w.id = d.endpoint_id
     WHERE d.status = 'pending' AND d.next_attempt_at <= $1
       AND w.status = 'enabled' AND w.deleted_at IS NULL
     ORDER BY d.next_attempt_at, d.id
     LIMIT $2
       FOR UPDATE OF d SKIP LOCKED
)
UPDATE webhook_delivery d
   SET attempts = d.attempts + 1, next_attempt_at = $3, updated_at = $1
  FROM due WHERE d.program_id = due.program_id AND d.id = due.id
RETURNING d.program_id, d.id, d.endpoint_id, d.event_id, d.attempts
"""

RECORD_ATTEMPT = """
INSERT INTO webhook_attempt (program_id, delivery_id, attempt, attempted_at, status_code, duration_ms, error)
VALUES ($7, $1, $2, $3, $4, $5, $6)
"""


@dataclass(frozen=True, slots=True)
class Outcome:
    delivery_id: int
    endpoint_id: uuid.UUID
    program_id: int
    attempt: int
    attempted_at: datetime
    status_code: int | None
    duration_ms: int
    error: str | None
    event_created_at: datetime

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == 410


def webhook_client(settings: Settings, verify: ssl.SSLContext | bool = True) -> httpx.AsyncClient:
    """The dispatcher's HTTP client: each connection goes to an address of its
    host checked for the environment (app/webhooks/urls.py), never a redirect."""
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    return httpx.AsyncClient(
        transport=CheckedTransport(settings.env, limits, verify=verify),
        timeout=settings.webhook_timeout_seconds,
        follow_redirects=False,
        trust_env=False,
    )


def signature(secrets: list[str], event_id: str, at: datetime, body: str) -> str:
    """The webhook-signature header: one `v1,...` per secret in force, space-separated."""
    return " ".join(Webhook(secret).sign(event_id, at, body) for secret in secrets)


class Dispatcher:
    def __init__(
        self, db: Database, settings: Settings, clock: Clock, client: httpx.AsyncClient | None = None
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.client = client or webhook_client(settings)
        self.retries = settings.webhook_retries

    async def close(self) -> None:
        await self.client.aclose()

    # -- fan-out --------------------------------------------------------------

    async def fanout(self) -> int:
        """Turn every program's new events into deliveries; how many deliveries."""
        made = 0
        async with self.db.pool.acquire() as connection:
            for row in await connection.fetch(BEHIND):
                while True:
                    done, more = await self._fanout_program(connection, row["program_id"])
                    made += done
                    if not more:
                        break
        return made

    async def _fanout_program(self, connection: Connection, program_id: int) -> tuple[int, bool]:
        now = self.clock.now()
        async with connection.transaction():
            await connection.execute(
                "INSERT INTO webhook_fanout (program_id, sequence) VALUES ($1, 0) ON CONFLICT DO NOTHING",
                program_id,
            )
            cursor = await connection.fetchval(
                "SELECT sequence FROM webhook_fanout WHERE program_id = $1 FOR UPDATE", program_id
            )
            endpoints = await connection.fetch(FANOUT_ENDPOINTS, program_id)
            if not endpoints:  # nobody to send to: move past what is there without reading it
                await connection.execute(
                    "UPDATE webhook_fanout f SET sequence = h.event_sequence FROM chain_head h"
                    " WHERE f.program_id = $1 AND h.program_id = $1",
                    program_id,
                )
                return 0, False
            events = await connection.fetch(FANOUT_EVENTS, program_id, cursor, FANOUT_BATCH)
            if not events:
                return 0, False
            endpoint_ids: list[uuid.UUID] = []
            event_ids: list[uuid.UUID] = []
            for event in events:
                for endpoint in endpoints:
                    if event["endpoint_id"] is not None and event["endpoint_id"] != endpoint["id"]:
                        continue
                    if event["created_at"] < endpoint["created_at"] and event["endpoint_id"] is None:
                        continue  # subscribed after it happened
                    if event["endpoint_id"] is None and not matches(endpoint["events"], event["type"]):
                        continue
                    endpoint_ids.append(endpoint["id"])
                    event_ids.append(event["id"])
            if endpoint_ids:
                await connection.execute(INSERT_DELIVERIES, endpoint_ids, event_ids, now, program_id)
            await connection.execute(
                "UPDATE webhook_fanout SET sequence = $2 WHERE program_id = $1",
                program_id,
                events[-1]["sequence"],
            )
        return len(endpoint_ids), len(events) == FANOUT_BATCH

    # -- sending --------------------------------------------------------------

    async def dispatch(self) -> int:
        """Claim and send one batch of due deliveries; how many were attempted."""
        now = self.clock.now()
        lease = now + timedelta(seconds=self.settings.webhook_timeout_seconds) + LEASE_MARGIN
        async with self.db.pool.acquire() as connection:
            claimed = await connection.fetch(CLAIM, now, CLAIM_BATCH, lease)
            if not claimed:
                return 0
            wanted = list({(row["program_id"], row["endpoint_id"]) for row in claimed})
            endpoints = {
                row["id"]: row
                for row in await connection.fetch(
                    "SELECT w.id, w.program_id, w.url, w.secret, w.previous_secret, w.previous_until"
                    " FROM unnest($1::bigint[], $2::uuid[]) AS x(program_id, id)"
                    " JOIN webhook_endpoint w ON w.program_id = x.program_id AND w.id = x.id",
                    [program for program, _ in wanted],
                    [endpoint for _, endpoint in wanted],
                )
            }
            events = list({(row["program_id"], row["event_id"]) for row in claimed})
            event_rows = await connection.fetch(
                "SELECT l.id, l.program_id, l.type, l.sequence, l.occurred_at, l.created_at,"
                " l.data::text AS data, l.entry_id"
                " FROM unnest($1::bigint[], $2::uuid[]) AS x(program_id, id)"
                " JOIN event_log l ON l.program_id = x.program_id AND l.id = x.id",
                [program for program, _ in events],
                [event for _, event in events],
            )
            bodies: dict[uuid.UUID, tuple[str, datetime, int]] = {}
            by_program: dict[int, list[asyncpg.Record]] = {}
            for event_row in event_rows:
                by_program.setdefault(event_row["program_id"], []).append(event_row)
            for program_id, rows in by_program.items():
                for event in await render(connection, program_id, rows):
                    bodies[event.id] = (event.model_dump_json(), event.created_at, program_id)
        limit = asyncio.Semaphore(CONCURRENCY)

        async def one(row: asyncpg.Record) -> Outcome:
            async with limit:
                endpoint = endpoints[row["endpoint_id"]]
                body, created_at, program_id = bodies[row["event_id"]]
                return await self._send(row, endpoint, body, created_at, program_id)

        outcomes = await asyncio.gather(*(one(row) for row in claimed))
        await self._record(outcomes)
        return len(outcomes)

    async def _send(
        self, row: asyncpg.Record, endpoint: asyncpg.Record, body: str, created_at: datetime, program_id: int
    ) -> Outcome:
        attempted_at = self.clock.now()
        started = time.perf_counter()
        status_code: int | None = None
        error: str | None = None
        try:
            # one deadline for the whole attempt (resolving and checking the host
            # included), inside the claim's lease
            async with asyncio.timeout(self.settings.webhook_timeout_seconds):
                status_code = await self._post(row, endpoint, body, attempted_at)
            if not 200 <= status_code < 300:
                error = f"the receiver answered {status_code}"
            WEBHOOK_DELIVERIES.labels(
                "success" if error is None else ("gone" if status_code == 410 else "failure")
            ).inc()
        except UnsafeUrl as exc:
            error = f"refused: {exc}"
            WEBHOOK_DELIVERIES.labels("blocked").inc()
        except TimeoutError:
            error = f"no answer within {self.settings.webhook_timeout_seconds:g} s"
            WEBHOOK_DELIVERIES.labels("failure").inc()
        except Exception as exc:  # any failure of one attempt is that attempt's, never the round's
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            WEBHOOK_DELIVERIES.labels("failure").inc()
        duration_ms = int((time.perf_counter() - started) * 1000)
        return Outcome(
            row["id"],
            row["endpoint_id"],
            program_id,
            row["attempts"],
            attempted_at,
            status_code,
            duration_ms,
            error,
            created_at,
        )

    async def _post(self, row: asyncpg.Record, endpoint: asyncpg.Record, body: str, at: datetime) -> int:
        # the client checks where it connects (UnsafeUrl when refused)
        secrets = [endpoint["secret"]]
        if endpoint["previous_secret"] and endpoint["previous_until"] and endpoint["previous_until"] > at:
            secrets.append(endpoint["previous_secret"])
        event_id = str(row["event_id"])
        # the wall clock, not the service's: receivers check it against theirs
        signed_at = datetime.fromtimestamp(time.time(), UTC)
        response = await self.client.post(
            endpoint["url"],
            content=body.encode(),
            headers={
                "content-type": "application/json",
                "user-agent": "points-ledger-webhooks/0.1",
                "webhook-id": event_id,
                "webhook-timestamp": str(int(signed_at.timestamp())),
                "webhook-signature": signature(secrets, event_id, signed_at, body),
            },
        )
        return response.status_code

    async def _record(self, outcomes: list[Outcome]) -> None:
        """Every attempt of a round and what follows from it, in one transaction."""
        now = self.clock.now()
        succeeded = [outcome for outcome in outcomes if outcome.succeeded]
        first_successes: list[Outcome] = []
        async with self.db.pool.acquire() as connection, connection.transaction():
            await connection.executemany(
                RECORD_ATTEMPT,
                [
                    (
                        o.delivery_id,
                        o.attempt,
                        o.attempted_at,
                        o.status_code,
                        o.duration_ms,
                        o.error,
                        o.program_id,
                    )
                    for o in outcomes
                ],
            )
            if succeeded:
                # only deliveries still pending: a success that comes back after its
                # lease ran out, when another dispatcher has delivered it since, is
                # no delivery's first
                delivered = {
                    (row["program_id"], row["id"])
                    for row in await connection.fetch(
                        "UPDATE webhook_delivery d"
                        "   SET status = 'succeeded', next_attempt_at = NULL, updated_at = $3"
                        "  FROM unnest($1::bigint[], $2::bigint[]) AS x(program_id, id)"
                        " WHERE d.program_id = x.program_id AND d.id = x.id AND d.status = 'pending'"
                        " RETURNING d.program_id, d.id",
                        [outcome.program_id for outcome in succeeded],
                        [outcome.delivery_id for outcome in succeeded],
                        now,
                    )
                }
                first_successes = [o for o in succeeded if (o.program_id, o.delivery_id) in delivered]
                recovered = list({(outcome.program_id, outcome.endpoint_id) for outcome in succeeded})
                await connection.execute(
                    "UPDATE webhook_endpoint w SET failing_since = NULL"
                    "  FROM unnest($1::bigint[], $2::uuid[]) AS x(program_id, id)"
                    " WHERE w.program_id = x.program_id AND w.id = x.id AND w.failing_since IS NOT NULL",
                    [program for program, _ in recovered],
                    [endpoint for _, endpoint in recovered],
                )
            for outcome in outcomes:
                if not outcome.succeeded:
                    await self._record_failure(connection, outcome, now)
        # from the event's creation to its first 2xx: once per delivery
        for outcome in first_successes:
            WEBHOOK_DELIVERY_LATENCY.observe(max(0.0, (now - outcome.event_created_at).total_seconds()))

    async def _record_failure(self, connection: Connection, outcome: Outcome, now: datetime) -> None:
        # Only while this attempt is still the delivery's latest: an outcome that
        # comes back after its lease ran out (another dispatcher has claimed the
        # delivery again since) is kept in the attempts and changes nothing else.
        if outcome.gone or outcome.attempt > len(self.retries):
            status, next_attempt = "failed", None
        else:
            wait = self.retries[outcome.attempt - 1] * (1 + random.uniform(0, 0.1))  # jitter
            status, next_attempt = "pending", now + timedelta(seconds=wait)
        current = await connection.fetchval(
            "UPDATE webhook_delivery SET status = $3, next_attempt_at = $4, updated_at = $5"
            " WHERE program_id = $6 AND id = $1 AND attempts = $2 AND status = 'pending' RETURNING id",
            outcome.delivery_id,
            outcome.attempt,
            status,
            next_attempt,
            now,
            outcome.program_id,
        )
        if current is None:
            return
        if outcome.gone:
            await self._disable(connection, outcome, "gone", now)
            return
        since = await connection.fetchval(
            "UPDATE webhook_endpoint SET failing_since = coalesce(failing_since, $2)"
            " WHERE program_id = $3 AND id = $1 RETURNING failing_since",
            outcome.endpoint_id,
            outcome.attempted_at,
            outcome.program_id,
        )
        if since is not None and now - since >= FAILING_LIMIT:
            await self._disable(connection, outcome, "failing", now)

    async def _disable(self, connection: Connection, outcome: Outcome, reason: str, now: datetime) -> None:
        row = await connection.fetchrow(
            "UPDATE webhook_endpoint SET status = 'disabled', disabled_reason = $2, updated_at = $3"
            " WHERE program_id = $4 AND id = $1 AND status = 'enabled' RETURNING id, url",
            outcome.endpoint_id,
            reason,
            now,
            outcome.program_id,
        )
        if row is None:
            return
        logger.warning("webhook %s disabled: %s", row["id"], reason)
        data: dict[str, Any] = {"webhook": str(row["id"]), "url": row["url"], "reason": reason}
        await emit(connection, outcome.program_id, "webhook.disabled", data, occurred_at=now, now=now)

    # -- the loop -------------------------------------------------------------

    async def run_once(self) -> int:
        """One round: fan out, then send until nothing is due; how many attempts."""
        await self.fanout()
        sent = 0
        while (done := await self.dispatch()) > 0:
            sent += done
        return sent


async def run(dispatcher: Dispatcher, dsn: str, stop: asyncio.Event, idle: float = 1.0) -> None:
    """Dispatch until `stop`: woken by the chainer's NOTIFY, and every `idle` seconds
    for retries that fall due. A failed round is logged and tried again."""
    wake = asyncio.Event()
    listener = asyncio.create_task(
        listen(dsn, CHANNEL, on_notify=wake.set, on_state=lambda _listening: None, stop=stop)
    )
    try:
        while not stop.is_set():
            wake.clear()
            try:
                await dispatcher.run_once()
            except Exception:
                logger.warning("webhook dispatch failed; trying again", exc_info=True)
            waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())}
            _, pending = await asyncio.wait(waiters, timeout=idle, return_when=asyncio.FIRST_COMPLETED)
            for waiter in pending:
                waiter.cancel()
    finally:
        await listener
        await dispatcher.close()
