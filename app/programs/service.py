"""Programs (tenants). Creating one is the platform operator's job: an admin key
of the default program."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import service as auth
from app.auth.service import DEFAULT_PROGRAM
from app.context import AppContext
from app.db import Database
from app.errors import AppError, Forbidden
from app.ledger import accounts
from app.principal import Principal
from app.programs import repository
from app.programs.schemas import ProgramCreate, ProgramCreated
from app.rulesets import service as rulesets


class ProgramExists(AppError):
    status, code, title = 409, "program_exists", "A program with this code already exists"


async def create_program(context: AppContext, principal: Principal, body: ProgramCreate) -> ProgramCreated:
    if principal.program_code != DEFAULT_PROGRAM:
        raise Forbidden("programs are created with an admin key of the default program")
    now = context.clock.now()
    point_name = body.point_name or "points"

    async def work(session: AsyncSession) -> str:
        try:
            program_id = await repository.insert_program(
                session, code=body.code, name=body.name, point_name=point_name, now=now
            )
        except IntegrityError as exc:
            raise ProgramExists(f"program {body.code} already exists") from exc
        await accounts.open_program_accounts(session, program_id)
        await rulesets.create_default(session, program_id, now)
        _, key = await auth.create_key(
            session,
            program_id=program_id,
            name="admin",
            scopes=["admin"],
            partner_code=None,
            now=now,
        )
        return key

    key = await context.db.run(work)
    return ProgramCreated(
        code=body.code, name=body.name, point_name=point_name, created_at=now, admin_key=key
    )


async def program_ids(db: Database) -> list[int]:
    """Every program, for jobs that run over all of them."""
    return await db.run(repository.program_ids)
