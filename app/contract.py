"""The OpenAPI document as the service really behaves, so that generated clients
can trust it. FastAPI's generator knows the routes and models; this adds what
the shared plumbing does to every operation:

- problems are `application/problem+json` (only), each status with its codes;
- statuses every operation of a kind can return: 503 `unavailable` (with
  Retry-After) wherever the database is asked; 400 `malformed_json`, 413
  `payload_too_large` and 415 `unsupported_media_type` wherever a body is read;
  400 `invalid_cursor` wherever a cursor is taken;
- `Idempotency-Key` is required where the service requires it, and the headers
  it sends are declared: `X-Request-ID` on every answer, `Idempotent-Replayed`
  on a replay, `Retry-After` on a 503, `WWW-Authenticate` on a 401,
  `Ledger-Position` on a successful answer to a method that may write (with a
  read replica configured); 400 `malformed_ledger_position` wherever
  `Ledger-Min-Position` is taken;
- integer bounds are integers: FastAPI's models hold them as floats, which turns
  2^63-1 into 9.223372036854776e+18 (that is 2^63);
- every request body carries its model's example, and every successful JSON
  answer one built from its model's field examples (`_example_of()`).
"""

from __future__ import annotations

import copy
import re
from typing import Any

from app.fields import MAX_POINTS

PROBLEM_MEDIA_TYPE = "application/problem+json"
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_CODES = re.compile(r"`([a-z_]+)`")
_TITLES = {
    400: "Bad request",
    413: "Payload too large",
    415: "Unsupported media type",
    503: "Unavailable",
}
_HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {
        "description": "the request's id: the caller's own X-Request-ID if usable, else one made here",
        "schema": {"type": "string", "maxLength": 128},
    },
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer to an earlier request with the same key",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}},
    "WWW-Authenticate": {"description": "the scheme to authenticate with", "schema": {"type": "string"}},
    "Ledger-Position": {
        "description": "the ledger's position once this request's writes committed: send it back, "
        "unchanged, as `Ledger-Min-Position` on a read that must show them (only with a read replica)",
        "schema": {"type": "string", "maxLength": 64},
    },
}
_WRITES = frozenset({"post", "put", "patch", "delete"})
_IDEMPOTENCY_KEY_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "pattern": "^[\\x20-\\x7e]+$",
    "description": "1-255 printable ASCII characters, unique per operation; a retry with the same key "
    "and body replays the first response",
    "examples": ["5f0c2a7e-8d4b-4c1a-9e3f-2b7d6a1c4e90"],
}
_BOUNDS = ("maximum", "minimum", "exclusiveMaximum", "exclusiveMinimum", "multipleOf")


def _header(name: str) -> dict[str, Any]:
    return copy.deepcopy(_HEADERS[name])  # a copy each: the YAML reads plainly, without anchors


def _add_codes(responses: dict[str, Any], status: int, *codes: str) -> None:
    response = responses.setdefault(str(status), {"description": _TITLES.get(status, "Problem")})
    known = set(_CODES.findall(response.get("description", "")))
    response["description"] = "Problem codes: " + ", ".join(
        f"`{code}`" for code in sorted(known | set(codes))
    )


