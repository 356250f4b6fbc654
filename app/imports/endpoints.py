"""Import rows from a legacy program over HTTP (admin): the same as
`points-ledger import`, for scripted migrations, at most 10,000 rows a call."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path

from app.context import Context, require
from app.errors import Forbidden, error_responses
from app.http import api_router
from app.imports import service
from app.imports.schemas import MAX_HTTP_ROWS, ImportIn, ImportKind, ImportSummary
from app.principal import Principal

router = api_router(prefix="/v1/imports", tags=["imports"])


@router.post(
    "/{kind}",
    response_model=ImportSummary,
    operation_id="importRows",
    responses=error_responses(
        Forbidden, service.ImportTooLarge, service.ControlTotalsMismatch, service.ImportRowsInvalid
    ),
)
async def import_rows(
    kind: Annotated[
        ImportKind, Path(description="what the rows are: members, lots, orders or tiers", examples=["lots"])
    ],
    body: ImportIn,
    context: Context,
    principal: Annotated[Principal, Depends(require("admin"))],
) -> ImportSummary:
    """Import rows of one kind from a legacy program and answer with the summary:
    rows read, imported, skipped (already imported: the same source and reference),
    invalid (each in `errors`, the valid rows imported), points, and points by
    expiry month. Sending the same rows again is a no-op, so no Idempotency-Key is
    needed. `dry_run` writes nothing; control totals that don't match refuse the
    call (422 `import_control_totals_mismatch`), as does an invalid row under
    `all_or_nothing` (422 `import_rows_invalid`); both write nothing."""
    if len(body.rows) > MAX_HTTP_ROWS:
        raise service.ImportTooLarge(
            f"{len(body.rows)} rows in one call; at most {MAX_HTTP_ROWS} (send the rest in further calls)"
        )
    return await service.run(
        context.db,
        context.rules,
        program_id=principal.program_id,
        kind=kind,
        source=body.source,
        rows=body.rows,
        options=service.Options(
            dry_run=body.dry_run,
            all_or_nothing=body.all_or_nothing,
            expect_rows=body.expect_rows,
            expect_points=body.expect_points,
        ),
        now=context.clock.now(),
        actor_key_id=principal.key_id,
    )
