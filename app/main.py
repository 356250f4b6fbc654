"""Builds the application."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

# Every table, so that SQLAlchemy can resolve foreign keys between domains (an
# account names its partner, a key its partner) whichever domain writes first.
import app.models  # noqa: F401
from app import contract
from app.approvals.endpoints import router as approvals_router
from app.auth.endpoints import router as api_keys_router
from app.auth.service import Authenticator
from app.budgets.endpoints import router as budgets_router
from app.clock import Clock, SystemClock
from app.config import Settings, get_settings
from app.context import AppContext
from app.db import Database
from app.errors import install_error_handlers
from app.eventlog.endpoints import router as eventlog_router
from app.events.endpoints import router as events_router
from app.holds.endpoints import router as holds_router
from app.http import BodyLimit
from app.imports.endpoints import router as imports_router
from app.jobs.endpoints import router as jobs_router
from app.ledger import chain
from app.ledger.endpoints import router as ledger_router
from app.members.endpoints import router as members_router
from app.metrics import MetricsMiddleware
from app.ops.endpoints import router as ops_router
from app.orders.endpoints import member_orders_router, simulation_router
from app.orders.endpoints import router as orders_router
from app.pagination import Cursors
from app.partners.endpoints import admin_router as partners_router
from app.partners.endpoints import member_router as partner_member_router
from app.partners.endpoints import partner_router
from app.positions import WritePositions
from app.privacy.endpoints import router as privacy_router
from app.programs.endpoints import router as programs_router
from app.reports.endpoints import router as reports_router
from app.rulesets.cache import RulesCache
from app.rulesets.endpoints import router as rules_router
from app.segments.endpoints import router as segments_router
from app.service_keys import CURSOR_KEY, service_secret
from app.tiers.endpoints import router as tiers_router
from app.webhooks import dispatcher
from app.webhooks.endpoints import router as webhooks_router

DESCRIPTION = """A headless loyalty-points service over an append-only double-entry ledger.

Every ledger-changing POST needs an `Idempotency-Key`; errors are RFC 9457
`application/problem+json` with a stable `code`."""


def background(
    db: Database, settings: Settings, clock: Clock, dsn: str, stop: asyncio.Event
) -> list[asyncio.Task[None]]:
    """The chainer and the webhook dispatcher, until `stop` (serve and worker)."""
    return [
        asyncio.create_task(
            chain.run(db, clock, stop, every=settings.chain_interval_seconds, batch=settings.chain_batch)
        ),
        asyncio.create_task(dispatcher.run(dispatcher.Dispatcher(db, settings, clock), dsn, stop)),
    ]


def create_app(
    settings: Settings | None = None, *, database_url: str | None = None, clock: Clock | None = None
) -> FastAPI:
    settings = settings or get_settings()
    url = database_url or settings.database_url

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if url is None:
            raise RuntimeError("no database URL: set LEDGER_DATABASE_URL or start with `points-ledger serve`")
        db = Database(url, settings, read_url=settings.read_database_url)
        await db.connect()
        admin_key = settings.admin_key.get_secret_value() if settings.admin_key else None
        auth = Authenticator(db.pool, admin_key=admin_key, cache_seconds=settings.auth_cache_seconds)
        rules = RulesCache()
        async with db.pool.acquire() as connection:
            cursors = Cursors(await service_secret(connection, CURSOR_KEY))
        app.state.context = AppContext(
            settings=settings, db=db, clock=clock or SystemClock(), auth=auth, rules=rules, cursors=cursors
        )
        # Startup objects (routes, models, schemas) live as long as the process:
        # keep them out of the collector's full passes, which otherwise show up
        # as latency spikes under load (bench/awards.py p99).
        gc.freeze()
        stop = asyncio.Event()
        watchers = [
            # LISTEN takes a connection of its own, never through a pooler
            # (LEDGER_DIRECT_DATABASE_URL): see Settings.db_transaction_pooling.
            asyncio.create_task(auth.watch_revocations(db.direct_dsn, stop)),
            asyncio.create_task(rules.watch(db.direct_dsn, stop)),
        ]
        if settings.serve_background:
            watchers += background(db, settings, app.state.context.clock, db.direct_dsn, stop)
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*watchers)
            await db.dispose()

    app = FastAPI(
        title="points-ledger",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # /v1/members/ is not /v1/members: a 404 problem, never a 307 to another URL.
        redirect_slashes=False,
    )
    install_error_handlers(app)
    # Ledger-Position on what writes answer, when reads may come from a replica.
    app.add_middleware(WritePositions)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    # The outermost: times everything, ids every answer, logs it.
    app.add_middleware(MetricsMiddleware, access_log=settings.access_log_on)
    generated = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = contract.complete(generated())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # the documented hook for a custom schema
    for router in (
        ops_router,
        programs_router,
        api_keys_router,
        members_router,
        ledger_router,
        holds_router,
        budgets_router,  # before rules_router: /v1/rules/budgets is not a /v1/rules/{version}
        rules_router,
        simulation_router,
        orders_router,
        member_orders_router,
        jobs_router,
        imports_router,
        reports_router,
        segments_router,
        events_router,
        tiers_router,
        eventlog_router,
        webhooks_router,
        partners_router,
        partner_router,
        partner_member_router,
        privacy_router,
        approvals_router,
    ):
        app.include_router(router)
    return app
