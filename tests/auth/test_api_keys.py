from __future__ import annotations

import uuid

import asyncpg

from tests.support import Api, new_program


class TestCreateApiKey:
    async def test_key_is_shown_once_and_stored_hashed(self, api: Api, db: asyncpg.Connection) -> None:
        response = await api.client.post(
            "/v1/api-keys",
            json={"name": "checkout", "scopes": ["points:earn", "members:read"]},
            headers=api.headers(),
        )
        assert response.status_code == 201
        created = response.json()
        assert created["key"].startswith("plk_")
        assert created["scopes"] == ["members:read", "points:earn"]
        stored = await db.fetchrow(
            "SELECT key_hash, key_prefix FROM api_key WHERE id = $1", uuid.UUID(created["id"])
        )
        assert stored is not None
        assert created["key"] not in stored["key_hash"]
        assert created["key"].startswith(stored["key_prefix"])
        listed = (await api.get("/v1/api-keys")).json()["items"]
        assert all("key" not in item for item in listed)

    async def test_unknown_scope_is_422(self, api: Api) -> None:
        response = await api.client.post(
            "/v1/api-keys", json={"name": "x", "scopes": ["points:print"]}, headers=api.headers()
        )
        assert response.status_code == 422

    async def test_partner_key_needs_a_partner_of_the_program(self, api: Api) -> None:
        # (tests/partners holds the keys of partners that exist)
        response = await api.client.post(
            "/v1/api-keys",
            json={"name": "p", "scopes": ["partner:earn"], "partner": "airline"},
            headers=api.headers(),
        )
        assert response.status_code == 404
        assert response.json()["code"] == "partner_not_found"

    async def test_partner_scopes_need_a_partner(self, api: Api) -> None:
        response = await api.client.post(
            "/v1/api-keys", json={"name": "p", "scopes": ["partner:earn"]}, headers=api.headers()
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "body.scopes"

    async def test_needs_admin(self, api: Api) -> None:
        key = await api.key_with("members:write", "points:adjust")
        response = await api.client.post(
            "/v1/api-keys", json={"name": "x", "scopes": ["admin"]}, headers=api.headers(key)
        )
        assert response.status_code == 403
        assert response.json()["code"] == "forbidden"


class TestListApiKeys:
    async def test_pages_newest_first(self, api: Api) -> None:
        for _ in range(4):
            await api.key_with("members:read")
        first = (await api.get("/v1/api-keys", limit=3)).json()
        assert len(first["items"]) == 3
        second = (await api.get("/v1/api-keys", limit=3, cursor=first["next_cursor"])).json()
        assert len(second["items"]) == 2  # four scoped keys and the program's admin key
        assert second["next_cursor"] is None
        ids = [k["id"] for k in first["items"] + second["items"]]
        assert len(set(ids)) == 5
        created = [k["created_at"] for k in first["items"] + second["items"]]
        assert created == sorted(created, reverse=True)

    async def test_only_the_callers_program(self, api: Api) -> None:
        other = await new_program(api.client)
        await other.key_with("members:read")
        names = {k["prefix"] for k in (await api.get("/v1/api-keys")).json()["items"]}
        theirs = {k["prefix"] for k in (await other.get("/v1/api-keys")).json()["items"]}
        assert names.isdisjoint(theirs)


class TestRevokeApiKey:
    async def test_revoked_key_is_refused_at_once(self, api: Api) -> None:
        member = await api.enrol()
        key = await api.key_with("members:read")
        assert (await api.get(f"/v1/members/{member}", key=key)).status_code == 200
        key_id = next(
            k["id"] for k in (await api.get("/v1/api-keys")).json()["items"] if key.startswith(k["prefix"])
        )
        response = await api.client.delete(f"/v1/api-keys/{key_id}", headers=api.headers())
        assert response.status_code == 204
        refused = await api.get(f"/v1/members/{member}", key=key)
        assert refused.status_code == 401
        assert refused.json()["code"] == "unauthorized"

    async def test_another_programs_key_is_404(self, api: Api) -> None:
        other = await new_program(api.client)
        await other.key_with("members:read")
        their_id = (await other.get("/v1/api-keys")).json()["items"][0]["id"]
        response = await api.client.delete(f"/v1/api-keys/{their_id}", headers=api.headers())
        assert response.status_code == 404
        assert response.json()["code"] == "api_key_not_found"


class TestAuthentication:
    async def test_missing_malformed_and_unknown_keys_are_401(self, api: Api) -> None:
        member = await api.enrol()
        for headers in (
            {},
            {"Authorization": "Basic abc"},
            {"Authorization": "Bearer "},
            {"Authorization": "Bearer plk_nope"},
        ):
            response = await api.client.get(f"/v1/members/{member}", headers=headers)
            assert response.status_code == 401
            assert response.json()["code"] == "unauthorized"
            assert response.headers["www-authenticate"] == "Bearer"

    async def test_admin_scope_implies_the_others(self, api: Api) -> None:
        member = await api.enrol()
        assert (await api.award(member, 1)).status_code == 201
        assert (await api.redeem(member, 1)).status_code == 201
