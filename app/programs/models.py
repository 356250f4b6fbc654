from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Identity, LargeBinary, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class Program(Base):
    """A loyalty program: the tenant every other row belongs to."""

    __tablename__ = "program"
    __table_args__ = (CheckConstraint(r"code ~ '^[a-z0-9][a-z0-9_-]{0,63}$'", name="code_format"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    code: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text)
    point_name: Mapped[str] = mapped_column(Text, server_default="points")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ProgramSecret(Base):
    """A named secret of one program, made the first time it is needed and never
    changed, never sent to a client. `erasure`: the HMAC key of erased members'
    pseudonyms (app.programs.service.pseudonym). Per program, not per deployment, so
    a program moved to another database takes its pseudonyms' key with it."""

    __tablename__ = "program_secret"

    program_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("program.id"), primary_key=True)
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
