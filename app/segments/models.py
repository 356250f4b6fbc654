"""Segment snapshots: each member's RFM segment as of an instant, kept by the
`snapshot-segments` job; an order's rules read the latest one before its paid_at."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class SegmentSnapshot(Base):
    """One snapshot: the program, its `as_of`, the window and the ledger head read."""

    __tablename__ = "segment_snapshot"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "as_of"),
        CheckConstraint("window_days BETWEEN 1 AND 3660", name="window_days_range"),
    )

    program_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("program.id"))
    as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    window_days: Mapped[int] = mapped_column(Integer)
    chain_sequence: Mapped[int] = mapped_column(BigInteger)
    members: Mapped[int] = mapped_column(BigInteger)
    taken_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MemberSegment(Base):
    """A member's scores and segment in one snapshot (every member enrolled by then)."""

    __tablename__ = "member_segment"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "as_of", "member_id"),
        ForeignKeyConstraint(
            ["program_id", "as_of"],
            ["segment_snapshot.program_id", "segment_snapshot.as_of"],
            ondelete="CASCADE",
        ),
        CheckConstraint(
            "segment IN ('core', 'potential', 'regular', 'basic', 'lapsed')", name="segment_known"
        ),
        # GET /v1/reports/segments/members pages one segment of one snapshot
        Index(None, "program_id", "as_of", "segment", "member_id"),
    )

    program_id: Mapped[int] = mapped_column(BigInteger)
    as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    member_id: Mapped[int] = mapped_column(BigInteger)
    segment: Mapped[str] = mapped_column(Text)
    recency_days: Mapped[int | None] = mapped_column(Integer)
    frequency: Mapped[int] = mapped_column(Integer)
    monetary: Mapped[Decimal] = mapped_column(Numeric)
    r: Mapped[int | None] = mapped_column(SmallInteger)
    f: Mapped[int | None] = mapped_column(SmallInteger)
    m: Mapped[int | None] = mapped_column(SmallInteger)
