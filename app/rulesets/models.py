"""Rules documents, one row per program and version, and the log of activations."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class RulesVersion(Base):
    """A version of a program's rules document. Never changed once stored: a change
    is a new version. Exactly one version of a program is active."""

    __tablename__ = "rules_version"
    __table_args__ = (
        Index(
            "uq_rules_version_program_id_active",
            "program_id",
            unique=True,
            postgresql_where=text("active"),
        ),
    )

    program_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("program.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by_key_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RulesActivation(Base):
    """Who switched which version on, and when: the audit trail of rule changes."""

    __tablename__ = "rules_activation"
    __table_args__ = (PrimaryKeyConstraint("program_id", "id"), Index(None, "program_id", "activated_at"))

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    program_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("program.id"))
    version: Mapped[int] = mapped_column(Integer)
    activated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor_key_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
