"""Daily rollups of the reports (docs/reports.md, Speed): per program, the local
days rolled so far and, per rolled day, what each report sums of it. Written by
the `rollup-reports` job once per day and never changed; `verify` recomputes them."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Numeric,
    PrimaryKeyConstraint,
    Text,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class ReportRollup(Base):
    """How far a program's days are rolled, in the timezone they were rolled in."""

    __tablename__ = "report_rollup"
    __table_args__ = (PrimaryKeyConstraint("program_id"),)

    program_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("program.id"))
    timezone: Mapped[str] = mapped_column(Text)
    first_day: Mapped[date] = mapped_column(Date)
    rolled_through: Mapped[date] = mapped_column(Date)
    rolled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReportDayFigure(Base):
    """One figure's change over one rolled local day: `figure` names what it is
    (app/reports/rollups.py FIGURES), `key` which one (an entry kind, a currency,
    a cohort or expiry month, an account kind); a report sums them over days."""

    __tablename__ = "report_day_figure"
    __table_args__ = (PrimaryKeyConstraint("program_id", "day", "figure", "key"),)

    program_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("program.id"))
    day: Mapped[date] = mapped_column(Date)
    figure: Mapped[str] = mapped_column(Text)
    key: Mapped[str] = mapped_column(Text)
    value: Mapped[Decimal] = mapped_column(Numeric)


class ReportLot(Base):
    """A version of a member's lot as the reports' lot replay (app/reports/lots.py)
    holds it at the end of the rolled `day`: written by the rollup-reports job, in
    the same transaction as the rolled days, for each lot made that day or whose
    points changed. A member's lots at the end of a rolled day are the last
    version of each on or before it (with those of its uses), so that the job and
    a report replay only the entries recorded after that day; `seq` orders a
    member's lots."""

    __tablename__ = "report_lot"
    __table_args__ = (PrimaryKeyConstraint("program_id", "member_id", "seq", "day"),)

    program_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("program.id"))
    member_id: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(BigInteger)
    day: Mapped[date] = mapped_column(Date)
    entry_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    cohort: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    remaining: Mapped[int] = mapped_column(BigInteger)


class ReportLotUse(Base):
    """A version (by rolled `day`, as report_lot's) of the points an entry took from
    a member's lot and may give back (a reversal or a release gives them back to
    that lot), and what the entry was."""

    __tablename__ = "report_lot_use"
    __table_args__ = (PrimaryKeyConstraint("program_id", "member_id", "entry_id", "seq", "day"),)

    program_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("program.id"))
    member_id: Mapped[int] = mapped_column(BigInteger)
    entry_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    seq: Mapped[int] = mapped_column(BigInteger)
    day: Mapped[date] = mapped_column(Date)
    taking: Mapped[str] = mapped_column(Text)
    points: Mapped[int] = mapped_column(BigInteger)


class ReportMemberDay(Base):
    """A member's activity on one rolled local day, as one fact: `active` (the
    activity report's active members), `participating` (the overview's) or
    `orders`; `count` how many that day. Each row names the member's day of the
    same fact before it (with that day's count) and the one before that, so that
    how many members have the fact over a run of days is a count of the rows whose
    previous day lies before the run, not a distinct count over them all."""

    __tablename__ = "report_member_day"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "fact", "day", "member_id"),
        # a member's days (the job links a new day to the last one; a report looks
        # up the members its unrolled remainder found)
        Index(None, "program_id", "fact", "member_id", "day"),
    )

    program_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("program.id"))
    fact: Mapped[str] = mapped_column(Text)
    day: Mapped[date] = mapped_column(Date)
    member_id: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(BigInteger)
    previous_day: Mapped[date | None] = mapped_column(Date)
    previous_count: Mapped[int | None] = mapped_column(BigInteger)
    previous2_day: Mapped[date | None] = mapped_column(Date)
