from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs  # not declared: it comes with schemathesis, whose CI checks validate with it
import yaml

from app.openapi import render_openapi
from tests.support import Api

SPEC = Path(__file__).resolve().parent.parent / "openapi.yaml"


def test_openapi_yaml_is_generated_from_the_app() -> None:
    assert SPEC.read_text() == render_openapi(), "openapi.yaml drifted: run `points-ledger openapi`"


def test_every_operation_has_an_id_description_and_problem_responses() -> None:
    spec = yaml.safe_load(render_openapi())
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert operation.get("operationId"), (method, path)
            assert operation.get("description") or operation.get("summary"), (method, path)
            if path.startswith("/v1"):
                assert "401" in operation["responses"], (method, path)


def test_every_public_schema_field_is_described() -> None:
    spec = yaml.safe_load(render_openapi())
    missing = [
        f"{name}.{field}"
        for name, schema in spec["components"]["schemas"].items()
        if name not in {"HTTPValidationError", "ValidationError"}
        for field, definition in schema.get("properties", {}).items()
        if "description" not in definition and "$ref" not in definition and "allOf" not in definition
    ]
    assert missing == []


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    spec = yaml.safe_load(SPEC.read_text())
    return [
        (method, path, operation)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
    ]


def _json_answers() -> dict[tuple[str, str], dict[str, Any]]:
    """The successful JSON answers whose schema names a model, by operation and status."""
    return {
        (operation["operationId"], status): response["content"]["application/json"]
        for _, _, operation in _operations()
        for status, response in operation["responses"].items()
        if status.startswith("2")
        and "$ref" in json.dumps(response.get("content", {}).get("application/json", {}).get("schema", {}))
    }


class TestTheContractTellsTheTruth:
    def test_problems_are_declared_as_problem_json_only(self) -> None:
        wrong = [
            f"{method} {path} {status}"
            for method, path, operation in _operations()
            for status, response in operation["responses"].items()
            if int(status) >= 400 and set(response.get("content", {})) != {"application/problem+json"}
        ]
        assert wrong == []

    def test_idempotency_key_is_required_where_it_is_taken(self) -> None:
        keyed = [
            (path, parameter["required"])
            for _, path, operation in _operations()
            for parameter in operation.get("parameters", [])
            if parameter["name"] == "Idempotency-Key"
        ]
        assert len(keyed) >= 11
        assert all(required for _, required in keyed)

    def test_every_database_backed_operation_declares_503_and_body_ones_400_413_415(self) -> None:
        for method, path, operation in _operations():
            if path.startswith("/v1/"):
                assert "503" in operation["responses"], (method, path)
                assert "Retry-After" in operation["responses"]["503"]["headers"], (method, path)
            if "requestBody" in operation:
                for status in ("400", "413", "415"):
                    assert status in operation["responses"], (method, path, status)
                assert "malformed_json" in operation["responses"]["400"]["description"]

    def test_every_parameter_has_an_example_valid_for_its_schema(self) -> None:
        missing, invalid = [], []
        for method, path, operation in _operations():
            for parameter in operation.get("parameters", []):
                where = f"{method} {path} {parameter['in']} {parameter['name']}"
                examples = parameter["schema"].get("examples", [])
                if not examples:
                    missing.append(where)
                validator = jsonschema_rs.Draft202012Validator(parameter["schema"], validate_formats=True)
                invalid += [
                    f"{where}: {example!r}" for example in examples if not validator.is_valid(example)
                ]
        assert missing == []
        assert invalid == []

    def test_every_successful_json_answer_of_a_model_has_an_example(self) -> None:
        answers = _json_answers()
        assert len(answers) >= 90
        assert [answer for answer, media in answers.items() if "example" not in media] == []

    def test_every_answer_example_is_valid_for_its_response_schema(self) -> None:
        components = yaml.safe_load(SPEC.read_text())["components"]
        invalid = {}
        for (operation_id, status), media in _json_answers().items():
            schema = {**media["schema"], "components": components}
            validator = jsonschema_rs.Draft202012Validator(schema, validate_formats=True)
            errors = [error.message for error in validator.iter_errors(media.get("example"))]
            if errors:
                invalid[f"{operation_id} {status}"] = errors
        assert invalid == {}

    def test_the_points_maximum_is_the_integer_2_63_minus_1(self) -> None:
        text = SPEC.read_text()
        assert "9.223372036854776e+18" not in text
        assert "maximum: 9223372036854775807" in text


async def test_every_answer_carries_a_request_id_and_problems_name_it(api: Api) -> None:
    mine = await api.client.get("/v1/members/nobody", headers={**api.headers(), "X-Request-ID": "trace-123"})
    assert mine.headers["x-request-id"] == "trace-123"
    assert mine.json()["request_id"] == "trace-123"
    made = await api.client.get("/v1/members/nobody", headers={**api.headers(), "X-Request-ID": "bad id\x7f"})
    assert made.headers["x-request-id"] != "bad id\x7f"
    assert made.json()["request_id"] == made.headers["x-request-id"]
    assert (await api.client.get("/healthz")).headers["x-request-id"]
