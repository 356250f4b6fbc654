"""The HTTP edges: strict JSON, content types, body size, trailing slashes, 405s.
Each answer is a problem document with a stable code, and nothing is written."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from tests.support import Api, entries_with_key


def problem(response: httpx.Response) -> tuple[int, str]:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return response.status_code, str(response.json()["code"])


async def raw_post(
    api: Api, path: str, content: bytes, *, content_type: str | None = "application/json", key: str = "k"
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {api.key}", "Idempotency-Key": key}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return await api.client.post(path, content=content, headers=headers)


class TestStrictJson:
    @pytest.mark.parametrize(
        "number", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1.5e309"], ids=lambda n: n
    )
    async def test_non_finite_numbers_in_metadata_are_malformed_json(
        self, api: Api, db: asyncpg.Connection, number: str
    ) -> None:
        member = await api.enrol()
        key = f"nan-{number}"
        body = f'{{"points": 5, "reason": "x", "metadata": {{"a": {number}}}}}'.encode()
        response = await raw_post(api, f"/v1/members/{member}/awards", body, key=key)
        assert problem(response) == (400, "malformed_json")
        assert await entries_with_key(db, api.program, key) == 0

    async def test_non_finite_numbers_in_event_attributes_are_malformed_json(self, api: Api) -> None:
        member = await api.enrol()
        body = b'{"type": "check_in", "attributes": {"score": Infinity}}'
        response = await raw_post(api, f"/v1/members/{member}/events", body)
        assert problem(response) == (400, "malformed_json")

    async def test_a_key_twice_in_one_object_is_malformed_json(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        member = await api.enrol()
        body = b'{"points": 5, "reason": "x", "points": 500}'
        response = await raw_post(api, f"/v1/members/{member}/awards", body, key="twice")
        assert problem(response) == (400, "malformed_json")
        assert "twice" in response.json()["detail"]
        assert await entries_with_key(db, api.program, "twice") == 0

    async def test_rules_documents_are_parsed_strictly_too(self, api: Api) -> None:
        body = b'{"earn": {"base": {"points": 1, "per": "1.00"}}, "earn": {}}'
        response = await raw_post(api, "/v1/rules", body)
        assert problem(response) == (400, "malformed_json")

    @pytest.mark.parametrize("body", [b"{", b"\xff\xfe", b"[1, 2,]", b'{"a": 1} {"b": 2}'])
    async def test_broken_bodies_are_malformed_json(self, api: Api, body: bytes) -> None:
        member = await api.enrol()
        response = await raw_post(api, f"/v1/members/{member}/awards", body)
        assert problem(response) == (400, "malformed_json")

    async def test_ordinary_floats_and_large_integers_in_metadata_are_kept(self, api: Api) -> None:
        member = await api.enrol()
        body = b'{"points": 5, "reason": "x", "metadata": {"ratio": 0.25, "big": 123456789012345678901234}}'
        response = await raw_post(api, f"/v1/members/{member}/awards", body)
        assert response.status_code == 201, response.text
        assert response.json()["metadata"] == {"ratio": 0.25, "big": 123456789012345678901234}


class TestContentType:
    @pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
    @pytest.mark.parametrize(
        ("path", "body"),
        [
            ("/v1/members", b'{"external_id": "ct-member"}'),
            ("/v1/rules", b'{"earn": {"base": {"points": 1, "per": "1.00"}}}'),
            ("/v1/transfers", b'{"from_member": "a", "to_member": "b", "points": 1}'),
        ],
    )
    async def test_a_body_that_is_not_json_by_its_type_is_415(
        self, api: Api, path: str, body: bytes, content_type: str | None
    ) -> None:
        response = await raw_post(api, path, body, content_type=content_type)
        assert problem(response) == (415, "unsupported_media_type")

    @pytest.mark.parametrize(
        "content_type", ["application/json; charset=utf-8", "application/merge-patch+json"]
    )
    async def test_json_types_with_parameters_or_suffixes_are_json(self, api: Api, content_type: str) -> None:
        response = await raw_post(
            api, "/v1/members", b'{"external_id": "suffix-1"}', content_type=content_type
        )
        assert response.status_code == 201, response.text

    @pytest.mark.parametrize(
        "path", ["/v1/members", "/v1/transfers", "/v1/rules", "/v1/orders", "/v1/api-keys"]
    )
    async def test_an_empty_body_where_one_is_required_is_the_same_422_everywhere(
        self, api: Api, path: str
    ) -> None:
        response = await raw_post(api, path, b"", content_type=None)
        assert problem(response) == (422, "validation_error"), response.text
        assert response.json()["errors"][0]["field"] == "body"


class TestBodySize:
    async def test_a_body_over_the_limit_is_413_before_it_is_parsed(self, api: Api) -> None:
        member = await api.enrol()
        padding = "x" * (2 * 1024 * 1024)
        body = f'{{"points": 5, "reason": "x", "metadata": {{"pad": "{padding}"}}}}'.encode()
        response = await raw_post(api, f"/v1/members/{member}/awards", body)
        assert problem(response) == (413, "payload_too_large")

    async def test_a_chunked_body_over_the_limit_is_413(self, api: Api) -> None:
        member = await api.enrol()

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"points": 5, "reason": "x", "metadata": {"pad": "'
            for _ in range(3):
                yield b"x" * (1024 * 1024)
            yield b'"}}'

        headers = {**api.headers(idempotency_key="chunked"), "Content-Type": "application/json"}
        response = await api.client.post(f"/v1/members/{member}/awards", content=chunks(), headers=headers)
        assert problem(response) == (413, "payload_too_large")
        assert (await api.get(f"/v1/members/{member}/balance")).json()["available"] == 0

    async def test_a_body_over_the_limit_without_a_key_is_401(self, api: Api) -> None:
        member = await api.enrol()
        body = b'{"points": 5, "reason": "' + b"x" * (2 * 1024 * 1024) + b'"}'
        response = await api.client.post(
            f"/v1/members/{member}/awards", content=body, headers={"Content-Type": "application/json"}
        )
        assert problem(response)[0] == 401


class TestRoutesWithoutABody:
    """A route that takes no body never reads one: whatever is sent is not an error."""

    @pytest.mark.parametrize(
        ("content", "content_type"),
        [(b"{", "application/json"), (b"activate!", "text/plain"), (b"x" * (2 * 1024 * 1024), "text/plain")],
        ids=["broken-json", "text", "over-the-limit"],
    )
    async def test_a_body_sent_anyway_is_ignored(self, api: Api, content: bytes, content_type: str) -> None:
        version = (await api.post("/v1/rules", {"earn": {"base": {"points": 1, "per": "1.00"}}})).json()[
            "version"
        ]
        headers = {**api.headers(idempotency_key=None), "Content-Type": content_type}
        activated = await api.client.post(f"/v1/rules/{version}/activate", content=content, headers=headers)
        assert activated.status_code == 200, activated.text
        listed = await api.client.request("GET", "/v1/rules", content=content, headers=headers)
        assert listed.status_code == 200, listed.text

    async def test_a_streamed_answer_is_whole_whatever_body_was_sent(self, api: Api) -> None:
        """A streamed answer reads the request while it streams (to notice a
        disconnect): a body sent to a route that takes none is still not counted."""
        member = await api.enrol()
        await api.award(member, 5)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(3):
                yield b"x" * (1024 * 1024)

        headers = {**api.headers(), "Content-Type": "text/plain"}
        for content in (chunks(), b"x" * (2 * 1024 * 1024)):
            response = await api.client.request(
                "GET", f"/v1/members/{member}/export", content=content, headers=headers
            )
            assert response.status_code == 200, response.text[:300]
            assert response.json()["complete"] is True


class TestPaths:
    @pytest.mark.parametrize("path", ["/v1/members/", "/v1/rules/", "/v1/transfers/"])
    async def test_a_trailing_slash_is_a_404_problem_not_a_redirect(self, api: Api, path: str) -> None:
        response = await api.client.post(path, json={}, headers=api.headers(idempotency_key="slash"))
        assert problem(response) == (404, "not_found")

    @pytest.mark.parametrize(
        ("method", "path", "allowed"),
        [
            ("DELETE", "/v1/rules", {"GET", "POST"}),
            ("OPTIONS", "/v1/rules", {"GET", "POST"}),
            ("PUT", "/v1/members", {"POST"}),
            ("DELETE", "/v1/members/m-1/tier", {"GET", "PUT"}),
        ],
    )
    async def test_405_names_every_method_of_the_path(
        self, api: Api, method: str, path: str, allowed: set[str]
    ) -> None:
        response = await api.client.request(method, path, headers=api.headers())
        assert problem(response) == (405, "method_not_allowed")
        listed = {m.strip() for m in response.headers["allow"].split(",")}
        assert listed - {"HEAD"} >= allowed
        assert method not in listed
