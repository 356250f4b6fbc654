"""Liveness, readiness and metrics for orchestrators and Prometheus."""

from __future__ import annotations

import asyncio

from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from app.context import Context
from app.errors import ServiceUnavailable, error_responses
from app.http import api_router

router = api_router(tags=["operations"])


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


@router.get("/metrics", operation_id="metrics", response_class=Response)
async def metrics() -> Response:
    """Prometheus text exposition."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
