"""What every request can reach: settings, database, clock, the key authenticator
and the rules cache.

Shared infrastructure: it names what it needs of the authenticator (app.auth) and
the rules cache (app.rulesets) as protocols, and the composition root
(app/main.py) hands it the real ones, so every domain can depend on this module
without depending upward."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.responses import Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.clock import Clock
from app.config import Settings
from app.db import Connection, Database
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

    def activated(self) -> None: ...


@dataclass(slots=True)
class AppContext:
    settings: Settings
    db: Database
    clock: Clock
    auth: Authenticates
    rules: RulesSource


async def get_context(request: Request) -> AppContext:
    # async on purpose: FastAPI runs plain `def` dependencies in a thread pool.
    context: AppContext = request.app.state.context
    return context


Context = Annotated[AppContext, Depends(get_context)]

_bearer = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer plk_...`")


_PRINCIPAL = "principal"  # where AuthorizedRoute leaves the caller, in request.state


async def _authorize(request: Request, scope: str) -> Principal:
    found: Principal | None = getattr(request.state, _PRINCIPAL, None)
    if found is None:
        context: AppContext = request.app.state.context
        found = await context.auth.authenticate(request.headers.get("authorization"))
        setattr(request.state, _PRINCIPAL, found)
    found.require(scope)
    return found


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """Dependency: the calling key, which must hold `scope` (or `admin`). On an
    AuthorizedRoute the key was checked before anything else about the request."""

    async def principal(
        request: Request,
        _: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    ) -> Principal:
        return await _authorize(request, scope)

    principal.required_scope = scope  # type: ignore[attr-defined]  # read by AuthorizedRoute
    return principal


def _required_scope(dependant: Dependant) -> str | None:
    for dependency in dependant.dependencies:
        scope = getattr(dependency.call, "required_scope", None)
        if isinstance(scope, str):
            return scope
        scope = _required_scope(dependency)
        if scope is not None:
            return scope
    return None


class AuthorizedRoute(APIRoute):
    """A route that decides authentication (401) and authorization (403) before
    anything about the request is read or validated: body, path, query, headers
    such as Idempotency-Key. A caller without a key learns nothing else."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        scope = _required_scope(self.dependant)
        if scope is None:
            return handler

        async def authorized(request: Request) -> Response:
            await _authorize(request, scope)
            return await handler(request)

        return authorized


def api_router(**options: Any) -> APIRouter:
    """Every router of the API: its routes are AuthorizedRoutes."""
    return APIRouter(route_class=AuthorizedRoute, **options)
