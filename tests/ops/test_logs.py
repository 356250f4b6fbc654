"""Logs an operator can use: one JSON object per line with LEDGER_LOG_FORMAT=json,
an access line per request, the request id in every line of that request."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import httpx
import pytest

from app.config import Environment, Settings
from app.logs import configure
from app.main import create_app
from tests.support import Api


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """A buffer for the process's logging; its handlers are restored afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    yield stream
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_json_lines_carry_the_request_id(api: Api, log_stream: io.StringIO) -> None:
    configure("info", "json", stream=log_stream)
    response = await api.client.get(
        "/v1/members/nobody", headers={**api.headers(), "X-Request-ID": "trace-9"}
    )
    assert response.status_code == 404
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    access = [line for line in lines if line["logger"] == "points_ledger.access"]
    assert access == [
        {
            "time": access[0]["time"],
            "level": "info",
            "logger": "points_ledger.access",
            "message": access[0]["message"],
            "method": "GET",
            "path": "/v1/members/nobody",
            "status": 404,
            "request_id": "trace-9",
        }
    ]
    assert access[0]["message"].startswith("GET /v1/members/nobody 404 ")


async def test_text_lines_name_the_request_too(api: Api, log_stream: io.StringIO) -> None:
    configure("info", "text", stream=log_stream)
    await api.client.get("/healthz", headers={"X-Request-ID": "trace-10"})
    assert any(
        "GET /healthz 200" in line and line.endswith("request_id=trace-10")
        for line in log_stream.getvalue().splitlines()
    )


def test_the_access_log_is_on_outside_production_unless_turned_off() -> None:
    assert Settings(env=Environment.development).access_log_on
    assert not Settings(env=Environment.development, access_log=False).access_log_on
    assert not Settings(env=Environment.production, database_url="postgresql://h/d").access_log_on


async def test_an_unexpected_error_is_a_500_problem_naming_the_request(
    settings: Settings, migrated_database: str, log_stream: io.StringIO
) -> None:
    app = create_app(settings, database_url=migrated_database)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    configure("info", "json", stream=log_stream)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://ledger.test") as client:
        response = await client.get("/boom", headers={"X-Request-ID": "trace-500"})
    assert (response.status_code, response.headers["content-type"]) == (500, "application/problem+json")
    assert response.headers["x-request-id"] == "trace-500"
    assert (response.json()["code"], response.json()["request_id"]) == ("internal_error", "trace-500")
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    logged = [line for line in lines if line["message"].startswith("unhandled error on GET /boom")]
    assert [line["request_id"] for line in logged] == ["trace-500"], lines
