"""A list accepts only the cursors the service issued for that same list: forged,
tampered or borrowed cursors are 400 `invalid_cursor` and never reach the database."""

from __future__ import annotations

import base64
import json

import pytest

from tests.support import Api


def forged(*position: object, signature: bytes = b"") -> str:
    payload = base64.urlsafe_b64encode(json.dumps(list(position)).encode()).decode().rstrip("=")
    if not signature:
        return payload
    return payload + "." + base64.urlsafe_b64encode(signature).decode().rstrip("=")


FORGERIES = [
    forged(10**24),
    forged(2**63),
    forged(-1),
    forged("9999-12-31T23:59:59Z", "00000000-0000-0000-0000-000000000000"),
    forged("0001-01-01T00:00:00Z", "00000000-0000-0000-0000-000000000000"),
    forged(10**24, signature=b"\x00" * 16),
    "not.a.cursor",
    ".",
    "%%%",
]


async def member_with_entries(api: Api, entries: int) -> str:
    member = await api.enrol()
    for _ in range(entries):
        assert (await api.award(member, 1)).status_code == 201
    return member


def assert_invalid(response_json: dict[str, object], status: int) -> None:
    assert (status, response_json["code"]) == (400, "invalid_cursor"), response_json


class TestForgedCursors:
    @pytest.mark.parametrize("cursor", FORGERIES)
    async def test_the_statement_refuses_them(self, api: Api, cursor: str) -> None:
        member = await member_with_entries(api, 1)
        response = await api.get(f"/v1/members/{member}/entries", cursor=cursor)
        assert_invalid(response.json(), response.status_code)

    @pytest.mark.parametrize("cursor", FORGERIES)
    async def test_the_tier_history_refuses_them(self, api: Api, cursor: str) -> None:
        member = await api.enrol()
        response = await api.get(f"/v1/members/{member}/tier", cursor=cursor)
        assert_invalid(response.json(), response.status_code)

    @pytest.mark.parametrize("cursor", FORGERIES)
    async def test_the_api_key_list_refuses_them(self, api: Api, cursor: str) -> None:
        response = await api.get("/v1/api-keys", cursor=cursor)
        assert_invalid(response.json(), response.status_code)


class TestIssuedCursors:
    async def test_a_cursor_pages_its_own_list(self, api: Api) -> None:
        member = await member_with_entries(api, 3)
        first = (await api.get(f"/v1/members/{member}/entries", limit=2)).json()
        assert len(first["items"]) == 2
        assert first["next_cursor"]
        second = (await api.get(f"/v1/members/{member}/entries", limit=2, cursor=first["next_cursor"])).json()
        assert len(second["items"]) == 1
        assert {item["id"] for item in first["items"]}.isdisjoint(item["id"] for item in second["items"])

    async def test_a_cursor_of_one_members_statement_is_refused_on_anothers(self, api: Api) -> None:
        mine = await member_with_entries(api, 3)
        theirs = await member_with_entries(api, 3)
        cursor = (await api.get(f"/v1/members/{mine}/entries", limit=1)).json()["next_cursor"]
        response = await api.get(f"/v1/members/{theirs}/entries", limit=1, cursor=cursor)
        assert_invalid(response.json(), response.status_code)

    async def test_a_cursor_of_one_programs_key_list_is_refused_in_anothers(
        self, api: Api, other: Api
    ) -> None:
        for _ in range(2):
            await api.key_with("members:read")
        cursor = (await api.get("/v1/api-keys", limit=1)).json()["next_cursor"]
        assert cursor
        response = await other.get("/v1/api-keys", limit=1, cursor=cursor)
        assert_invalid(response.json(), response.status_code)

    async def test_a_tampered_position_is_refused(self, api: Api) -> None:
        member = await member_with_entries(api, 3)
        cursor = (await api.get(f"/v1/members/{member}/entries", limit=1)).json()["next_cursor"]
        payload, signature = cursor.split(".")
        position = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        tampered = forged(position[0] + 1).split(".")[0] + "." + signature
        response = await api.get(f"/v1/members/{member}/entries", limit=1, cursor=tampered)
        assert_invalid(response.json(), response.status_code)
