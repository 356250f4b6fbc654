"""The event types, and the patterns that select them (`points.*`, `tier.changed`, `*`)."""

from __future__ import annotations

from collections.abc import Iterable

from app.ledger.entries import ENTRY_KINDS, SILENT_KINDS

EVENT_TYPES: tuple[str, ...] = (
    *(f"points.{kind}" for kind in ENTRY_KINDS if kind not in SILENT_KINDS),
    "points.expiring_soon",
    "member.created",
    "member.updated",
    "member.erased",
    "tier.changed",
    "rules.activated",
    "award.approval_requested",
    "award.approval_approved",
    "award.approval_rejected",
    "conversion.requested",
    "conversion.confirmed",
    "conversion.rejected",
    "conversion.failed",
    "partner.statement_closed",
    "partner.statement_paid",
    "import.completed",
    "cost.cap_exceeded",
    "webhook.test",
    "webhook.disabled",
)
FAMILIES = frozenset(name.split(".", 1)[0] for name in EVENT_TYPES)


def check_pattern(pattern: str) -> str:
    """A pattern as given if it selects some event type: `*`, a type, or a family
    with `.*` (`points.*`); ValueError otherwise."""
    if pattern == "*" or pattern in EVENT_TYPES:
        return pattern
    if pattern.endswith(".*") and pattern[:-2] in FAMILIES:
        return pattern
    raise ValueError(
        f"{pattern!r} selects no event type: use *, a family such as points.* or one of "
        + ", ".join(EVENT_TYPES)
    )


def matches(patterns: Iterable[str], event_type: str) -> bool:
    for pattern in patterns:
        if pattern == "*" or pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


def sql_filter(patterns: Iterable[str]) -> tuple[list[str], list[str]] | None:
    """(exact types, LIKE prefixes) for SQL; None when everything matches."""
    exact: list[str] = []
    prefixes: list[str] = []
    for pattern in patterns:
        if pattern == "*":
            return None
        if pattern.endswith(".*"):
            prefixes.append(pattern[:-1] + "%")
        else:
            exact.append(pattern)
    return exact, prefixes
