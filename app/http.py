"""What every API route does before its endpoint runs, in this order:

1. authentication and authorization (401, 403), before anything about the request
   is read or validated: a caller without a key learns nothing else;
2. the body, on routes that take one (the others never read what was sent): one
   whose Content-Length is over the limit is 413 `payload_too_large` unread (a
   chunked one as soon as it passes the limit, BodyLimit); one that is not JSON by
   its Content-Type is 415 `unsupported_media_type`; a JSON body is parsed
   strictly (RFC 8259: no NaN or Infinity, no number a double can't hold, no key
   twice in one object), else 400 `malformed_json`.

Then the dependencies every endpoint shares (the context, the caller, the
Idempotency-Key) are resolved by the route itself, in the order the endpoint
declares them, and FastAPI validates the parsed body, path, query and headers as
declared. FastAPI's own dependency solving costs a fixed amount per dependency
level whatever the dependency does: on the checkout's POST /v1/orders, its four
levels (context, Idempotency-Key, caller, bearer scheme) were 11% of a worker's
py-spy samples (docs/performance.md, bench/dependencies.py). The endpoint's full signature still makes the
OpenAPI document; only the handler runs without them."""

from __future__ import annotations

import inspect
import json
import math
import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from fastapi import routing as fastapi_routing
from fastapi.dependencies.models import Dependant
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.context import authorize, required_scope
from app.errors import AppError, MalformedJson

# application/json, and any +json type (application/merge-patch+json, ...), with
# parameters (charset) allowed.
_JSON_MEDIA_TYPE = re.compile(r"^application/(?:json|[a-z0-9.!#$&^_-]+\+json)\s*(?:;.*)?$", re.IGNORECASE)


class UnsupportedMediaType(AppError):
    status, code, title = 415, "unsupported_media_type", "The body must be JSON"


class PayloadTooLarge(AppError):
    status, code, title = 413, "payload_too_large", "The body is larger than the service accepts"


# Where BodyLimit leaves the limit, in the ASGI scope, for the route to check a
# declared Content-Length against once it has authorized the request; and where a
# route that takes no body says so, for BodyLimit to stop counting what it is sent
# (a streamed answer still reads the request, to notice a disconnect).
_BODY_LIMIT = "ledger.body_limit"
_BODY_IGNORED = "ledger.body_ignored"


class BodyLimit:
    """Bounds request bodies at `limit` bytes: 413 `payload_too_large` before a body
    is read in full. A route that takes a body refuses one whose Content-Length is
    over the limit once the caller is authorized, without reading it (ApiRoute);
    a chunked body is refused as soon as the bytes read pass the limit. A route
    that takes no body never reads one, so it never answers 413, and what it is
    sent is not counted (a streamed answer reads the request to notice a
    disconnect: it must not be cut short by a body nobody asked for)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[_BODY_LIMIT] = self.limit
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request" and not scope.get(_BODY_IGNORED):
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _too_large(self.limit)  # rendered by the error handlers, wherever the body is read
            return message

        await self.app(scope, limited, send)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the body may be at most {limit} bytes")


def _declared_too_large(request: Request) -> None:
    limit: int | None = request.scope.get(_BODY_LIMIT)
    declared = request.headers.get("content-length", "")
    if limit is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259 has no NaN or Infinity)")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text[:40]} is too large for a double")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise ValueError(f"the key {key[:40]!r} appears twice in one object")
        found[key] = value
    return found


def strict_json(body: bytes) -> Any:
    """Parse a request body as RFC 8259 JSON; 400 `malformed_json` if it isn't."""
    try:
        return json.loads(
            body.decode("utf-8"),
            parse_constant=_refuse_constant,
            parse_float=_finite,
            object_pairs_hook=_unique_keys,
        )
    except UnicodeDecodeError as exc:
        raise MalformedJson("the body is not UTF-8") from exc
    except RecursionError as exc:
        raise MalformedJson("the body nests too deeply") from exc
    except ValueError as exc:  # JSONDecodeError, and the refusals above
        raise MalformedJson(f"the body is not valid JSON: {str(exc)[:200]}") from exc


class JsonRequest(Request):
    """A request whose `json()` is strict_json() (FastAPI parses bodies through it)."""

    async def json(self) -> Any:
        if not hasattr(self, "_strict_json"):
            self._strict_json = strict_json(await self.body())
        return self._strict_json


# A dependency whose callable carries this attribute, a function of the request, is
# resolved by ApiRoute through it instead of by FastAPI (app.context, app.idempotency).
RESOLVE_FROM_REQUEST = "resolve_from_request"
_RESOLVED = "ledger.resolved"  # where ApiRoute leaves them, in the ASGI scope

Resolver = Callable[[Request], Awaitable[Any]]


def _resolver(dependency: Dependant) -> Resolver | None:
    found: Resolver | None = getattr(dependency.call, RESOLVE_FROM_REQUEST, None)
    return found


