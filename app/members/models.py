from __future__ import annotations

import uuid
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
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, program_fk

# active: everything; frozen: receives points, spends none; suspended: no points move;
# closed: nothing new, for good (docs/lifecycle.md, "Member status").
MEMBER_STATUSES = ("active", "frozen", "suspended", "closed")


class Member(Base):
    __tablename__ = "member"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "id"),
        UniqueConstraint("program_id", "external_id"),
        program_fk("referred_by_member_id", "member.id"),
        # Members by enrolment: the newest first (GET /v1/members), and those whose
        # enrolment is their last activity reaching an inactivity deadline (`expire`).
        Index(None, "program_id", "enrolled_at", "id"),
        CheckConstraint("status IN ('active', 'frozen', 'suspended', 'closed')", name="status_known"),
        # a status that lifts by itself (`until`) is frozen or suspended
        CheckConstraint(
            "status_until IS NULL OR status IN ('frozen', 'suspended')", name="status_until_liftable"
        ),
        # the members whose status lifts next (`lift-statuses`)
        Index("ix_member_status_until", "status_until", postgresql_where=text("status_until IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    program_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("program.id"))
    external_id: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="active")
    # when the status returns to active by itself (the `lift-statuses` job); NULL: it stays
    status_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    birthday: Mapped[date | None] = mapped_column(Date)
    enrolled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    referred_by_member_id: Mapped[int | None] = mapped_column(BigInteger)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MemberStatusChange(Base):
    """Every change of a member's status, with why and by whom (GET
    /v1/members/{id}/status-history). Append-only: written in the transaction of the
    change, under the member's balance-row lock."""

    __tablename__ = "member_status_change"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "id"),
        program_fk("member_id", "member.id"),
        CheckConstraint("status IN ('active', 'frozen', 'suspended', 'closed')", name="status_known"),
        # a member's history, newest first
        Index(None, "program_id", "member_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    program_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("program.id"))
    member_id: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(Text)
    previous_status: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # the API key that asked; NULL when the `lift-statuses` job lifted it
    actor_key_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # the forfeit entry a closing wrote, if any
    entry_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
