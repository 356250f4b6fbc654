"""What every request can reach: settings, database, clock, the key authenticator
and the rules cache.

Shared infrastructure: it names what it needs of the authenticator (app.auth) and
the rules cache (app.rulesets) as protocols, and the composition root
(app/main.py) hands it the real ones, so every domain can depend on this module
without depending upward."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Protocol

from fastapi import Depends, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.clock import Clock
from app.config import Settings
from app.db import Connection, Database
from app.pagination import Cursors
from app.principal import Principal
from app.rules import RulesDocument


class Authenticates(Protocol):
    """Resolves a bearer token to the caller (app.auth.service.Authenticator)."""

    async def authenticate(self, authorization: str | None) -> Principal: ...

    def forget(self) -> None: ...


class RulesSource(Protocol):
    """Rules documents by version, and each program's active one
    (app.rulesets.cache.RulesCache)."""

    async def document(self, connection: Connection, program_id: int, version: int) -> RulesDocument: ...

    async def active(self, connection: Connection, program_id: int) -> tuple[int, RulesDocument]: ...

    def cached_active(self, program_id: int) -> tuple[tuple[int, RulesDocument] | None, int]: ...

    def remember_active(self, program_id: int, version: int, generation: int) -> None: ...

    def activated(self) -> None: ...


@dataclass(slots=True)
class AppContext:
    settings: Settings
    db: Database
    clock: Clock
    auth: Authenticates
    rules: RulesSource
    # Signs list cursors; app.main gives it the service's own key (every replica
    # the same), tools and benchmarks a key of their own.
    cursors: Cursors = field(default_factory=Cursors.ephemeral)


async def get_context(request: Request) -> AppContext:
    # async on purpose: FastAPI runs plain `def` dependencies in a thread pool.
    context: AppContext = request.app.state.context
    return context


get_context.resolve_from_request = get_context  # type: ignore[attr-defined]  # app.http.ApiRoute

Context = Annotated[AppContext, Depends(get_context)]

_bearer = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer plk_...`")


_PRINCIPAL = "principal"  # where AuthorizedRoute leaves the caller, in request.state


async def authorize(request: Request, scope: str) -> Principal:
    """The caller, checked once per request (401 without a valid key, 403 without
    `scope`); the same Principal for every later check of the request."""
    found: Principal | None = getattr(request.state, _PRINCIPAL, None)
    if found is None:
        context: AppContext = request.app.state.context
        found = await context.auth.authenticate(request.headers.get("authorization"))
        setattr(request.state, _PRINCIPAL, found)
    found.require(scope)
    return found


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """Dependency: the calling key, which must hold `scope` (or `admin`). An
    ApiRoute (app.http) checked it before anything else about the request."""

    async def principal(
        request: Request,
        _: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    ) -> Principal:
        return await authorize(request, scope)

    async def resolve(request: Request) -> Principal:
        return await authorize(request, scope)

    principal.required_scope = scope  # type: ignore[attr-defined]  # read by app.http.ApiRoute
    principal.resolve_from_request = resolve  # type: ignore[attr-defined]  # app.http.ApiRoute
    return principal


def required_scope(dependant: Dependant) -> str | None:
    """The scope a route's `require()` dependency asks for, if it has one."""
    for dependency in dependant.dependencies:
        scope = getattr(dependency.call, "required_scope", None)
        if isinstance(scope, str):
            return scope
        scope = required_scope(dependency)
        if scope is not None:
            return scope
    return None
