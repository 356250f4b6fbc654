from __future__ import annotations

import asyncpg

from tests.support import BOOTSTRAP_KEY, Api, unique


class TestCreateProgram:
    async def test_creates_program_accounts_and_admin_key(self, api: Api, db: asyncpg.Connection) -> None:
        code = unique("prog").lower()
        response = await api.client.post(
            "/v1/programs",
            json={"code": code, "name": "Stars", "point_name": "stars"},
            headers={"Authorization": f"Bearer {BOOTSTRAP_KEY}"},
        )
        assert response.status_code == 201
        body = response.json()
        assert (body["code"], body["point_name"]) == (code, "stars")
        kinds = await db.fetch(
            "SELECT a.kind FROM account a JOIN program p ON p.id = a.program_id WHERE p.code = $1 ORDER BY 1",
            code,
        )
        assert [k["kind"] for k in kinds] == ["expiry", "forfeit", "issuance", "redemption"]
        keys = await api.client.get("/v1/api-keys", headers={"Authorization": f"Bearer {body['admin_key']}"})
        assert keys.status_code == 200

    async def test_duplicate_code_is_409(self, api: Api) -> None:
        response = await api.client.post(
            "/v1/programs",
            json={"code": api.program, "name": "again"},
            headers={"Authorization": f"Bearer {BOOTSTRAP_KEY}"},
        )
        assert response.status_code == 409
        assert response.json()["code"] == "program_exists"

    async def test_invalid_code_is_422(self, api: Api) -> None:
        response = await api.client.post(
            "/v1/programs",
            json={"code": "Not Valid", "name": "x"},
            headers={"Authorization": f"Bearer {BOOTSTRAP_KEY}"},
        )
        assert response.status_code == 422

    async def test_only_the_default_programs_admin_creates_programs(self, api: Api) -> None:
        response = await api.client.post(
            "/v1/programs", json={"code": unique("x").lower(), "name": "x"}, headers=api.headers()
        )
        assert response.status_code == 403
        assert response.json()["code"] == "forbidden"
