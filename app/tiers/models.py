"""Each member's tier, and every change of it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, program_fk


class MemberTier(Base):
    """The member's tier now: since when, when its term ends, a grace period after a
    missed retention, an operator override. Written only under the member's
    balance-row lock, through tier_apply() (app/sql/functions/tier_apply.sql)."""

    __tablename__ = "member_tier"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "member_id"),
        program_fk("member_id", "member.id"),
        CheckConstraint("(tier_code IS NULL) = (since IS NULL)", name="since_with_tier"),
        # What `evaluate-tiers` reads instead of every member: terms and overrides
        # that have ended, tiers in grace, and tiers changed since its last run.
        Index(
            "ix_member_tier_term_due",
            "program_id",
            "term_ends_at",
            postgresql_where=text("term_ends_at IS NOT NULL"),
        ),
        Index(
            "ix_member_tier_override_due",
            "program_id",
            "override_until",
            postgresql_where=text("override_until IS NOT NULL"),
        ),
        Index(
            "ix_member_tier_in_grace",
            "program_id",
            "grace_ends_at",
            postgresql_where=text("grace_ends_at IS NOT NULL"),
        ),
        Index(None, "program_id", "txid"),
    )

    member_id: Mapped[int] = mapped_column(BigInteger)
    program_id: Mapped[int] = mapped_column(BigInteger)
    tier_code: Mapped[str | None] = mapped_column(Text)
    since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    term_ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A retention was missed at term_ends_at: the tier drops at grace_ends_at.
    grace_ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # An operator set the tier until then; after it, it is judged like a term end.
    override_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # An operator set the tier with no end: no term, no downgrade (upgrades still apply).
    pinned: Mapped[bool] = mapped_column(Boolean, server_default="false")
    rules_version: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The id of the transaction that last wrote the row (tier_apply()), like
    # journal_entry.txid: the job finds the tiers changed since its last run by it.
    txid: Mapped[int] = mapped_column(BigInteger, server_default=text("(pg_current_xact_id())::text::bigint"))


class TierChange(Base):
    """One change of a member's tier, and why. Append-only (the database refuses
    UPDATE and DELETE, as for the journal)."""

    __tablename__ = "tier_change"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "id"),
        program_fk("member_id", "member.id"),
        program_fk("entry_id", "journal_entry.id", deferrable=True, initially="DEFERRED"),
        Index(None, "member_id", "id"),
        CheckConstraint(
            "reason IN ('qualified', 'retained', 'downgraded', 'kept_with_points', 'override', 'imported')",
            name="reason_known",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    program_id: Mapped[int] = mapped_column(BigInteger)
    member_id: Mapped[int] = mapped_column(BigInteger)
    from_tier: Mapped[str | None] = mapped_column(Text)
    to_tier: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    effective_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    term_ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The qualifying activity that decided it, and its window.
    activity: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    rules_version: Mapped[int | None] = mapped_column(Integer)
    entry_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    actor_key_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    note: Mapped[str | None] = mapped_column(Text)
