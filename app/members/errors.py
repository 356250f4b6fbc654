from __future__ import annotations

from app.errors import AppError


class MemberExists(AppError):
    status, code, title = 409, "member_exists", "A member with this external_id already exists"


class MemberHasActiveHolds(AppError):
    status, code, title = 409, "member_has_active_holds", "The member has active holds"


class MemberErased(AppError):
    status, code, title = 409, "member_erased", "This member's personal data was erased"
