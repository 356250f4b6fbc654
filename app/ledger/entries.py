"""The ledger's vocabulary, shared by every domain that moves points: entry kinds,
account kinds, and the typed shape of an entry to post (`NewEntry`, its `Leg`s)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, get_args

EntryKind = Literal[
    "award",
    "redemption",
    "transfer",
    "reversal",
    "earn",
    "refund",
    "activate",
    "event",
    "hold",
    "capture",
    "release",
    "expire",
    "tier_keep",
    "funding",
    "donation",
    "conversion",
    "forfeit",
]
# A member's accounts. `debt` holds what a member owes (zero or negative) after a
# refund took back points they had already spent, in programs whose rules say so;
# later earnings repay it.
MemberAccount = Literal["available", "pending", "held", "debt"]
# A program's system accounts: unbounded, no balance row, no lock on the hot path.
# `forfeit` receives what a closed member gave up (app.members: closing).
SystemAccount = Literal["issuance", "redemption", "expiry", "forfeit"]
# A partner's own accounts (app.partners): `partner_funding` holds points the partner
# has paid for and not given out yet (below zero only for a postpaid partner, down
# to its credit limit); `partner_payable` holds points members spent with it.
PartnerAccount = Literal["partner_funding", "partner_payable"]
AccountKind = Literal[MemberAccount, SystemAccount, PartnerAccount]

ENTRY_KINDS: tuple[EntryKind, ...] = get_args(EntryKind)
MEMBER_ACCOUNT_KINDS: tuple[MemberAccount, ...] = get_args(MemberAccount)
SYSTEM_ACCOUNT_KINDS: tuple[SystemAccount, ...] = get_args(SystemAccount)
PARTNER_ACCOUNT_KINDS: tuple[PartnerAccount, ...] = get_args(PartnerAccount)

# Entries an order's lifecycle wrote: undone by refunds, which keep the order's
# refund state and pending credit in step, never by a bare reversal.
ORDER_KINDS: frozenset[EntryKind] = frozenset({"earn", "refund", "activate"})
# A hold's entries are undone by its own lifecycle (capture, release). An expiry is
# not undone either: its points would return to lots that have expired and leave
# again with the next run; reinstate points with an award and a new expiry instead.
# Points spent to keep a tier bought the term they extended: not undone either.
# Partner entries are undone by their own operations (refunds of partner orders,
# reversals of partner redemptions), which keep the partner's settlement in step.
LIFECYCLE_KINDS: frozenset[EntryKind] = frozenset(
    {"hold", "capture", "release", "expire", "tier_keep", "funding", "donation", "conversion", "forfeit"}
)

# Which member statuses refuse an entry (ledger_post()'s p_member_check, read under
# the member's balance-row lock): "move" refuses suspended and closed members, and
# frozen ones the entry takes points from; "open" refuses closed members only (the
# program taking back what an order or entry gave: refunds, reversals); None checks
# nothing (jobs, and captures and releases, which settle holds placed before).
MemberCheck = Literal["move", "open"]
MEMBER_CHECKS: dict[EntryKind, MemberCheck | None] = {
    "award": "move",
    "redemption": "move",
    "transfer": "move",
    "earn": "move",
    "event": "move",
    "hold": "move",
    "tier_keep": "move",
    "donation": "move",
    "conversion": "move",
    "reversal": "open",
    "refund": "open",
    "activate": None,
    "capture": None,
    "release": None,
    "expire": None,
    "funding": None,
    "forfeit": None,
}

# Idempotency keys of the entries jobs write begin with this: clients' keys are
# printable ASCII, so a job's key never meets one of theirs.
JOB_KEY_PREFIX = "job\u00b7"


def sql_in(values: tuple[str, ...]) -> str:
    """`'a', 'b'` for a CHECK constraint that lists the known values."""
    return ", ".join(f"'{value}'" for value in values)


@dataclass(frozen=True, slots=True)
class Leg:
    """One posting of an entry to post: signed points on one account."""

    member: str | None  # external id; None for a system account
    account: AccountKind
    amount: int
    partner: int | None = None  # the partner's id, for its partner_* accounts


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An entry for ledger_post() (app/sql/functions/ledger_post.sql)."""

    id: uuid.UUID
    program_id: int
    kind: EntryKind
    idempotency_key: str
    request_fingerprint: str
    occurred_at: datetime
    recorded_at: datetime
    actor_key_id: uuid.UUID | None
    legs: tuple[Leg, ...]
    reverses: uuid.UUID | None = None
    reason: str | None = None
    order_id: str | None = None
    rules_version: int | None = None
    expires_at: datetime | None = None
    pending_until: datetime | None = None
    metadata: dict[str, Any] | None = None
    explanation: list[dict[str, Any]] | None = None
    source_entry_id: uuid.UUID | None = None
    partner_line: PartnerLine | None = None
    member_check: MemberCheck | None = None


@dataclass(frozen=True, slots=True)
class PartnerLine:
    """What a partner entry means for the partner's settlement (app.partners), kept
    with the entry in its transaction: the section, the points in it (negative for
    refunds and reversals), and the price each point carries there: a rate's
    `price_per_point` (with the rate), or a funding's whole `price`; neither when
    the line carries points and no money."""

    partner_id: int
    section: str
    points: int
    rate_id: int | None = None
    price_per_point: Decimal | None = None
    price: Decimal | None = None
    undoes: uuid.UUID | None = None  # the entry a refund or reversal line undoes

    def to_json(self) -> dict[str, Any]:
        return {
            "partner_id": self.partner_id,
            "section": self.section,
            "points": self.points,
            "rate_id": self.rate_id,
            "price_per_point": None if self.price_per_point is None else str(self.price_per_point),
            "price": None if self.price is None else str(self.price),
            "undoes": None if self.undoes is None else str(self.undoes),
        }


@dataclass(frozen=True, slots=True)
class Posted:
    """ledger_post()'s answer: the response it stored for this key, new or earlier."""

    replayed: bool
    request_fingerprint: str
    status_code: int | None
    response_body: bytes | None
