from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.context import Context, require
from app.errors import Forbidden, error_responses
from app.http import api_router
from app.principal import Principal
from app.programs import service
from app.programs.schemas import ProgramCreate, ProgramCreated

router = api_router(prefix="/v1/programs", tags=["programs"])


@router.post(
    "",
    status_code=201,
    response_model=ProgramCreated,
    operation_id="createProgram",
    responses=error_responses(Forbidden, service.ProgramExists),
)
async def create_program(
    body: ProgramCreate,
    context: Context,
    principal: Annotated[Principal, Depends(require("admin"))],
) -> ProgramCreated:
    """Create a program (tenant) with its system accounts and return an admin key
    for it, shown once. Needs an admin key of the default program."""
    return await service.create_program(context, principal, body)
