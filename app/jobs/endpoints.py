"""Run a job for the caller's program (admin)."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated

from fastapi import Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from app.config import Environment
from app.context import Context, require
from app.errors import Forbidden, ValidationFailed, error_responses
from app.fields import Instant
from app.http import api_router
from app.jobs import service
from app.jobs.service import JobSummary
from app.principal import Principal

router = api_router(prefix="/v1/jobs", tags=["jobs"])


class JobIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"as_of": "2026-11-25T00:00:00Z"}]}
    )

    as_of: Instant | None = Field(
        default=None,
        description="run as of this instant (default now); a future instant only outside production",
        examples=[None],
    )


@router.post(
    "/{name}",
    response_model=JobSummary,
    operation_id="runJob",
    responses=error_responses(Forbidden, service.UnknownJob),
)
async def run_job(
    name: Annotated[
        str,
        Path(
            max_length=64,
            description="the job: lift-statuses, activate-pending, release-holds, expire, evaluate-tiers, "
            "notify-expiring, fail-conversions, close-statements, check-cost-cap, snapshot-segments "
            "or rollup-reports",
            examples=["expire"],
        ),
    ],
    context: Context,
    principal: Annotated[Principal, Depends(require("admin"))],
    body: JobIn | None = None,
) -> JobSummary:
    """Run a job to completion for the caller's program and answer with what it did.
    Jobs are idempotent: running one again for the same `as_of` changes nothing."""
    now = context.clock.now()
    as_of = now if body is None or body.as_of is None else body.as_of.astimezone(UTC)
    if as_of > now and context.settings.env is Environment.production:
        raise ValidationFailed.on("body.as_of", "a job runs as of a future instant only outside production")
    return await service.run(context.db, name, program_id=principal.program_id, as_of=as_of, now=now)