def _operation(operation: dict[str, Any], path: str, method: str, schemas: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation["responses"]
    parameters = operation.get("parameters", [])
    keyed = False
    for parameter in parameters:
        if parameter["in"] == "header" and parameter["name"] == "Idempotency-Key":
            keyed = True
            parameter["required"] = True
            parameter["schema"] = copy.deepcopy(_IDEMPOTENCY_KEY_SCHEMA)  # no YAML anchors (see _header)
        if parameter["in"] == "query" and parameter["name"] == "cursor":
            _add_codes(responses, 400, "invalid_cursor")
        if parameter["in"] == "header" and parameter["name"] == "Ledger-Min-Position":
            _add_codes(responses, 400, "malformed_ledger_position")
    body = operation.get("requestBody")
    if body is not None:
        _add_codes(responses, 400, "malformed_json")
        _add_codes(responses, 413, "payload_too_large")
        _add_codes(responses, 415, "unsupported_media_type")
        _add_example(body, schemas)
    _add_response_examples(responses, schemas)
    if path.startswith("/v1/") or path == "/readyz":
        _add_codes(responses, 503, "unavailable")
    for status, response in responses.items():
        headers = response.setdefault("headers", {})
        headers["X-Request-ID"] = _header("X-Request-ID")
        if int(status) >= 400:
            response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": dict(_PROBLEM_REF)}}
        if status == "503":
            headers["Retry-After"] = _header("Retry-After")
        if status == "401":
            headers["WWW-Authenticate"] = _header("WWW-Authenticate")
        if keyed and status.startswith("2"):
            headers["Idempotent-Replayed"] = _header("Idempotent-Replayed")
        if method in _WRITES and status.startswith("2"):
            headers["Ledger-Position"] = _header("Ledger-Position")


def _model_of(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref")
    if ref is None:
        for option in schema.get("anyOf", []):
            ref = option.get("$ref") or ref
    return None if ref is None else str(ref).rsplit("/", 1)[-1]


def _add_example(body: dict[str, Any], schemas: dict[str, Any]) -> None:
    for media in body.get("content", {}).values():
        model = _model_of(media.get("schema", {}))
        examples = schemas.get(model or "", {}).get("examples")
        if examples and "example" not in media:
            media["example"] = examples[0]


_NO_EXAMPLE = object()


def _example_of(schema: dict[str, Any], schemas: dict[str, Any], seen: frozenset[str] = frozenset()) -> Any:
    """An example of what `schema` describes, from the examples the schema and the
    components it names hold; `_NO_EXAMPLE` if they hold none. The schema's own first
    example if it has one (a field's, or a model's); else a `$ref` is followed (once
    per path: JSON values nest), an `anyOf` gives its first non-null option's, an
    array one item, and an object each property that has one (else its default).
    Every value is a fresh copy, so the YAML carries no anchors."""
    if schema.get("examples"):
        return copy.deepcopy(schema["examples"][0])
    ref = schema.get("$ref")
    if ref is not None:
        name = str(ref).rsplit("/", 1)[-1]
        return _NO_EXAMPLE if name in seen else _example_of(schemas.get(name, {}), schemas, seen | {name})
    for option in schema.get("anyOf", []):
        found = _NO_EXAMPLE if option.get("type") == "null" else _example_of(option, schemas, seen)
        if found is not _NO_EXAMPLE:
            return found
    if "items" in schema:
        item = _example_of(schema["items"], schemas, seen)
        return _NO_EXAMPLE if item is _NO_EXAMPLE else [item]
    if "properties" not in schema:
        return _NO_EXAMPLE
    example = {}
    for name, field in schema["properties"].items():
        value = _example_of(field, schemas, seen)
        if value is _NO_EXAMPLE and "default" in field:
            value = copy.deepcopy(field["default"])
        if value is not _NO_EXAMPLE:
            example[name] = value
    return example


def _add_response_examples(responses: dict[str, Any], schemas: dict[str, Any]) -> None:
    """A successful JSON answer of a model (or a list of one) gets the model's example."""
    for status, response in responses.items():
        media = response.get("content", {}).get("application/json")
        if not status.startswith("2") or media is None or "example" in media:
            continue
        schema = media.get("schema", {})
        if _model_of(schema.get("items", schema)) is None:
            continue
        example = _example_of(schema, schemas)
        if example is not _NO_EXAMPLE:
            media["example"] = example


def _integer_bounds(node: Any) -> None:
    """Integer bounds as integers (see the module's docstring)."""
    if isinstance(node, dict):
        if node.get("type") == "integer":
            for bound in _BOUNDS:
                value = node.get(bound)
                if isinstance(value, float) and value.is_integer():
                    node[bound] = MAX_POINTS if value == float(2**63) else int(value)
        for child in node.values():
            _integer_bounds(child)
    elif isinstance(node, list):
        for child in node:
            _integer_bounds(child)


def complete(spec: dict[str, Any]) -> dict[str, Any]:
    """FastAPI's document, completed as described above (in place; returned)."""
    schemas = spec.get("components", {}).get("schemas", {})
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            _operation(operation, path, method, schemas)
    _integer_bounds(spec)
    return spec
