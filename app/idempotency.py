"""Idempotency-Key handling shared by every ledger-changing POST."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.responses import Response
from pydantic import BaseModel

from app.errors import AppError, ValidationFailed
from app.fields import canonical_json
from app.principal import Principal

KEY_PATTERN = re.compile(r"^[\x20-\x7e]{1,255}$")
REPLAY_HEADER = "Idempotent-Replayed"


class IdempotencyKeyRequired(AppError):
    status, code, title = 400, "idempotency_key_required", "Idempotency-Key header required"


class IdempotencyKeyReused(AppError):
    status, code, title = (
        422,
        "idempotency_key_reused",
        "Idempotency-Key already used for another request",
    )


async def idempotency_key(
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="1-255 printable ASCII characters, unique per operation; a retry with the "
            "same key and body replays the first response",
        ),
    ] = None,
) -> str:
    if key is None:
        raise IdempotencyKeyRequired("send an Idempotency-Key header with every ledger-changing POST")
    if not KEY_PATTERN.match(key):
        raise ValidationFailed.on("header.Idempotency-Key", "must be 1-255 printable ASCII characters")
    return key


async def _key_of(request: Request) -> str:
    return await idempotency_key(request.headers.get("idempotency-key"))


idempotency_key.resolve_from_request = _key_of  # type: ignore[attr-defined]  # app.http.ApiRoute


def fingerprint(method: str, path: str, body: BaseModel) -> str:
    """What makes two requests "the same": method, path and the validated body."""
    canonical = canonical_json(body.model_dump(mode="json"))
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyedRequest:
    """One ledger-changing request: who asks, under which key, for what exactly."""

    principal: Principal
    idempotency_key: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    body: bytes
    replayed: bool = False

    def to_response(self) -> Response:
        headers = {REPLAY_HEADER: "true"} if self.replayed else None
        return Response(
            self.body, status_code=self.status_code, media_type="application/json", headers=headers
        )


IdempotencyKey = Annotated[str, Depends(idempotency_key)]


def keyed_request(http: Request, principal: Principal, key: str, body: BaseModel) -> KeyedRequest:
    """The request an endpoint serves under its Idempotency-Key: who, which key, what exactly.

    Keys are the program's, except a partner's: each partner's keys live in a space
    of their own ("partner·<id>·<key>"; client keys are printable ASCII, so they
    never meet), so one partner can neither replay another's response nor collide
    with the program's checkout."""
    if principal.partner_id is not None:
        key = f"partner\u00b7{principal.partner_id}\u00b7{key}"
    return KeyedRequest(principal, key, fingerprint(http.method, http.url.path, body))
