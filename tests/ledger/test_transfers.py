from __future__ import annotations

from tests.support import Api, new_program


class TestCreateTransfer:
    async def test_moves_available_points(self, api: Api) -> None:
        source, target = await api.enrol(), await api.enrol()
        await api.award(source, 100)
        response = await api.transfer(source, target, 35)
        assert response.status_code == 201
        entry = response.json()
        assert entry["kind"] == "transfer"
        balances = {b["member"]: b["available"] for b in entry["balances"]}
        assert balances == {source: 65, target: 35}
        assert await api.available(source) == 65
        assert await api.available(target) == 35

    async def test_to_oneself_is_422(self, api: Api) -> None:
        member = await api.enrol()
        await api.award(member, 10)
        response = await api.transfer(member, member, 5)
        assert response.status_code == 422
        assert response.json()["code"] == "validation_error"
        assert await api.available(member) == 10

    async def test_insufficient_points_changes_nothing(self, api: Api) -> None:
        source, target = await api.enrol(), await api.enrol()
        await api.award(source, 10)
        response = await api.transfer(source, target, 11)
        assert response.status_code == 422
        assert response.json()["code"] == "insufficient_points"
        assert (await api.available(source), await api.available(target)) == (10, 0)

    async def test_unknown_recipient_is_404_and_changes_nothing(self, api: Api) -> None:
        source = await api.enrol()
        await api.award(source, 10)
        response = await api.transfer(source, "nobody", 5)
        assert response.status_code == 404
        assert response.json()["code"] == "member_not_found"
        assert "nobody" in response.json()["detail"]
        assert await api.available(source) == 10

    async def test_members_of_another_program_are_invisible(self, api: Api) -> None:
        source = await api.enrol()
        await api.award(source, 10)
        other = await new_program(api.client)
        stranger = await other.enrol()
        response = await api.transfer(source, stranger, 5)
        assert response.status_code == 404
        assert await api.available(source) == 10

    async def test_needs_points_transfer_scope(self, api: Api) -> None:
        source, target = await api.enrol(), await api.enrol()
        await api.award(source, 10)
        key = await api.key_with("points:burn")
        body = {"from_member": source, "to_member": target, "points": 1}
        assert (await api.post("/v1/transfers", body, key=key)).status_code == 403
