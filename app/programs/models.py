from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Identity, Text
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
