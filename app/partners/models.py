"""Partner brands: their agreements, balances, rates, settlement lines and
statements, and the operations members make with them (redemptions, donations,
conversions)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, program_fk


class Partner(Base):
    """A partner brand's agreement with the program: what it may do (`roles`), how
    it pays (`billing`), in which currency, and its credit limit when postpaid."""

    __tablename__ = "partner"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "id"),
        UniqueConstraint("program_id", "code"),
        CheckConstraint("billing IN ('prepaid', 'postpaid')", name="billing_known"),
        CheckConstraint("status IN ('active', 'suspended')", name="status_known"),
        CheckConstraint("settlement_period IN ('month', 'week')", name="settlement_period_known"),
        CheckConstraint(
            "credit_limit_points IS NULL OR (billing = 'postpaid' AND credit_limit_points >= 0)",
            name="credit_limit_postpaid",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    program_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("program.id"))
    code: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    roles: Mapped[list[str]] = mapped_column(ARRAY(Text))
    billing: Mapped[str] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(Text)
    # postpaid only: how many points it may have given out on credit and not paid
    # for yet (its funding may go down to -(credit_limit_points + paid_points)); NULL: no limit
    credit_limit_points: Mapped[int | None] = mapped_column(BigInteger)
    # postpaid: the points of its statements whose payment was recorded
    paid_points: Mapped[int] = mapped_column(BigInteger, server_default="0")
    timezone: Mapped[str] = mapped_column(Text)
    settlement_period: Mapped[str] = mapped_column(Text, server_default="month")
    status: Mapped[str] = mapped_column(Text, server_default="active")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PartnerBalance(Base):
    """The partner's two accounts' balances, in slots: ledger_post() puts each entry
    on one slot and checks the funding there, so concurrent entries of one partner
    rarely queue on one row; a debit its slot cannot cover locks every slot and checks
    the partner's whole funding (app/sql/functions/partner_balance_spread.sql). The
    partner's balances are the sums of its slots."""

    __tablename__ = "partner_balance"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "partner_id", "slot"),
        program_fk("partner_id", "partner.id"),
    )

    program_id: Mapped[int] = mapped_column(BigInteger)
    partner_id: Mapped[int] = mapped_column(BigInteger)
    slot: Mapped[int] = mapped_column(SmallInteger)
    funding: Mapped[int] = mapped_column(BigInteger, server_default="0")
    payable: Mapped[int] = mapped_column(BigInteger, server_default="0")
    # how low this slot's funding may go on its own (NULL: the partner has no floor)
    floor: Mapped[int | None] = mapped_column(BigInteger)
    version: Mapped[int] = mapped_column(BigInteger, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PartnerRate(Base):
    """One effective-dated rate. Never edited: a later `effective_from` supersedes it."""

    __tablename__ = "partner_rate"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "id"),
        UniqueConstraint("program_id", "partner_id", "kind", "effective_from"),
        program_fk("partner_id", "partner.id"),
        CheckConstraint("kind IN ('earn', 'redeem', 'convert_out', 'convert_in')", name="kind_known"),
        CheckConstraint("rounding IN ('floor', 'half_up', 'ceil')", name="rounding_known"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    program_id: Mapped[int] = mapped_column(BigInteger)
    partner_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(Text)
    effective_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    price_per_point: Mapped[Decimal | None] = mapped_column(Numeric)
    partner_units_per_point: Mapped[Decimal | None] = mapped_column(Numeric)
    min_points: Mapped[int | None] = mapped_column(BigInteger)
    increment: Mapped[int | None] = mapped_column(BigInteger)
    rounding: Mapped[str] = mapped_column(Text, server_default="floor")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PartnerLine(Base):
    """What one entry means for one partner's settlement, written by ledger_post()
    with the entry: its section, points, and the price it carries (the rate it was
    priced at, or a funding's price). A statement claims it once (`statement_id`,
    set from NULL once and never again); settlement money is derived from these
    lines and the entries' postings, never stored per line."""

    __tablename__ = "partner_line"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "entry_id", "partner_id"),
        program_fk("entry_id", "journal_entry.id"),
        # Deferred: a close claims its lines before it writes the statement it derived.
        program_fk("statement_id", "partner_statement.id", deferrable=True, initially="DEFERRED"),
        Index("ix_partner_line_partner_id_recorded_at", "partner_id", "recorded_at", "entry_id"),
        Index(
            "ix_partner_line_unclaimed",
            "partner_id",
            "recorded_at",
            postgresql_where=text("statement_id IS NULL"),
        ),
        Index(None, "statement_id"),
    )

    # the entry's program, copied so every key of the line leads with it
    program_id: Mapped[int] = mapped_column(BigInteger)
    entry_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    # No foreign keys to partner or partner_rate, as for JournalEntry.program_id: each
    # would share-lock the partner's (or its rate's) row in every one of its entries.
    # ledger_post() writes them from the legs it posted; `verify` checks them.
    partner_id: Mapped[int] = mapped_column(BigInteger)
    section: Mapped[str] = mapped_column(Text)
    points: Mapped[int] = mapped_column(BigInteger)
    rate_id: Mapped[int | None] = mapped_column(BigInteger)
    price_per_point: Mapped[Decimal | None] = mapped_column(Numeric)
    price: Mapped[Decimal | None] = mapped_column(Numeric)
    undoes_entry_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    statement_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)