def _resolved_by_route(dependant: Dependant) -> tuple[Dependant, tuple[tuple[str, Resolver], ...]]:
    """The endpoint's dependant less the dependencies the route resolves, whose
    call adds them back, and those dependencies (parameter name, resolver) in the
    endpoint's order; the dependant itself when there are none."""
    endpoint = dependant.call
    resolved = tuple(
        (dependency.name, resolver)
        for dependency in dependant.dependencies
        if dependency.name is not None and (resolver := _resolver(dependency)) is not None
    )
    if not resolved or endpoint is None or not inspect.iscoroutinefunction(endpoint):
        return dependant, ()
    request_name = dependant.request_param_name or "ledger_route_request"
    keeps_request = dependant.request_param_name is not None

    async def call(**values: Any) -> Any:
        request: Request = values[request_name] if keeps_request else values.pop(request_name)
        values.update(request.scope[_RESOLVED])
        return await endpoint(**values)

    kept = [dependency for dependency in dependant.dependencies if _resolver(dependency) is None]
    return replace(dependant, dependencies=kept, call=call, request_param_name=request_name), resolved


class ApiRoute(APIRoute):
    """Every API route: authorization first, then a strict JSON body (read only by
    routes that take one), then the shared dependencies (see above)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        # FastAPI builds an included route's handler from an effective copy of the
        # route (its path and dependant under the router's prefix): that copy's
        # dependant is the one to reduce, for the time the handler is built. The
        # OpenAPI document keeps reading the full one.
        building: Any = fastapi_routing._effective_route_context_var.get()
        route: Any = building if building is not None and building.original_route is self else self
        full: Dependant = route.dependant
        reduced, resolved = _resolved_by_route(full)
        route.dependant = reduced
        try:
            handler = super().get_route_handler()
        finally:
            route.dependant = full
        scope = required_scope(full)
        # A body parameter, or a body the endpoint reads itself and documents in
        # openapi_extra (a rules document).
        takes_body = bool(full.body_params) or "requestBody" in (self.openapi_extra or {})

        async def handle(request: Request) -> Response:
            if scope is not None:
                await authorize(request, scope)
            request = JsonRequest(request.scope, request.receive)
            if not takes_body:  # whatever was sent is not read: it cannot be an error
                request.scope[_BODY_IGNORED] = True
                body = b""
            else:
                _declared_too_large(request)
                body = await request.body()
            if body:
                content_type = request.headers.get("content-type", "")
                if not _JSON_MEDIA_TYPE.match(content_type):
                    raise UnsupportedMediaType(
                        f"send the body as application/json (Content-Type was {content_type[:60]!r})"
                        if content_type
                        else "send the body with Content-Type: application/json"
                    )
                await request.json()  # parsed strictly now; FastAPI reads the cached value
            if resolved:
                request.scope[_RESOLVED] = {name: await resolve(request) for name, resolve in resolved}
            return await handler(request)

        return handle


def _route_path(scope: Scope) -> str:
    """The path routes are matched against: the request's, less the root path."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :]
    return path


class ApiRouter(APIRouter):
    """A router that says at once that a path is not its own.

    FastAPI matches a request by trying every route of every included router in
    turn (a regex each, and some bookkeeping per router): 78 us for POST
    /v1/orders, twelve routers in, and 112 us for a partner's order, against about
    0.6 ms of the service's CPU for a whole award (bench/routing.py,
    bench/orders.py). Every route of a router
    starts with its prefix, and most of them continue with a literal segment
    (`/v1` + `/entries/...`): a path whose prefix or next segment no route has
    cannot match here, so the regexes are skipped."""

    _first_segments: frozenset[str] | None = None
    _segments_of: int = -1  # len(self.routes) when _first_segments was computed

    def _segments(self) -> frozenset[str] | None:
        """The literal first segments after the prefix of this router's routes; None
        when one of them starts with a parameter (then any segment may match)."""
        if self._segments_of != len(self.routes):
            found: set[str] | None = set()
            for route in self.routes:
                rest = getattr(route, "path", "{}")[len(self.prefix) :]
                segment = rest.removeprefix("/").partition("/")[0]
                if "{" in segment or found is None:
                    found = None
                    break
                found.add(segment)
            self._first_segments = None if found is None else frozenset(found)
            self._segments_of = len(self.routes)
        return self._first_segments

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if "{" in self.prefix:  # a parameter in the prefix (/v1/members/{member}/tier): no shortcut
            return super().matches(scope)
        path = _route_path(scope)
        rest = path[len(self.prefix) :]
        if not path.startswith(self.prefix) or (rest and rest[0] != "/"):
            return Match.NONE, {}
        segments = self._segments()
        if segments is not None and rest.removeprefix("/").partition("/")[0] not in segments:
            return Match.NONE, {}
        return super().matches(scope)


def api_router(**options: Any) -> APIRouter:
    """Every router of the API: its routes are ApiRoutes."""
    return ApiRouter(route_class=ApiRoute, **options)
