"""What FastAPI's dependency solving costs a ledger POST, and what app.http.ApiRoute
saves by resolving the shared dependencies (context, caller, Idempotency-Key) itself.

For POST /v1/orders and POST /v1/members/{member}/awards, in one process and
alternating, microseconds per request (median of --rounds rounds):
- `full`: FastAPI's solve_dependencies over the endpoint's whole signature, as
  FastAPI would run it (the context, the Idempotency-Key, the caller and its bearer
  scheme each a dependency level, then the path and the body);
- `route`: what ApiRoute runs instead: its resolvers for the shared dependencies,
  then solve_dependencies over what it leaves to FastAPI (the path and the body).
The caller is already known (ApiRoute authorizes before anything, in both cases),
so neither side reads the database. The body is the OpenAPI example of an order.

    uv run python -m bench.dependencies
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from contextlib import AsyncExitStack
from typing import Any

from fastapi import FastAPI, Request
from fastapi.dependencies.utils import solve_dependencies
from fastapi.routing import APIRoute

from app.config import Settings
from app.http import _RESOLVED, _resolved_by_route
from app.main import create_app
from app.orders.schemas import OrderIn
from app.principal import Principal

# the order of the OpenAPI document's example (bench/orders.py sends the same shape)
ORDER = OrderIn.model_config["json_schema_extra"]["examples"][0]  # type: ignore[index]
AWARD = {"points": 10, "reason": "bench"}
CALLER = Principal(1, "default", None, frozenset({"points:earn", "points:adjust"}))


def route_of(app: FastAPI, method: str, path: str) -> APIRoute:
    for candidate in app.router.routes:
        router = getattr(candidate, "original_router", None)  # an included router
        for route in router.routes if router is not None else [candidate]:
            if isinstance(route, APIRoute) and route.path == path and method in (route.methods or set()):
                return route
    raise SystemExit(f"no route {method} {path}")


def request_for(app: FastAPI, path: str, path_params: dict[str, str]) -> Request:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [(b"idempotency-key", b"k-1"), (b"content-type", b"application/json")],
        "query_string": b"",
        "path_params": path_params,
        "app": app,
        "state": {"principal": CALLER},
    }
    return Request(scope)


async def solve(route: APIRoute, request: Request, body: Any, *, reduced: bool) -> None:
    dependant = route.dependant
    if reduced:
        dependant, resolved = _resolved_by_route(dependant)
        request.scope[_RESOLVED] = {name: await resolve(request) for name, resolve in resolved}
    async with AsyncExitStack() as stack:
        request.scope["fastapi_inner_astack"] = stack
        request.scope["fastapi_function_astack"] = stack
        solved = await solve_dependencies(
            request=request,
            dependant=dependant,
            body=body,
            async_exit_stack=stack,
            embed_body_fields=route._embed_body_fields,
        )
    if solved.errors:
        raise SystemExit(f"{route.path}: {solved.errors}")


async def measure(route: APIRoute, request: Request, body: Any, reduced: bool, count: int) -> float:
    began = time.perf_counter()
    for _ in range(count):
        await solve(route, request, body, reduced=reduced)
    return (time.perf_counter() - began) / count * 1e6


async def run(rounds: int, count: int) -> None:
    app = create_app(Settings(database_url="postgresql+asyncpg://unused@127.0.0.1:1/unused"))
    app.state.context = object()  # get_context hands it on; nothing here reads it
    cases = [
        ("POST /v1/orders", route_of(app, "POST", "/v1/orders"), "/v1/orders", {}, ORDER),
        (
            "POST /v1/members/{member}/awards",
            route_of(app, "POST", "/v1/members/{member}/awards"),
            "/v1/members/m-1/awards",
            {"member": "m-1"},
            AWARD,
        ),
    ]
    print(f"microseconds per request, median of {rounds} rounds of {count}")
    print(f"{'operation':34s} {'full':>8s} {'route':>8s} {'saved':>8s}")
    for name, route, path, params, body in cases:
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(rounds):
            for reduced in (False, True):
                times[reduced].append(
                    await measure(route, request_for(app, path, params), body, reduced, count)
                )
        full, mine = statistics.median(times[False]), statistics.median(times[True])
        print(f"{name:34s} {full:8.1f} {mine:8.1f} {full - mine:8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--count", type=int, default=2_000)
    args = parser.parse_args()
    asyncio.run(run(args.rounds, args.count))


if __name__ == "__main__":
    main()
