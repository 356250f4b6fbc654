"""Paid orders and their refunds."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    Identity,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, program_fk


class PaidOrder(Base):
    """A paid order as the checkout sent it, with every fact the rules used, so the
    points can be explained, refunded in proportion, and replayed under other rules."""

    __tablename__ = "paid_order"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "id"),
        program_fk("member_id", "member.id"),
        # Deferred: ledger_post_order() records the order before it posts the entry.
        program_fk("entry_id", "journal_entry.id", deferrable=True, initially="DEFERRED"),
        # order ids are unique per program, and per partner for partner orders
        UniqueConstraint("program_id", "order_id", "partner_id", postgresql_nulls_not_distinct=True),
        Index(None, "member_id", "local_day"),
        Index(None, "program_id", "paid_at"),
        # the reports' reads of a period by recorded time (the part not rolled up)
        Index(None, "program_id", "recorded_at"),
        CheckConstraint("points >= 0", name="points_not_negative"),
        CheckConstraint("points_taken_back >= 0 AND points_taken_back <= points", name="taken_back_within"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    program_id: Mapped[int] = mapped_column(BigInteger)
    order_id: Mapped[str] = mapped_column(Text)
    # A partner's co-branded order (POST /v1/partner/orders): the partner funds its
    # points. No foreign key, as for JournalEntry.program_id: every concurrent order
    # of one partner would share-lock the partner's row; partners are never deleted.
    partner_id: Mapped[int | None] = mapped_column(BigInteger)
    member_id: Mapped[int] = mapped_column(BigInteger)
    # The request that created it: its Idempotency-Key finds the stored response.
    idempotency_key: Mapped[str] = mapped_column(Text)
    request_fingerprint: Mapped[str] = mapped_column(Text)
    entry_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    rules_version: Mapped[int] = mapped_column(Integer)
    paid_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    local_day: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(Text)
    total: Mapped[Decimal] = mapped_column(Numeric)
    channel: Mapped[str | None] = mapped_column(Text)
    lines: Mapped[list[Any]] = mapped_column(JSONB)
    # tier, birthday, first_order, earned_today: what the rules were told
    facts: Mapped[dict[str, Any]] = mapped_column(JSONB)
    points: Mapped[int] = mapped_column(BigInteger)
    # [{key, value, weight}] from the rules module: what each part of the order earned
    segments: Mapped[list[Any]] = mapped_column(JSONB)
    # [{budget, kind, rule, points, weights}]: what the order took from campaign budgets
    # (app/rules/budgets.py), which its refunds give back; NULL: none
    budget_charges: Mapped[list[Any] | None] = mapped_column(JSONB)
    refund_state: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    points_taken_back: Mapped[int] = mapped_column(BigInteger, server_default="0")
    # Money refunded so far: qualifying spend for tiers is net of it.
    refunded_total: Mapped[Decimal] = mapped_column(Numeric, server_default="0")


class OrderRefund(Base):
    """One refund of an order: the money returned and where the points came back from."""

    __tablename__ = "order_refund"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "id"),
        UniqueConstraint("program_id", "paid_order_id", "refund_id"),
        program_fk("paid_order_id", "paid_order.id"),
        program_fk("entry_id", "journal_entry.id"),
        CheckConstraint(
            "points = from_pending + from_available + shortfall + debt", name="points_accounted_for"
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    # the order's program, copied so every key of the refund leads with it
    program_id: Mapped[int] = mapped_column(BigInteger)
    paid_order_id: Mapped[int] = mapped_column(BigInteger)
    refund_id: Mapped[str] = mapped_column(Text)
    idempotency_key: Mapped[str] = mapped_column(Text)
    request_fingerprint: Mapped[str] = mapped_column(Text)
    entry_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    amount: Mapped[Decimal] = mapped_column(Numeric)
    points: Mapped[int] = mapped_column(BigInteger)
    from_pending: Mapped[int] = mapped_column(BigInteger)
    from_available: Mapped[int] = mapped_column(BigInteger)
    shortfall: Mapped[int] = mapped_column(BigInteger)
    debt: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # [{budget, points}]: what it gave back to campaign budgets (`verify` adds them up); NULL: none
    budget_returns: Mapped[list[Any] | None] = mapped_column(JSONB)
