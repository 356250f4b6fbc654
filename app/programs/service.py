"""Programs (tenants). Creating one is the platform operator's job: an admin key
of the default program."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import service as auth
from app.auth.service import DEFAULT_PROGRAM
from app.context import AppContext
from app.db import Connection, Database
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


# The prefix of an erased member's pseudonym: enrolment refuses external ids that
# start with it, so a pseudonym can never be taken by a new member.
PSEUDONYM_PREFIX = "erased:"
ERASURE_SECRET = "erasure"


def pseudonym(key: bytes, external_id: str) -> str:
    """The stable pseudonym of `external_id` under a program's `erasure` key:
    "erased:" and the hex HMAC-SHA256 of the id. Nobody without that key (kept in
    program_secret, never answered) can tell which id it was made from, and the same
    id always gives the same pseudonym, so re-enrolling an erased id is noticed."""
    return PSEUDONYM_PREFIX + hmac.new(key, external_id.encode(), hashlib.sha256).hexdigest()


async def erasure_key(connection: Connection, program_id: int, now: datetime) -> bytes:
    """The program's `erasure` key, made (32 random bytes) the first time."""
    key = await repository.secret(connection, program_id, ERASURE_SECRET)
    if key is None:
        key = await repository.make_secret(
            connection, program_id, ERASURE_SECRET, secrets.token_bytes(32), now
        )
    return key


async def erasure_key_if_any(connection: Connection, program_id: int) -> bytes | None:
    """The program's `erasure` key; None while it has erased nobody."""
    return await repository.secret(connection, program_id, ERASURE_SECRET)


async def erased_pseudonym(session: AsyncSession, program_id: int, external_id: str) -> str | None:
    """What `external_id` would be called had it been erased; None while the program
    has erased nobody (it has no key yet)."""
    key = await repository.secret_in_session(session, program_id, ERASURE_SECRET)
    return None if key is None else pseudonym(key, external_id)
