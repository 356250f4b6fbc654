"""Liveness, readiness and metrics for orchestrators and Prometheus."""

from __future__ import annotations

import asyncio
import hmac
from typing import Annotated

from fastapi import Header, Security
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from app.context import Context
from app.db import database_unavailable
from app.errors import ServiceUnavailable, Unauthorized, error_responses
from app.http import api_router
from app.metrics import scrape
from app.partners import service as partners

router = api_router(tags=["operations"])
_metrics_bearer = HTTPBearer(auto_error=False, description="LEDGER_METRICS_TOKEN, when it is set")


class Health(BaseModel):
    status: str = Field(description="ok when healthy", examples=["ok"])


@router.get("/healthz", response_model=Health, operation_id="healthz")
async def healthz() -> Health:
    """The process is up and serving."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    operation_id="readyz",
    responses=error_responses(ServiceUnavailable),
)
async def readyz(context: Context) -> Health:
    """The database answers within two seconds."""
    try:
        async with asyncio.timeout(2):
            await context.db.pool.fetchval("SELECT 1")
    except (TimeoutError, OSError, Exception) as exc:
        raise ServiceUnavailable("the database is not reachable") from exc
    return Health(status="ok")


@router.get(
    "/metrics",
    operation_id="metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}, "description": "the metrics"},
        **error_responses(),
    },
)
async def metrics(
    context: Context,
    _: Annotated[HTTPAuthorizationCredentials | None, Security(_metrics_bearer)],
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """Prometheus text exposition: every worker process's counters together when the
    service runs several (`serve --workers N`), and each partner's funding and payable
    points, read at scrape time. With LEDGER_METRICS_TOKEN set, a
    scrape must send it as a bearer token."""
    token = context.settings.metrics_token
    if token is not None:
        expected = f"Bearer {token.get_secret_value()}"
        if authorization is None or not hmac.compare_digest(authorization.encode(), expected.encode()):
            raise Unauthorized("send the metrics token: Authorization: Bearer <LEDGER_METRICS_TOKEN>")
    exposition = scrape()
    try:
        exposition += await partners.balance_metrics(context.db)
    except Exception as exc:
        # The process's own metrics matter most while the database is away.
        if not database_unavailable(exc):
            raise
    return Response(exposition, media_type=CONTENT_TYPE_LATEST)
