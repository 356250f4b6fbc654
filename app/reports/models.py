"""Daily rollups of the reports (docs/reports.md, Speed): per program, the local
days rolled so far and, per rolled day, what each report sums of it. Written by
the `rollup-reports` job once per day and never changed; `verify` recomputes them."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Date, DateTime, ForeignKey, Numeric, PrimaryKeyConstraint, Text
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
