"""The record of each erasure."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, PrimaryKeyConstraint, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, program_fk


class MemberErasure(Base):
    """That a member's personal data was erased: when, why, by which key, and the
    closing's forfeit entry. One per member (a second erasure is 409
    `member_erased`). It holds nothing personal: the member row it points at carries
    the pseudonym, not the external id."""

    __tablename__ = "member_erasure"
    __table_args__ = (PrimaryKeyConstraint("program_id", "member_id"), program_fk("member_id", "member.id"))

    program_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("program.id"))
    member_id: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    actor_key_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # the forfeit entry closing the member wrote (None: it had no points, or was closed before)
    entry_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    erased_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
