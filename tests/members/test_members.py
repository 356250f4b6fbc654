from __future__ import annotations

from tests.support import Api, new_program


class TestCreateMember:
    async def test_enrols_with_empty_balances(self, api: Api) -> None:
        response = await api.post(
            "/v1/members",
            {"external_id": "cust-1", "birthday": "1990-04-17", "metadata": {"source": "app"}},
            idempotency_key=None,
        )
        assert response.status_code == 201
        member = response.json()
        assert member["external_id"] == "cust-1"
        assert member["status"] == "active"
        assert member["birthday"] == "1990-04-17"
        assert member["balances"] == {"available": 0, "pending": 0, "held": 0, "debt": 0}
        assert member["expiring"] == []
        assert member["metadata"] == {"source": "app"}

    async def test_duplicate_external_id_is_409(self, api: Api) -> None:
        await api.enrol("dup")
        response = await api.post("/v1/members", {"external_id": "dup"}, idempotency_key=None)
        assert response.status_code == 409
        assert response.json()["code"] == "member_exists"

    async def test_same_external_id_in_two_programs(self, api: Api) -> None:
        other = await new_program(api.client)
        await api.enrol("shared-id")
        await other.enrol("shared-id")
        await api.award("shared-id", 5)
        assert await other.available("shared-id") == 0

    async def test_referred_by_must_exist(self, api: Api) -> None:
        referrer = await api.enrol()
        ok = await api.post(
            "/v1/members", {"external_id": "ref-ok", "referred_by": referrer}, idempotency_key=None
        )
        assert ok.status_code == 201
        assert ok.json()["referred_by"] == referrer
        bad = await api.post(
            "/v1/members", {"external_id": "ref-bad", "referred_by": "ghost"}, idempotency_key=None
        )
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "body.referred_by"

    async def test_enrolled_at_in_the_future_is_422(self, api: Api) -> None:
        response = await api.post(
            "/v1/members",
            {"external_id": "future", "enrolled_at": "2999-01-01T00:00:00Z"},
            idempotency_key=None,
        )
        assert response.status_code == 422

    async def test_invalid_external_ids_are_422(self, api: Api) -> None:
        for external_id in ["", "a/b", "x" * 129, " lead", "nul\u0000", 42]:
            response = await api.post("/v1/members", {"external_id": external_id}, idempotency_key=None)
            assert response.status_code == 422, external_id
            assert response.json()["code"] == "validation_error"

    async def test_needs_members_write(self, api: Api) -> None:
        key = await api.key_with("members:read")
        response = await api.post("/v1/members", {"external_id": "nope"}, key=key, idempotency_key=None)
        assert response.status_code == 403


class TestGetMember:
    async def test_shows_balances(self, api: Api) -> None:
        member = await api.enrol()
        await api.award(member, 30)
        await api.award(member, 4, pending_until="2999-01-01T00:00:00Z")
        body = (await api.get(f"/v1/members/{member}")).json()
        assert body["balances"] == {"available": 30, "pending": 4, "held": 0, "debt": 0}
        assert body["tier"] is None

    async def test_unknown_is_404(self, api: Api) -> None:
        response = await api.get("/v1/members/nobody")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "member_not_found"

    async def test_another_programs_member_is_404(self, api: Api) -> None:
        other = await new_program(api.client)
        theirs = await other.enrol()
        assert (await api.get(f"/v1/members/{theirs}")).status_code == 404
