"""Opaque cursors and the limit parameter shared by every list."""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any

from fastapi import Query

from app.errors import ValidationFailed

Limit = Annotated[int, Query(ge=1, le=500, description="page size (1-500)")]
Cursor = Annotated[str | None, Query(max_length=512, description="next_cursor of the previous page")]


def encode_cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts, default=str).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationFailed.on("query.cursor", "not a cursor this API issued") from exc
    if not isinstance(parts, list) or len(parts) != arity:
        raise ValidationFailed.on("query.cursor", "not a cursor this API issued")
    return parts
