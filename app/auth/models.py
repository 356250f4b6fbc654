from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ARRAY, BigInteger, DateTime, ForeignKey, ForeignKeyConstraint, Index, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class ApiKey(Base):
    """An API key: stored as a SHA-256 digest, never in clear."""

    __tablename__ = "api_key"
    __table_args__ = (
        Index(None, "program_id", "created_at"),
        # a partner's key names a partner of its own program
        ForeignKeyConstraint(["program_id", "partner_code"], ["partner.program_id", "partner.code"]),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    program_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("program.id"))
    name: Mapped[str] = mapped_column(Text)
    key_prefix: Mapped[str] = mapped_column(Text)
    key_hash: Mapped[str] = mapped_column(Text, unique=True)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    partner_code: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
