"""Awards waiting for, or decided by, a second key (four-eyes approvals)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Index, PrimaryKeyConstraint, Text, Uuid
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, program_fk


class AwardApproval(Base):
    """An award that asked for more points than `limits.award_approval_above`. It
    keeps the award's request as it was validated, who asked (key, Idempotency-Key,
    request id) and, once decided, who decided, why, and the entry an approval
    posted. `pending` past `expires_at` reads as `expired` (decided on read and on
    every decision attempt; no job writes it). The row is locked while it is
    decided, so of two concurrent decisions exactly one acts."""

    __tablename__ = "award_approval"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "id"),
        program_fk("member_id", "member.id"),
        program_fk("entry_id", "journal_entry.id"),
        Index(None, "program_id", "status", "id"),
        CheckConstraint("points > 0", name="points_positive"),
        CheckConstraint("status IN ('pending', 'approved', 'rejected')", name="status_known"),
        CheckConstraint("(status = 'approved') = (entry_id IS NOT NULL)", name="approved_has_entry"),
        CheckConstraint("(status = 'pending') = (decided_at IS NULL)", name="decided_when_not_pending"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid)
    program_id: Mapped[int] = mapped_column(BigInteger)
    member_id: Mapped[int] = mapped_column(BigInteger)
    points: Mapped[int] = mapped_column(BigInteger)
    # the award's body as validated (AwardIn), posted as it is when approved
    request: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(Text, server_default="pending")
    requested_by_key_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    idempotency_key: Mapped[str] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(Text)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_by_key_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    entry_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
