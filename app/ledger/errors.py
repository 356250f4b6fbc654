"""The ledger's problems, and what a refusal by the database means for the caller."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from app.errors import AppError, NotFound
from app.idempotency import IdempotencyKeyReused
from app.sql import SqlState


class MemberNotFound(NotFound):
    code, title = "member_not_found", "Member not found"


class InsufficientPoints(AppError):
    status, code, title = 422, "insufficient_points", "Not enough points"


class PointsOutOfRange(AppError):
    status, code, title = 422, "points_out_of_range", "A balance would leave the 64-bit range"


class EntryNotFound(NotFound):
    code, title = "entry_not_found", "Entry not found"


class AlreadyReversed(AppError):
    status, code, title = 409, "already_reversed", "The entry has already been reversed"


class EntryNotReversible(AppError):
    status, code, title = 422, "entry_not_reversible", "This entry cannot be reversed"


class CurrencyMismatch(AppError):
    status, code, title = 422, "currency_mismatch", "The currency is not the program's or the order's"


class PointsBelowMinimum(AppError):
    status, code, title = 422, "points_below_minimum", "Fewer points than the program redeems at once"


class PointsNotInIncrements(AppError):
    status, code, title = 422, "points_not_in_increments", "Points must be redeemed in set increments"


class PointsExceedOrderShare(AppError):
    status, code, title = 422, "points_exceed_order_share", "Points may pay only part of an order"


class PartnerFundsInsufficient(AppError):
    status, code, title = 422, "partner_funds_insufficient", "The partner has not enough funded points"


class PartnerCreditExceeded(AppError):
    status, code, title = 422, "partner_credit_exceeded", "The partner's credit limit would be exceeded"


class MemberNotEligible(AppError):
    status, code, title = 409, "member_not_eligible", "The member's status does not allow this"


class MemberClosed(AppError):
    status, code, title = 409, "member_closed", "The member is closed and accepts nothing new"


# What each status blocks, as the problems say it (docs/lifecycle.md, "Member status").
STATUS_BLOCKS = {
    "frozen": "a frozen member may still receive points (orders, events, awards, transfers in) but may not "
    "redeem, hold, transfer out, convert or keep a tier with points",
    "suspended": "a suspended member's points do not move: it may neither earn nor redeem, hold, "
    "transfer or convert points",
    "closed": "a closed member accepts nothing new: no points move and its status does not change",
}


# The statuses that refuse earning (a frozen member still earns).
EARN_REFUSED = frozenset({"suspended", "closed"})


def status_refusal(member: str, status: str) -> AppError:
    """The problem for an operation a member's status refuses: 409 `member_closed` for a
    closed member, else 409 `member_not_eligible`, naming the status and what it blocks."""
    if status == "closed":
        return MemberClosed(f"member {member} is closed: {STATUS_BLOCKS['closed']}")
    return MemberNotEligible(f"member {member} is {status}: {STATUS_BLOCKS.get(status, 'this is refused')}")


def _not_eligible(exc: asyncpg.PostgresError) -> AppError:
    try:
        facts: dict[str, Any] = json.loads(getattr(exc, "detail", None) or "{}")
        return status_refusal(str(facts["member"]), str(facts["status"]))
    except (ValueError, KeyError, TypeError):
        return MemberNotEligible("a member's status does not allow this entry")


class LimitExceeded(AppError):
    """The rules' `limits` (app/ledger/limits.py); the problem's extension members
    name the limit (`limit`), its value (`allowed`), what is left (`remaining`) and,
    for a daily limit, the local `day`."""

    status, code, title = 422, "limit_exceeded", "A limit in the program's rules would be passed"


REDEEM_REFUSALS: dict[str, type[AppError]] = {
    cls.code: cls for cls in (PointsBelowMinimum, PointsNotInIncrements, PointsExceedOrderShare)
}
REDEEM_LIMIT_ERRORS = (PointsBelowMinimum, PointsNotInIncrements, PointsExceedOrderShare, CurrencyMismatch)


def _insufficient(exc: asyncpg.PostgresError) -> InsufficientPoints:
    try:
        facts: dict[str, Any] = json.loads(getattr(exc, "detail", None) or "{}")
        needed = -int(facts["change_available"])
        return InsufficientPoints(
            f"member {facts['member']} has {facts['available']} available points; this needs {needed}"
        )
    except (ValueError, KeyError, TypeError):
        return InsufficientPoints("a member has not enough available points for this entry")


def _partner_funds(exc: asyncpg.PostgresError) -> AppError:
    try:
        facts: dict[str, Any] = json.loads(getattr(exc, "detail", None) or "{}")
        needed = -int(facts["change_funding"])
        if facts["billing"] == "postpaid":
            unpaid = -int(facts["funding"]) - int(facts.get("paid") or 0)
            return PartnerCreditExceeded(
                f"partner {facts['partner']} has given out {unpaid} points on credit not yet paid for, "
                f"of a credit limit of {facts['credit_limit']}; this needs {needed} more"
            )
        return PartnerFundsInsufficient(
            f"partner {facts['partner']} has {facts['funding']} funded points; this needs {needed}"
        )
    except (ValueError, KeyError, TypeError):
        return PartnerFundsInsufficient("the partner has not enough funded points for this entry")


def as_app_error(exc: asyncpg.PostgresError) -> AppError | None:
    """The problem a database refusal means for the caller; None if it is not the
    caller's (app/sql/README.md lists every SQLSTATE and its problem)."""
    state = exc.sqlstate
    constraint = getattr(exc, "constraint_name", None)
    if state == SqlState.INSUFFICIENT_POINTS:
        return _insufficient(exc)
    if state == SqlState.PARTNER_FUNDS:
        return _partner_funds(exc)
    if state == SqlState.MEMBER_NOT_ELIGIBLE:
        return _not_eligible(exc)
    if state == SqlState.IDEMPOTENCY_KEY_REUSED or (
        state == SqlState.UNIQUE_VIOLATION and constraint == "pk_idempotency_record"
    ):
        return IdempotencyKeyReused("this Idempotency-Key was used for a different request")
    if state == SqlState.MEMBER_NOT_FOUND:
        return MemberNotFound(f"no member {getattr(exc, 'detail', '')!s} in this program")
    if state == SqlState.NUMERIC_VALUE_OUT_OF_RANGE:
        return PointsOutOfRange("the entry would take a balance beyond 9223372036854775807 points")
    if state == SqlState.UNIQUE_VIOLATION and constraint == "uq_journal_entry_program_id_reverses_entry_id":
        return AlreadyReversed(
            "the entry has already been reversed; reverse the reversal's effect with a new award"
        )
    return None
