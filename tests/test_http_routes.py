"""ApiRoute resolves the dependencies every endpoint shares (context, caller,
Idempotency-Key) itself, in the endpoint's order and before FastAPI validates the
rest; the OpenAPI document still comes from the full signature (app/http.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.dependencies.utils import get_dependant
from starlette.datastructures import Headers

from app.context import AppContext, Context, require
from app.http import _RESOLVED, _resolved_by_route
from app.idempotency import IdempotencyKey
from app.principal import Principal
from tests.support import Api

Earner = Annotated[Principal, Depends(require("points:earn"))]


async def _other() -> str:
    return "other"


Other = Annotated[str, Depends(_other)]


class TestResolvedByRoute:
    def test_the_shared_dependencies_leave_the_handler_and_come_back_in_the_call(self) -> None:
        async def endpoint(http: Request, context: Context, key: IdempotencyKey, extra: Other) -> Any:
            return (http, context, key, extra)

        reduced, resolved = _resolved_by_route(get_dependant(path="/x", call=endpoint))
        # FastAPI still solves the dependency the route does not know
        assert [dependency.name for dependency in reduced.dependencies] == ["extra"]
        assert [name for name, _ in resolved] == ["context", "key"]
        assert reduced.request_param_name == "http"
        assert not reduced.header_params  # the Idempotency-Key header left with its dependency

    async def test_the_reduced_call_passes_what_the_route_resolved(self) -> None:
        async def endpoint(context: Context, principal: Earner, key: IdempotencyKey) -> Any:
            return context, principal, key

        reduced, resolved = _resolved_by_route(get_dependant(path="/x", call=endpoint))
        assert [name for name, _ in resolved] == ["context", "principal", "key"]
        assert reduced.call is not None
        resolved_values = {"context": 1, "principal": 2, "key": "k"}
        request = Request({"type": "http", "headers": [], _RESOLVED: resolved_values})
        assert await reduced.call(**{reduced.request_param_name or "": request}) == (1, 2, "k")

    async def test_the_key_resolves_as_its_dependency_validates_it(self) -> None:
        async def endpoint(key: IdempotencyKey) -> str:
            return key

        _, resolved = _resolved_by_route(get_dependant(path="/x", call=endpoint))
        [(_, resolve)] = resolved
        scope = {"type": "http", "headers": Headers({"idempotency-key": "k-1"}).raw}
        assert await resolve(Request(scope)) == "k-1"

    def test_a_plain_def_endpoint_is_left_to_fastapi(self) -> None:
        def endpoint(context: Context) -> AppContext:
            return context

        dependant = get_dependant(path="/x", call=endpoint)
        assert _resolved_by_route(dependant) == (dependant, ())


class TestOverHttp:
    async def test_no_key_and_a_bad_body_is_the_missing_key(self, api: Api) -> None:
        # The key is judged before FastAPI validates the body, as when it was a dependency.
        response = await api.post("/v1/orders", {"member": 5}, idempotency_key=None)
        assert response.status_code == 400
        assert response.json()["code"] == "idempotency_key_required"

    async def test_a_bad_key_and_a_bad_member_path_is_the_key(self, api: Api) -> None:
        response = await api.client.post(
            "/v1/members/" + "x" * 300 + "/awards",
            json={"points": 5, "reason": "r"},
            headers={"Authorization": f"Bearer {api.key}", "Idempotency-Key": "tab\there"},
        )
        assert response.status_code == 422
        assert [error["field"] for error in response.json()["errors"]] == ["header.Idempotency-Key"]

    async def test_no_credentials_is_401_before_the_key(self, api: Api) -> None:
        response = await api.client.post("/v1/orders", json={"member": 5})
        assert response.status_code == 401

    async def test_an_award_sees_its_caller_and_key(self, api: Api) -> None:
        member = await api.enrol()
        body = {"points": 5, "reason": "r"}
        first = await api.post(f"/v1/members/{member}/awards", body, idempotency_key="a-1")
        again = await api.post(f"/v1/members/{member}/awards", body, idempotency_key="a-1")
        assert first.status_code == again.status_code == 201
        assert again.headers["Idempotent-Replayed"] == "true"
        assert await api.available(member) == 5

    def test_the_openapi_operation_keeps_the_header_and_the_security(self, app: FastAPI) -> None:
        operation = app.openapi()["paths"]["/v1/orders"]["post"]
        assert "Idempotency-Key" in [parameter["name"] for parameter in operation["parameters"]]
        assert operation["security"]
