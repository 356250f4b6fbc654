from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    ARRAY,
    BigInteger,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    PrimaryKeyConstraint,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class ApiKeyLookup(Base):
    """Which program an API key belongs to, by the key's digest: the one read made
    before the program is known (authenticating a request). Global, not per program
    (a reference table where the schema is distributed by program); written with
    the key, never changed. The key itself, its scopes and its revocation live in
    api_key, with the program's other rows."""

    __tablename__ = "api_key_lookup"

    key_hash: Mapped[str] = mapped_column(Text, primary_key=True)
    program_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("program.id"))


class ApiKey(Base):
    """An API key: stored as a SHA-256 digest, never in clear."""

    __tablename__ = "api_key"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "id"),
        UniqueConstraint("program_id", "key_hash"),
        Index(None, "program_id", "created_at"),
        # a partner's key names a partner of its own program
        ForeignKeyConstraint(["program_id", "partner_code"], ["partner.program_id", "partner.code"]),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid)
    program_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("program.id"))
    name: Mapped[str] = mapped_column(Text)
    key_prefix: Mapped[str] = mapped_column(Text)
    # every digest is in api_key_lookup, which keeps digests unique across programs
    key_hash: Mapped[str] = mapped_column(Text, ForeignKey("api_key_lookup.key_hash"))
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    partner_code: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
