from __future__ import annotations

import asyncpg

from tests.support import Api, entries_with_key


class TestIdempotencyKey:
    async def test_missing_key_is_400_and_changes_nothing(self, api: Api) -> None:
        member = await api.enrol()
        response = await api.post(
            f"/v1/members/{member}/awards", {"points": 5, "reason": "r"}, idempotency_key=None
        )
        assert response.status_code == 400
        assert response.json()["code"] == "idempotency_key_required"
        assert await api.available(member) == 0

    async def test_key_must_be_printable_and_at_most_255(self, api: Api) -> None:
        member = await api.enrol()
        bad_keys: list[str] = ["", "x" * 256, "tab\there", "é"]
        for bad in bad_keys:
            response = await api.client.post(
                f"/v1/members/{member}/awards",
                json={"points": 5, "reason": "r"},
                headers=[
                    (b"authorization", f"Bearer {api.key}".encode()),
                    (b"idempotency-key", bad.encode()),
                ],
            )
            assert response.status_code in (400, 422), bad
        assert await api.available(member) == 0

    async def test_replay_returns_the_first_response_exactly(self, api: Api, db: asyncpg.Connection) -> None:
        member = await api.enrol()
        body = {"points": 7, "reason": "r"}
        first = await api.post(f"/v1/members/{member}/awards", body, idempotency_key="k-1")
        second = await api.post(f"/v1/members/{member}/awards", body, idempotency_key="k-1")
        assert first.status_code == second.status_code == 201
        assert second.content == first.content
        assert "Idempotent-Replayed" not in first.headers
        assert second.headers["Idempotent-Replayed"] == "true"
        assert await api.available(member) == 7
        assert await entries_with_key(db, api.program, "k-1") == 1

    async def test_same_key_with_another_body_is_422(self, api: Api) -> None:
        member = await api.enrol()
        await api.post(f"/v1/members/{member}/awards", {"points": 7, "reason": "r"}, idempotency_key="k-2")
        response = await api.post(
            f"/v1/members/{member}/awards", {"points": 8, "reason": "r"}, idempotency_key="k-2"
        )
        assert response.status_code == 422
        assert response.json()["code"] == "idempotency_key_reused"
        assert await api.available(member) == 7

    async def test_same_key_on_another_endpoint_is_422(self, api: Api) -> None:
        member = await api.enrol()
        await api.post(f"/v1/members/{member}/awards", {"points": 7, "reason": "r"}, idempotency_key="k-3")
        response = await api.post(f"/v1/members/{member}/redemptions", {"points": 1}, idempotency_key="k-3")
        assert response.status_code == 422
        assert response.json()["code"] == "idempotency_key_reused"
        assert await api.available(member) == 7

    async def test_keys_are_per_program(self, api: Api) -> None:
        from tests.support import new_program

        other = await new_program(api.client)
        mine, theirs = await api.enrol(), await other.enrol()
        body = {"points": 3, "reason": "r"}
        assert (
            await api.post(f"/v1/members/{mine}/awards", body, idempotency_key="shared")
        ).status_code == 201
        response = await other.post(f"/v1/members/{theirs}/awards", body, idempotency_key="shared")
        assert response.status_code == 201
        assert "Idempotent-Replayed" not in response.headers
