"""Non-order activities that earned points."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
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


class MemberEvent(Base):
    """One event that earned: counted for the rules' per-day and once-only limits."""

    __tablename__ = "member_event"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "id"),
        program_fk("member_id", "member.id"),
        program_fk("entry_id", "journal_entry.id"),
        program_fk("referrer_member_id", "member.id"),
        Index(None, "member_id", "type", "local_day"),
        Index(None, "member_id", "occurred_at"),
        Index(
            "ix_member_event_referrer_member_id_occurred_at",
            "referrer_member_id",
            "occurred_at",
            postgresql_where=text("referrer_member_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    program_id: Mapped[int] = mapped_column(BigInteger)
    member_id: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    local_day: Mapped[date] = mapped_column(Date)
    entry_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    points: Mapped[int] = mapped_column(BigInteger)
    referrer_member_id: Mapped[int | None] = mapped_column(BigInteger)
    referrer_points: Mapped[int] = mapped_column(BigInteger, server_default="0")
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    # A type with a streak: this event's position in the member's streak (1 to the
    # rules' `days`), where the next event of the type continues from; null when it
    # did not count towards one (a day already counted, or no streak in the rules).
    streak_position: Mapped[int | None] = mapped_column(Integer)