class PartnerRedemption(Base):
    """Points a member spent with a partner (or gave to a charity partner: a
    donation). Its id is the redemption entry's; a reversal is recorded once."""

    __tablename__ = "partner_redemption"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "id"),
        program_fk("id", "journal_entry.id"),
        program_fk("member_id", "member.id"),
        program_fk("reversal_entry_id", "journal_entry.id"),
        Index(None, "partner_id", "created_at"),
        Index(None, "member_id"),
        # a till's receipt is spent once, whatever Idempotency-Key a retry carries
        Index(
            "uq_partner_redemption_program_id_partner_id_reference",
            "program_id",
            "partner_id",
            "reference",
            unique=True,
            postgresql_where=text("NOT donation"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid)
    program_id: Mapped[int] = mapped_column(BigInteger)
    partner_id: Mapped[int] = mapped_column(BigInteger)  # no foreign key: see PartnerLine
    member_id: Mapped[int] = mapped_column(BigInteger)
    points: Mapped[int] = mapped_column(BigInteger)
    reference: Mapped[str | None] = mapped_column(Text)
    donation: Mapped[bool] = mapped_column(server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reversal_entry_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    reversed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Conversion(Base):
    """Points turned into a partner's units (out: held, then captured into the
    partner's payable on confirmation, or released) or a partner's units turned
    into points (in: credited at once, funded by the partner)."""

    __tablename__ = "conversion"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "id"),
        program_fk("id", "journal_entry.id"),
        program_fk("member_id", "member.id"),
        program_fk("close_entry_id", "journal_entry.id"),
        Index(None, "member_id", "created_at"),
        Index("ix_conversion_pending", "created_at", postgresql_where=text("status = 'pending'")),
        # a partner's transfer of units is credited once, whatever Idempotency-Key a retry carries
        Index(
            "uq_conversion_program_id_partner_id_reference",
            "program_id",
            "partner_id",
            "reference",
            unique=True,
            postgresql_where=text("direction = 'in'"),
        ),
        CheckConstraint("direction IN ('out', 'in')", name="direction_known"),
        CheckConstraint(
            "status IN ('pending', 'confirmed', 'rejected', 'failed', 'completed')", name="status_known"
        ),
        CheckConstraint("points > 0 AND partner_units > 0", name="amounts_positive"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid)
    program_id: Mapped[int] = mapped_column(BigInteger)
    partner_id: Mapped[int] = mapped_column(BigInteger)  # no foreign key: see PartnerLine
    member_id: Mapped[int] = mapped_column(BigInteger)
    direction: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    points: Mapped[int] = mapped_column(BigInteger)
    partner_units: Mapped[int] = mapped_column(BigInteger)
    rate_id: Mapped[int] = mapped_column(BigInteger)
    partner_member_id: Mapped[str | None] = mapped_column(Text)
    reference: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    close_entry_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)


class PartnerStatement(Base):
    """A closed settlement period: immutable (the database refuses changes). Its
    lines are the partner lines it claimed; `lines_digest` is SHA-256 over them, so
    `verify` can derive it again and prove nothing changed."""

    __tablename__ = "partner_statement"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "id"),
        UniqueConstraint("program_id", "partner_id", "period_end"),
        program_fk("partner_id", "partner.id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid)
    program_id: Mapped[int] = mapped_column(BigInteger)
    partner_id: Mapped[int] = mapped_column(BigInteger)
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    period_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sections: Mapped[dict[str, Any]] = mapped_column(JSONB)
    totals: Mapped[dict[str, Any]] = mapped_column(JSONB)
    lines_count: Mapped[int] = mapped_column(BigInteger)
    lines_digest: Mapped[str] = mapped_column(Text)
    chain_sequence: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PartnerPayment(Base):
    """A postpaid partner paid a statement: the points given out on credit that the
    statement billed no longer count against its credit limit. Once per statement;
    never changed."""

    __tablename__ = "partner_payment"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "statement_id"),
        program_fk("statement_id", "partner_statement.id"),
        program_fk("partner_id", "partner.id"),
    )

    program_id: Mapped[int] = mapped_column(BigInteger)
    statement_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    partner_id: Mapped[int] = mapped_column(BigInteger)
    points: Mapped[int] = mapped_column(BigInteger)
    reference: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
