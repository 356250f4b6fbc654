"""The service's own secrets, kept in the database so that every process and
replica of one deployment shares them (the key that signs list cursors), and made
by the migration that creates the table: nothing to configure."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, LargeBinary, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, Connection

CURSOR_KEY = "cursor"


class ServiceSecret(Base):
    """A named secret of the deployment. Never sent to a client."""

    __tablename__ = "service_secret"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


async def service_secret(connection: Connection, name: str) -> bytes:
    value = await connection.fetchval("SELECT value FROM service_secret WHERE name = $1", name)
    if value is None:
        raise LookupError(f"no service secret {name}: run `points-ledger migrate`")
    return bytes(value)
