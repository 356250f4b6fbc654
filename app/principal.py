"""Who is calling: the program a request acts for, its scopes and its key.

A shared value: every domain reads it; app.auth resolves bearer tokens to it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from app.errors import AppError, Forbidden

PARTNER_SCOPE_PREFIX = "partner:"
# what reads of a partner's own things ask for: any key of a partner
PARTNER_ANY = "partner:*"


class PartnerInactive(AppError):
    status, code, title = 409, "partner_inactive", "The partner is suspended"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: one program, its scopes, and the key (None for the bootstrap
    key). A partner's key also names its partner: it may use only `partner:*`
    scopes, which no program key has (not even `admin`)."""

    program_id: int
    program_code: str
    key_id: uuid.UUID | None
    scopes: frozenset[str]
    partner_code: str | None = None
    partner_id: int | None = None
    partner_active: bool = True
    # what the partner's agreement lets it do, and how it pays (neither changes)
    partner_roles: frozenset[str] = frozenset()
    partner_billing: str | None = None

    def allows(self, scope: str) -> bool:
        if self.partner_code is not None or scope.startswith(PARTNER_SCOPE_PREFIX):
            return self.partner_code is not None and (scope == PARTNER_ANY or scope in self.scopes)
        return "admin" in self.scopes or scope in self.scopes

    def require(self, scope: str) -> None:
        if self.partner_code is not None and not self.partner_active:
            raise PartnerInactive(f"partner {self.partner_code} is suspended; its keys are refused")
        if self.allows(scope):
            return
        if self.partner_code is not None and not scope.startswith(PARTNER_SCOPE_PREFIX):
            raise Forbidden("a partner's key may call only the /v1/partner/ endpoints")
        if self.partner_code is None and scope.startswith(PARTNER_SCOPE_PREFIX):
            raise Forbidden("the /v1/partner/ endpoints are called with a partner's key")
        raise Forbidden(f"this API key lacks the scope {scope}")
