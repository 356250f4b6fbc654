"""Campaign budgets: each budgeted rule's limit, what is left of it in slices, and
what each member has had of it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Identity,
    PrimaryKeyConstraint,
    SmallInteger,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, program_fk


class RulesBudget(Base):
    """A budget, named by where its rule sits in the rules document (app/rules/budgets.py);
    `points` and `per_member` are the limits of the last version activated that sets
    them. Never deleted: a later version naming the same rule spends the same budget."""

    __tablename__ = "rules_budget"
    __table_args__ = (PrimaryKeyConstraint("program_id", "id"), UniqueConstraint("program_id", "key"))

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    program_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("program.id"))
    key: Mapped[str] = mapped_column(Text)
    points: Mapped[int] = mapped_column(BigInteger)
    per_member: Mapped[int | None] = mapped_column(BigInteger)
    slices: Mapped[int] = mapped_column(SmallInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RulesBudgetSlice(Base):
    """What is left of a budget, in slices: an order takes its points from one slice
    that holds them and that no other order holds (SKIP LOCKED, then a conditional
    update), so concurrent orders don't queue on one row; one no slice can cover alone
    locks every slice and takes from what they hold together
    (app/sql/functions/rules_budget_take.sql, rules_budget_spread.sql). What is left of the
    budget is the sum of its slices; what is used, `points` minus that sum."""

    __tablename__ = "rules_budget_slice"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "budget_id", "slot"),
        program_fk("budget_id", "rules_budget.id"),
    )

    program_id: Mapped[int] = mapped_column(BigInteger)
    budget_id: Mapped[int] = mapped_column(BigInteger)
    slot: Mapped[int] = mapped_column(SmallInteger)
    # below zero only when a version lowered the limit under what was already used
    remaining: Mapped[int] = mapped_column(BigInteger)


class RulesBudgetMember(Base):
    """What one member's orders have had of a budget with `per_member` (net of refunds)."""

    __tablename__ = "rules_budget_member"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "budget_id", "member_id"),
        program_fk("budget_id", "rules_budget.id"),
        program_fk("member_id", "member.id"),
    )

    program_id: Mapped[int] = mapped_column(BigInteger)
    budget_id: Mapped[int] = mapped_column(BigInteger)
    member_id: Mapped[int] = mapped_column(BigInteger)
    used: Mapped[int] = mapped_column(BigInteger)
