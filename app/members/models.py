from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    PrimaryKeyConstraint,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, program_fk

MEMBER_STATUSES = ("active", "suspended", "closed")


class Member(Base):
    __tablename__ = "member"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "id"),
        UniqueConstraint("program_id", "external_id"),
        program_fk("referred_by_member_id", "member.id"),
        # Members by enrolment: the newest first (GET /v1/members), and those whose
        # enrolment is their last activity reaching an inactivity deadline (`expire`).
        Index(None, "program_id", "enrolled_at", "id"),
        # A member's referees, for tiers that count referrals (tier_activity()).
        Index(
            "ix_member_program_id_referred_by_member_id",
            "program_id",
            "referred_by_member_id",
            postgresql_where=text("referred_by_member_id IS NOT NULL"),
        ),
        CheckConstraint("status IN ('active', 'suspended', 'closed')", name="status_known"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    program_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("program.id"))
    external_id: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="active")
    birthday: Mapped[date | None] = mapped_column(Date)
    enrolled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    referred_by_member_id: Mapped[int | None] = mapped_column(BigInteger)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
