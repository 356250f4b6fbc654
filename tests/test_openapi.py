from __future__ import annotations

from pathlib import Path

import yaml

from app.openapi import render_openapi

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
