from __future__ import annotations

import asyncio
import uuid

from tests.support import Api, new_program


class TestReverseEntry:
    async def test_reverses_an_award(self, api: Api) -> None:
        member = await api.enrol()
        award = (await api.award(member, 80)).json()
        response = await api.reverse(award["id"], "awarded twice")
        assert response.status_code == 201
        reversal = response.json()
        assert reversal["kind"] == "reversal"
        assert reversal["reverses"] == award["id"]
        assert reversal["reason"] == "awarded twice"
        assert {(p["account"], p["points"]) for p in reversal["postings"]} == {
            ("available", -80),
            ("issuance", 80),
        }
        assert await api.available(member) == 0

    async def test_reverses_a_redemption_and_a_transfer(self, api: Api) -> None:
        source, target = await api.enrol(), await api.enrol()
        await api.award(source, 100)
        redemption = (await api.redeem(source, 40)).json()
        transfer = (await api.transfer(source, target, 20)).json()
        assert (await api.reverse(redemption["id"])).status_code == 201
        assert (await api.reverse(transfer["id"])).status_code == 201
        assert (await api.available(source), await api.available(target)) == (100, 0)

    async def test_an_entry_is_reversed_once(self, api: Api) -> None:
        member = await api.enrol()
        award = (await api.award(member, 10)).json()
        assert (await api.reverse(award["id"])).status_code == 201
        again = await api.reverse(award["id"])
        assert again.status_code == 409
        assert again.json()["code"] == "already_reversed"
        assert await api.available(member) == 0

    async def test_concurrent_reversals_reverse_once(self, api: Api) -> None:
        member = await api.enrol()
        award = (await api.award(member, 10)).json()
        await api.award(member, 100)
        responses = await asyncio.gather(*(api.reverse(award["id"]) for _ in range(6)))
        assert sorted(r.status_code for r in responses) == [201] + [409] * 5
        assert await api.available(member) == 100

    async def test_a_retry_of_a_reversal_replays_it(self, api: Api) -> None:
        member = await api.enrol()
        award = (await api.award(member, 10)).json()
        path = f"/v1/entries/{award['id']}/reversal"
        first = await api.post(path, {"reason": "x"}, idempotency_key="rev-1")
        second = await api.post(path, {"reason": "x"}, idempotency_key="rev-1")
        assert (first.status_code, second.status_code) == (201, 201)
        assert second.content == first.content

    async def test_reversal_of_spent_points_is_insufficient(self, api: Api) -> None:
        member = await api.enrol()
        award = (await api.award(member, 50)).json()
        await api.redeem(member, 30)
        response = await api.reverse(award["id"])
        assert response.status_code == 422
        assert response.json()["code"] == "insufficient_points"
        assert await api.available(member) == 20

    async def test_a_reversal_cannot_be_reversed(self, api: Api) -> None:
        member = await api.enrol()
        award = (await api.award(member, 5)).json()
        reversal = (await api.reverse(award["id"])).json()
        response = await api.reverse(reversal["id"])
        assert response.status_code == 422
        assert response.json()["code"] == "entry_not_reversible"

    async def test_unknown_entry_is_404(self, api: Api) -> None:
        response = await api.reverse(str(uuid.uuid4()))
        assert response.status_code == 404
        assert response.json()["code"] == "entry_not_found"

    async def test_malformed_entry_id_is_422(self, api: Api) -> None:
        response = await api.reverse("not-a-uuid")
        assert response.status_code == 422

    async def test_another_programs_entry_is_404(self, api: Api) -> None:
        other = await new_program(api.client)
        member = await other.enrol()
        award = (await other.award(member, 5)).json()
        response = await api.reverse(award["id"])
        assert response.status_code == 404
        assert await other.available(member) == 5
