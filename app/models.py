"""Every table, imported in one place for Alembic and the schema test."""

from app.auth.models import ApiKey
from app.db import Base
from app.events.models import MemberEvent
from app.ledger.models import (
    Account,
    IdempotencyRecord,
    JournalEntry,
    MemberBalance,
    PendingCredit,
    Posting,
)
from app.members.models import Member
from app.orders.models import OrderRefund, PaidOrder
from app.programs.models import Program
from app.rulesets.models import RulesActivation, RulesVersion

__all__ = [
    "Account",
    "ApiKey",
    "Base",
    "IdempotencyRecord",
    "JournalEntry",
    "Member",
    "MemberBalance",
    "MemberEvent",
    "OrderRefund",
    "PaidOrder",
    "PendingCredit",
    "Posting",
    "Program",
    "RulesActivation",
    "RulesVersion",
]
