"""Prometheus metrics: request latency by route, ledger entries by kind, problems by
code; and the per-request middleware that times each request and gives it its id."""

from __future__ import annotations

import os
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import requestid
from app.errors import internal_error
from app.logs import access

REQUESTS = Histogram(
    "points_ledger_http_request_duration_seconds",
    "HTTP request latency by method, route template and status",
    ("method", "route", "status"),
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


class MetricsMiddleware:
    """Plain ASGI (no BaseHTTPMiddleware) to keep the per-request cost to a timer and
    a header: it times the request and gives it its id (app/requestid.py)."""

    def __init__(self, app: ASGIApp, *, access_log: bool = False) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        request_id = requestid.accept(dict(scope["headers"]).get(b"x-request-id"))
        token = requestid.current.set(request_id)
        header = (b"x-request-id", request_id.encode())

        started_answer = False

        async def send_with_status(message: Message) -> None:
            nonlocal status, started_answer
            if message["type"] == "http.response.start":
                status = message["status"]
                started_answer = True
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        except Exception as exc:
            # Answered here, not by Starlette's outermost handler: there the id is
            # gone, and the 500, its problem document and its log line would lack it.
            if started_answer:
                raise
            await internal_error(scope["method"], scope["path"], exc)(scope, receive, send_with_status)
        finally:
            elapsed = time.perf_counter() - started
            if self.access_log:
                access.info(
                    "%s %s %s %.1f ms",
                    scope["method"],
                    scope["path"],
                    status,
                    elapsed * 1000,
                    extra={"method": scope["method"], "path": scope["path"], "status": status},
                )
            requestid.current.reset(token)
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            REQUESTS.labels(scope["method"], template, str(status)).observe(elapsed)


def scrape() -> bytes:
    """The exposition: this process's metrics, or with PROMETHEUS_MULTIPROC_DIR set
    (`serve --workers N` sets it), every worker process's, summed."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()


ENTRIES = Counter("points_ledger_entries_total", "journal entries written, by kind", ("kind",))

CHAIN_LAG = Gauge(
    "points_ledger_chain_lag_seconds",
    "age of the oldest journal entry the chainer has not chained yet (0: none waiting)",
    multiprocess_mode="max",
)

OUTBOX_DEPTH = Gauge(
    "points_ledger_outbox_depth",
    "events written but not yet given their place in the event log's sequence",
    multiprocess_mode="max",
)

WEBHOOK_DELIVERIES = Counter(
    "points_ledger_webhook_deliveries_total",
    "webhook delivery attempts, by result (success, failure, gone, blocked)",
    ("result",),
)

WEBHOOK_DELIVERY_LATENCY = Histogram(
    "points_ledger_webhook_delivery_latency_seconds",
    "from an event's creation to its first successful delivery",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
)
