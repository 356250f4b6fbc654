"""The event log's table."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Identity,
    Index,
    PrimaryKeyConstraint,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class EventLogRow(Base):
    """One event. Written in the transaction of the change that causes it (member,
    tier and rules events: an outbox) or by the chainer as it chains an entry
    (`points.*`); the chainer gives every event its place in the program's `sequence`,
    in chain order. Never edited except that one assignment (app/sql/triggers/)."""

    __tablename__ = "event_log"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "position"),
        UniqueConstraint("program_id", "id"),
        UniqueConstraint("program_id", "entry_id"),
        UniqueConstraint("program_id", "sequence"),
        # the outbox: events not yet in the sequence, in the order the chainer takes them
        Index(
            "ix_event_log_program_id_txid_position_unsequenced",
            "program_id",
            "txid",
            "position",
            postgresql_where=text("sequence IS NULL"),
        ),
        Index("ix_event_log_members", "members", postgresql_using="gin"),
    )

    position: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    id: Mapped[uuid.UUID] = mapped_column(Uuid)
    # no foreign key to program, as none to journal_entry (below): programs are never
    # deleted (app/sql/triggers/program_no_delete.sql), and `verify` names an event
    # whose program is missing
    program_id: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(Text)
    sequence: Mapped[int | None] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # the writing transaction (the chainer's order, as for journal entries)
    txid: Mapped[int] = mapped_column(BigInteger, server_default=text("(pg_current_xact_id())::text::bigint"))
    # points.*: the entry, rendered when read (GET /v1/entries/{id}'s shape); else None.
    # No foreign key, as for entry_chain (app/ledger/models.py): `verify` names an
    # event whose entry is missing from the journal.
    entry_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # the members it concerns (internal ids), for ?member=
    members: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), server_default=text("'{}'"))
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # webhook.test: the one endpoint it is for
    endpoint_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
