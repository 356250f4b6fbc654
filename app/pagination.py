"""Cursors and the limit parameter shared by every list.

A cursor is opaque to callers and signed by the service: base64url of the position
(a JSON array) and an HMAC-SHA256 of it together with the list it belongs to (for
example one member's statement). So a cursor the service did not issue, or one
issued for another list (another member's statement), is 400 `invalid_cursor`,
and a position never reaches the database unless this service wrote it. The key
is the service's own secret, kept in the database (service_secret), so every
replica signs and reads the same cursors."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Annotated, Any

from fastapi import Query

from app.errors import AppError

Limit = Annotated[int, Query(ge=1, le=500, description="page size (1-500)", examples=[50])]
Cursor = Annotated[
    str | None,
    Query(
        max_length=512,
        description="next_cursor of the previous page; unset: the first page",
        # A real cursor's shape (position.signature), but signed by no service's key:
        # sent as it is, it answers 400 `invalid_cursor`. Unset is the other example,
        # so a client (or schemathesis's examples phase) also asks for a first page.
        examples=["WzgxNzIzXQ.4kZc2m9XfQ1v7rT0aBpLhw", None],
    ),
]

_SIGNATURE_BYTES = 16


class InvalidCursor(AppError):
    status, code, title = 400, "invalid_cursor", "Not a cursor this service issued for this list"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode())


class Cursors:
    """Issues and reads the cursors of every list, with one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a cursor key needs at least 16 bytes")
        self._key = key

    @classmethod
    def ephemeral(cls) -> Cursors:
        """A key of this process alone (tools and benchmarks that page nothing twice)."""
        return cls(secrets.token_bytes(32))

    def _sign(self, list_id: str, position: bytes) -> bytes:
        mac = hmac.new(self._key, list_id.encode() + b"\x00" + position, hashlib.sha256)
        return mac.digest()[:_SIGNATURE_BYTES]

    def issue(self, list_id: str, *position: Any) -> str:
        """The cursor for `position` (JSON values) in the list `list_id`."""
        encoded = json.dumps(list(position), separators=(",", ":")).encode()
        return f"{_b64(encoded)}.{_b64(self._sign(list_id, encoded))}"

    def read(self, list_id: str, cursor: str) -> list[Any]:
        """The position a cursor of `list_id` holds; 400 `invalid_cursor` otherwise."""
        try:
            payload, signature = cursor.split(".", 1)
            position = _unb64(payload)
            valid = hmac.compare_digest(_unb64(signature), self._sign(list_id, position))
            values = json.loads(position) if valid else None
        except (ValueError, UnicodeDecodeError):
            values = None
        if not isinstance(values, list):
            raise InvalidCursor("next_cursor must be passed back exactly as a page of this same list gave it")
        return values
