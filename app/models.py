"""Every table, imported in one place for Alembic and the schema test."""

from app.auth.models import ApiKey
from app.db import Base
from app.ledger.models import Account, IdempotencyRecord, JournalEntry, MemberBalance, Posting
from app.members.models import Member
from app.programs.models import Program

__all__ = [
    "Account",
    "ApiKey",
    "Base",
    "IdempotencyRecord",
    "JournalEntry",
    "Member",
    "MemberBalance",
    "Posting",
    "Program",
]
