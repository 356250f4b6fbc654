"""Holds: points reserved for a checkout, then captured or released."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Index, PrimaryKeyConstraint, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, program_fk


class PointHold(Base):
    """A two-phase redemption. Its id is the `hold` entry's id; the entry that
    closed it (capture, release, or the worker's release when it expired) is
    `close_entry_id`. The row is locked while a hold is captured or released, so
    of two concurrent closes exactly one wins."""

    __tablename__ = "point_hold"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "id"),
        program_fk("id", "journal_entry.id"),
        program_fk("member_id", "member.id"),
        program_fk("close_entry_id", "journal_entry.id"),
        Index("ix_point_hold_due", "expires_at", "id", postgresql_where=text("status = 'active'")),
        Index(None, "member_id"),
        CheckConstraint("points > 0", name="points_positive"),
        CheckConstraint("captured_points >= 0 AND captured_points <= points", name="captured_within_points"),
        CheckConstraint("status IN ('active', 'captured', 'released', 'expired')", name="status_known"),
        CheckConstraint("(status = 'active') = (close_entry_id IS NULL)", name="closed_by_entry"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid)
    program_id: Mapped[int] = mapped_column(BigInteger)
    member_id: Mapped[int] = mapped_column(BigInteger)
    points: Mapped[int] = mapped_column(BigInteger)
    captured_points: Mapped[int] = mapped_column(BigInteger, server_default="0")
    status: Mapped[str] = mapped_column(Text, server_default="active")
    order_id: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    close_entry_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
