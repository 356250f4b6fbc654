"""Rules documents over HTTP: default version, new versions, validation, activation."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support import Api

MEMBER_DAY: dict[str, Any] = {
    "timezone": "Asia/Shanghai",
    "currency": "CNY",
    "earn": {
        "base": {"points": 1, "per": "1.00", "rounding": "floor"},
        "multipliers": [{"id": "member-day", "factor": "2", "when": {"day_of_month": [8]}}],
    },
}


async def post_rules(api: Api, document: Any, key: str | None = None) -> httpx.Response:
    return await api.post("/v1/rules", document, key=key, idempotency_key=None)


class TestGetActiveRules:
    async def test_a_new_program_starts_with_the_default_document(self, api: Api) -> None:
        response = await api.get("/v1/rules")
        assert response.status_code == 200
        body = response.json()
        assert body["version"] == 1
        assert body["active"] is True
        earn = body["document"]["earn"]
        assert earn["base"] == {"points": 1, "per": "1", "rounding": "floor"}
        assert earn["pending_days"] == 0
        assert earn["multipliers"] == []
        assert body["document"]["expiry"]["policy"] == "none"

    async def test_needs_rules_read(self, api: Api) -> None:
        key = await api.key_with("members:read")
        assert (await api.get("/v1/rules", key=key)).status_code == 403
        reader = await api.key_with("rules:read")
        assert (await api.get("/v1/rules", key=reader)).status_code == 200


class TestCreateRulesVersion:
    async def test_stores_a_draft_with_defaults_filled_in(self, api: Api) -> None:
        response = await post_rules(api, MEMBER_DAY)
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["version"] == 2
        assert body["active"] is False
        assert body["document"]["earn"]["stacking"] == "multiply"
        assert body["document"]["earn"]["multipliers"][0]["factor"] == "2"
        assert (await api.get("/v1/rules")).json()["version"] == 1
        assert (await api.get("/v1/rules/2")).json()["document"]["timezone"] == "Asia/Shanghai"

    async def test_versions_count_up_per_program(self, api: Api) -> None:
        versions = [(await post_rules(api, MEMBER_DAY)).json()["version"] for _ in range(3)]
        assert versions == [2, 3, 4]

    async def test_a_bad_field_is_422_invalid_rules_with_its_path(self, api: Api) -> None:
        document = {**MEMBER_DAY, "earn": {**MEMBER_DAY["earn"], "multipliers": [{"id": "x", "factor": 2}]}}
        response = await post_rules(api, document)
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["code"] == "invalid_rules"
        assert [error["field"] for error in problem["errors"]] == ["body.earn.multipliers.0.factor"]
        assert (await api.get("/v1/rules/2")).status_code == 404

    async def test_missing_base_unknown_keys_and_bad_timezone_are_named(self, api: Api) -> None:
        response = await post_rules(api, {"timezone": "Mars/Olympus", "earn": {}, "bonus": 1})
        assert response.status_code == 422
        fields = {error["field"] for error in response.json()["errors"]}
        assert fields == {"body.timezone", "body.earn.base", "body.bonus"}

    async def test_not_an_object_and_not_json(self, api: Api) -> None:
        assert (await post_rules(api, [1, 2])).json()["code"] == "invalid_rules"
        response = await api.client.post(
            "/v1/rules", content=b"{not json", headers={**api.headers(), "Content-Type": "application/json"}
        )
        assert response.status_code == 400
        assert response.json()["code"] == "malformed_json"

    async def test_needs_rules_write(self, api: Api) -> None:
        reader = await api.key_with("rules:read")
        assert (await post_rules(api, MEMBER_DAY, key=reader)).status_code == 403


class TestActivateRulesVersion:
    async def test_switches_the_active_version_and_keeps_one_active(self, api: Api) -> None:
        await post_rules(api, MEMBER_DAY)
        response = await api.post("/v1/rules/2/activate", {}, idempotency_key=None)
        assert response.status_code == 200
        assert response.json()["active"] is True
        active = (await api.get("/v1/rules")).json()
        assert active["version"] == 2
        assert active["activated_at"] is not None
        assert (await api.get("/v1/rules/1")).json()["active"] is False
        again = await api.post("/v1/rules/2/activate", {}, idempotency_key=None)
        assert again.status_code == 200
        back = await api.post("/v1/rules/1/activate", {}, idempotency_key=None)
        assert back.json()["version"] == 1
        assert (await api.get("/v1/rules")).json()["version"] == 1

    async def test_unknown_version_is_404(self, api: Api) -> None:
        response = await api.post("/v1/rules/9/activate", {}, idempotency_key=None)
        assert response.status_code == 404
        assert response.json()["code"] == "rules_version_not_found"

    async def test_another_programs_version_is_not_visible(self, api: Api, other: Api) -> None:
        await post_rules(other, MEMBER_DAY)
        assert (await api.get("/v1/rules/2")).status_code == 404
        assert (await api.post("/v1/rules/2/activate", {}, idempotency_key=None)).status_code == 404
