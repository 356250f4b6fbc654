"""What every request can reach: settings, database, clock, authenticator."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.auth.service import Authenticator
from app.clock import Clock
from app.config import Settings
from app.db import Database
from app.principal import Principal
from app.rulesets.cache import RulesCache


@dataclass(slots=True)
class AppContext:
    settings: Settings
    db: Database
    clock: Clock
    auth: Authenticator
    rules: RulesCache = field(default_factory=RulesCache)


async def get_context(request: Request) -> AppContext:
    # async on purpose: FastAPI runs plain `def` dependencies in a thread pool.
    context: AppContext = request.app.state.context
    return context


Context = Annotated[AppContext, Depends(get_context)]

_bearer = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer plk_...`")


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """Dependency: the calling key, which must hold `scope` (or `admin`)."""

    async def principal(
        request: Request,
        context: Context,
        _: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    ) -> Principal:
        caller = await context.auth.authenticate(request.headers.get("authorization"))
        caller.require(scope)
        return caller

    return principal
