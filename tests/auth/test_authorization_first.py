"""Authentication and authorization are decided before anything about the request
is looked at: every operation, given a junk path, a malformed body and no
Idempotency-Key, answers 401 without a key and 403 with a key lacking its scope."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from app.context import required_scope
from app.http import ApiRoute
from tests.support import Api

JUNK_PATH_PARAMETER = "%20not%20a%20valid%20anything%20" + "x" * 300


def api_routes(routes: Sequence[BaseRoute]) -> list[APIRoute]:
    """Every APIRoute, through the routers included into the app."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        included = getattr(route, "original_router", None)
        if included is not None:
            found.extend(api_routes(included.routes))
    return found


def operations(app: FastAPI) -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []
    for route in api_routes(app.routes):
        scope = required_scope(route.dependant)
        if scope is None:
            continue
        path = re.sub(r"\{[^}]+\}", JUNK_PATH_PARAMETER, route.path_format)
        found.extend((method, path, scope) for method in sorted(route.methods or ()))
    return found


def test_every_authenticated_route_is_an_authorized_route(app: FastAPI) -> None:
    routes = [r for r in api_routes(app.routes) if required_scope(r.dependant)]
    assert len(routes) > 25
    assert [r.path for r in routes if not isinstance(r, ApiRoute)] == []


class TestBeforeAnythingElse:
    async def test_no_key_is_401_whatever_else_is_wrong(self, api: Api, app: FastAPI) -> None:
        answers = {}
        for method, path, _ in operations(app):
            response = await api.client.request(
                method, path, content=b'{"points": NaN, ', headers={"Content-Type": "application/json"}
            )
            answers[f"{method} {path[:40]}"] = (response.status_code, response.json().get("code"))
        assert set(answers.values()) == {(401, "unauthorized")}, answers

    async def test_a_key_without_the_scope_is_403_whatever_else_is_wrong(
        self, api: Api, app: FastAPI
    ) -> None:
        reader = await api.key_with("members:read")
        rules_reader = await api.key_with("rules:read")
        answers = {}
        for method, path, scope in operations(app):
            key = rules_reader if scope == "members:read" else reader
            response = await api.client.request(
                method,
                path,
                content=b'{"points": NaN, ',
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
            )
            answers[f"{method} {path[:40]} ({scope})"] = (response.status_code, response.json().get("code"))
        assert set(answers.values()) == {(403, "forbidden")}, answers

    @pytest.mark.parametrize("idempotency_key", [None, "bad\x7fkey", ""])
    async def test_a_ledger_post_without_a_usable_key_is_401(
        self, api: Api, idempotency_key: str | None
    ) -> None:
        member = await api.enrol()
        headers = {} if idempotency_key is None else {"Idempotency-Key": idempotency_key}
        response = await api.client.post(
            f"/v1/members/{member}/awards", json={"points": 5, "reason": "x"}, headers=headers
        )
        assert (response.status_code, response.json()["code"]) == (401, "unauthorized")
