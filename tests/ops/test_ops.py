from __future__ import annotations

import httpx

from tests.support import Api


class TestOperations:
    async def test_healthz_and_readyz(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/readyz")).json() == {"status": "ok"}

    async def test_metrics_count_requests_by_route(self, api: Api) -> None:
        member = await api.enrol()
        await api.award(member, 1)
        text = (await api.client.get("/metrics")).text
        assert "points_ledger_http_request_duration_seconds_count" in text
        assert 'route="/v1/members/{member}/awards"' in text


class TestProblemResponses:
    async def test_unknown_route_is_problem_404(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/v1/nothing-here")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "not_found"

    async def test_wrong_method_is_problem_405(self, client: httpx.AsyncClient) -> None:
        response = await client.put("/healthz")
        assert response.status_code == 405
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "method_not_allowed"

    async def test_malformed_json_is_problem_400(self, api: Api) -> None:
        member = await api.enrol()
        response = await api.client.post(
            f"/v1/members/{member}/awards",
            content=b'{"points": 1,',
            headers={**api.headers(idempotency_key="bad-json"), "Content-Type": "application/json"},
        )
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["code"] == "malformed_json"
        assert set(problem) >= {"type", "title", "status", "detail", "code"}

    async def test_body_that_is_not_an_object_is_422(self, api: Api) -> None:
        member = await api.enrol()
        response = await api.post(f"/v1/members/{member}/awards", [1, 2])
        assert response.status_code == 422
        assert response.json()["code"] == "validation_error"
