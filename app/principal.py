"""Who is calling: the program a request acts for, its scopes and its key.

A shared value: every domain reads it; app.auth resolves bearer tokens to it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from app.errors import Forbidden


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: one program, its scopes, and the key (None for the bootstrap key)."""

    program_id: int
    program_code: str
    key_id: uuid.UUID | None
    scopes: frozenset[str]
    partner_code: str | None = None

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    def require(self, scope: str) -> None:
        if not self.allows(scope):
            raise Forbidden(f"this API key lacks the scope {scope}")
