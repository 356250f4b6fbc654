"""The ledger's tables. What models can't say lives in app/sql/: the posting
function, the append-only triggers and the deferred balance check."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, program_fk
from app.ledger.entries import ENTRY_KINDS, MEMBER_ACCOUNT_KINDS, PARTNER_ACCOUNT_KINDS, sql_in


class Account(Base):
    """A member's available/pending/held points, or a program's system account."""

    __tablename__ = "account"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "id"),
        UniqueConstraint("program_id", "member_id", "kind"),
        # a program's system accounts, and each partner's two (partner_id set)
        Index(
            "uq_account_program_id_kind_partner_id_system",
            "program_id",
            "kind",
            "partner_id",
            unique=True,
            postgresql_where=text("member_id IS NULL"),
            postgresql_nulls_not_distinct=True,
        ),
        CheckConstraint(
            f"(member_id IS NOT NULL) = (kind IN ({sql_in(MEMBER_ACCOUNT_KINDS)}))",
            name="member_kinds",
        ),
        CheckConstraint(
            f"(partner_id IS NOT NULL) = (kind IN ({sql_in(PARTNER_ACCOUNT_KINDS)}))",
            name="partner_kinds",
        ),
        program_fk("member_id", "member.id"),
        program_fk("partner_id", "partner.id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    program_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("program.id"))
    member_id: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(Text)
    partner_id: Mapped[int | None] = mapped_column(BigInteger)


class MemberBalance(Base):
    """Cached balances of a member's four accounts (available, pending, held, debt),
    updated in the same statement as every posting, with a version."""

    __tablename__ = "member_balance"
    __table_args__ = (
        CheckConstraint("available >= 0", name="available_not_negative"),
        CheckConstraint("pending >= 0", name="pending_not_negative"),
        CheckConstraint("held >= 0", name="held_not_negative"),
        CheckConstraint("debt <= 0", name="debt_not_positive"),
        PrimaryKeyConstraint("program_id", "member_id"),
        program_fk("member_id", "member.id"),
    )

    program_id: Mapped[int] = mapped_column(BigInteger)
    member_id: Mapped[int] = mapped_column(BigInteger)
    available: Mapped[int] = mapped_column(BigInteger, server_default="0")
    pending: Mapped[int] = mapped_column(BigInteger, server_default="0")
    held: Mapped[int] = mapped_column(BigInteger, server_default="0")
    debt: Mapped[int] = mapped_column(BigInteger, server_default="0")
    version: Mapped[int] = mapped_column(BigInteger, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class JournalEntry(Base):
    """One business event. Never updated or deleted (the database refuses)."""

    __tablename__ = "journal_entry"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "id"),
        UniqueConstraint("program_id", "idempotency_key"),
        Index("ix_journal_entry_program_id_txid_id", "program_id", "txid", "id"),
        Index(
            "uq_journal_entry_program_id_reverses_entry_id",
            "program_id",
            "reverses_entry_id",
            unique=True,
            postgresql_where=text("reverses_entry_id IS NOT NULL"),
        ),
        CheckConstraint(f"kind IN ({sql_in(ENTRY_KINDS)})", name="kind_known"),
        program_fk("reverses_entry_id", "journal_entry.id"),
        program_fk("source_entry_id", "journal_entry.id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid)
    # No foreign key to program or api_key on purpose: a foreign key check takes a
    # KEY SHARE lock on the referenced row, and every earn of a program (and of a
    # checkout's one API key) would share that row lock, which is the hot-row
    # contention the ledger avoids. Neither table allows deletes; `verify` checks.
    program_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    idempotency_key: Mapped[str] = mapped_column(Text)
    request_fingerprint: Mapped[str] = mapped_column(Text)
    reverses_entry_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    actor_key_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    reason: Mapped[str | None] = mapped_column(Text)
    order_id: Mapped[str | None] = mapped_column(Text)
    rules_version: Mapped[int | None] = mapped_column(Integer)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    pending_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, server_default="{}")
    # How the rules computed the points (orders, events, refunds): a list of
    # {rule, points, detail} whose points add up to the entry's.
    explanation: Mapped[list[Any] | None] = mapped_column(JSONB)
    # A capture or release: the hold entry it closes (its lots get points back). A
    # refund: the entry that put the order's points in lots (taken back first).
    source_entry_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # The writing transaction's id (pg_current_xact_id()). The chainer orders entries
    # by it and takes only those of transactions that can no longer commit, so the
    # chain never needs to insert an entry before one it has already chained.
    txid: Mapped[int] = mapped_column(BigInteger, server_default=text("(pg_current_xact_id())::text::bigint"))


class EntryChain(Base):
    """Each entry's place in its program's hash chain: a dense `sequence` from 1 and
    `hash` = SHA-256(previous hash || the entry's canonical form) (app/ledger/chain.py).
    Written by the chainer after the entry committed, never changed.

    No foreign key to journal_entry: the chainer writes a row for an entry it has
    just read in the same transaction, the journal refuses UPDATE and DELETE
    (app/sql/triggers/), and `verify` names a chained entry missing from the journal.
    The key's check locked each entry's row again, a large part of the database's
    share of chaining (docs/performance.md, "Events out"). The event log holds
    neither this key nor one to program, for the same reasons (app/eventlog/models.py)."""

    __tablename__ = "entry_chain"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "entry_id"),
        UniqueConstraint("program_id", "sequence"),
    )

    entry_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    program_id: Mapped[int] = mapped_column(BigInteger)
    sequence: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[bytes] = mapped_column(LargeBinary)
    chained_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ChainHead(Base):
    """Where each program's chain ends: its last sequence and hash, and the last
    entry it took, in (txid, id) order; the chainer starts after it."""

    __tablename__ = "chain_head"

    program_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[bytes] = mapped_column(LargeBinary)
    last_txid: Mapped[int] = mapped_column(BigInteger)
    last_entry_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    # the program's event log: its last sequence (entries and other events together)
    event_sequence: Mapped[int] = mapped_column(BigInteger, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Posting(Base):
    """One signed movement of points on one account. Never updated or deleted."""

    __tablename__ = "posting"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "id"),
        program_fk("entry_id", "journal_entry.id"),
        # An entry's postings, looked up with its program (the balanced-entry check
        # at commit runs three times an award): leading with program_id, so the
        # planner never ANDs in a scan of the program's whole primary key.
        Index(None, "program_id", "entry_id"),
        # The reports' reads of a period (what the daily rollups do not cover yet):
        # a day of the program's postings, not a pass over all of them.
        Index(None, "program_id", "recorded_at"),
        # A member's statement, and their balance as of an instant, read this index
        # alone (an index-only scan of the member's postings, contiguous however
        # large the ledger grows); only the statement's entries are fetched beside it.
        # program_id is included because every read names it: without it each
        # posting's heap page was read to check it (revision 20261129_0022).
        Index(
            "ix_posting_member_id_id",
            "member_id",
            "id",
            postgresql_include=[
                "program_id",
                "entry_id",
                "account_id",
                "amount",
                "available_after",
                "pending_after",
                "held_after",
                "recorded_at",
            ],
            postgresql_where=text("member_id IS NOT NULL"),
        ),
        CheckConstraint("amount <> 0", name="amount_not_zero"),
        CheckConstraint(
            "(member_id IS NULL) = (available_after IS NULL)"
            " AND (member_id IS NULL) = (pending_after IS NULL)"
            " AND (member_id IS NULL) = (held_after IS NULL)",
            name="member_balances_after",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    # the entry's program, copied so every key of the posting leads with it
    program_id: Mapped[int] = mapped_column(BigInteger)
    entry_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    # No foreign key to account: see JournalEntry.program_id (the issuance
    # account row would be share-locked by every earn). The posting function
    # only ever writes account ids it has just looked up; accounts are never deleted.
    account_id: Mapped[int] = mapped_column(BigInteger)
    # The member owning the account, copied so a statement is one index range scan.
    member_id: Mapped[int | None] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    # The member's available, pending and held balances right after this entry:
    # statements and balance-as-of read them instead of summing history.
    available_after: Mapped[int | None] = mapped_column(BigInteger)
    pending_after: Mapped[int | None] = mapped_column(BigInteger)
    held_after: Mapped[int | None] = mapped_column(BigInteger)
    # The entry's recorded_at, copied (`verify` checks it) so a balance as of an
    # instant is found among the member's postings alone: looking up each entry
    # instead cost a probe of the whole journal per posting (bench/growth.py).
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class IdempotencyRecord(Base):
    """The first response to an Idempotency-Key, kept byte for byte for replays."""

    __tablename__ = "idempotency_record"
    __table_args__ = (PrimaryKeyConstraint("program_id", "key"), program_fk("entry_id", "journal_entry.id"))

    program_id: Mapped[int] = mapped_column(BigInteger)
    key: Mapped[str] = mapped_column(Text)
    request_fingerprint: Mapped[str] = mapped_column(Text)
    status_code: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[bytes] = mapped_column(LargeBinary)
    entry_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PendingCredit(Base):
    """Points an entry put in a member's pending account, until `pending_until`.

    A projection of the ledger kept beside it: the entry that credited the points,
    what is still pending of them (refunds take from it first), and the activation
    entry that moved the rest to available. `verify` checks that each member's
    remaining credits add up to their pending balance."""

    __tablename__ = "pending_credit"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "id"),
        UniqueConstraint("program_id", "entry_id", "member_id"),
        program_fk("member_id", "member.id"),
        program_fk("entry_id", "journal_entry.id"),
        program_fk("activation_entry_id", "journal_entry.id"),
        Index(
            "ix_pending_credit_due",
            "pending_until",
            "id",
            postgresql_where=text("remaining > 0"),
        ),
        CheckConstraint("points > 0", name="points_positive"),
        CheckConstraint("remaining >= 0 AND remaining <= points", name="remaining_within_points"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    program_id: Mapped[int] = mapped_column(BigInteger)
    member_id: Mapped[int] = mapped_column(BigInteger)
    entry_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    points: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    pending_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    activation_entry_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)


class PointLot(Base):
    """What is left of one credit of a member's available points, and when it expires.

    A projection of the ledger kept by ledger_post() under the member's lock (see
    app/sql/functions/ledger_apply_lots.sql): a member's lots add up to
    their available points; debits take from the oldest-expiring first. `verify`
    replays the ledger and checks the lots agree."""

    __tablename__ = "point_lot"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "id"),
        program_fk("member_id", "member.id"),
        program_fk("entry_id", "journal_entry.id"),
        Index(
            "ix_point_lot_member_fifo",
            "member_id",
            "expires_at",
            "id",
            # the member view's upcoming expiries read the index alone
            postgresql_include=["remaining"],
            postgresql_where=text("remaining > 0"),
        ),
        # The lots of a program that are due, by date: `expire` reads those past its
        # instant, `notify-expiring` those within its warning, neither every lot.
        Index(
            "ix_point_lot_program_due",
            "program_id",
            "expires_at",
            postgresql_where=text("remaining > 0 AND expires_at IS NOT NULL"),
        ),
        CheckConstraint("points > 0", name="points_positive"),
        CheckConstraint("remaining >= 0 AND remaining <= points", name="remaining_within_points"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    program_id: Mapped[int] = mapped_column(BigInteger)
    member_id: Mapped[int] = mapped_column(BigInteger)
    entry_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    points: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LotUse(Base):
    """Points an entry took from a lot and has not given back: a release or a
    reversal returns them to the same lot, with its own expiry."""

    __tablename__ = "lot_use"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "entry_id", "lot_id"),
        program_fk("entry_id", "journal_entry.id"),
        program_fk("lot_id", "point_lot.id"),
        Index(None, "lot_id"),
        CheckConstraint("points >= 0", name="points_not_negative"),
    )

    program_id: Mapped[int] = mapped_column(BigInteger)
    entry_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    lot_id: Mapped[int] = mapped_column(BigInteger)
    points: Mapped[int] = mapped_column(BigInteger)


class ExpiryNotice(Base):
    """A `points.expiring_soon` already emitted: once per member, expiry date and
    threshold (days before), whatever the job's reruns."""

    __tablename__ = "expiry_notice"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "member_id", "expires_at", "days_before"),
        program_fk("member_id", "member.id"),
    )

    program_id: Mapped[int] = mapped_column(BigInteger)
    member_id: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    days_before: Mapped[int] = mapped_column(Integer)
    event_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class JobWatermark(Base):
    """What the last complete run of a job in a program settled, so that the next
    run reads only the members that may have become due since (app/ledger/jobs.py
    says what each job keeps and why it is enough)."""

    __tablename__ = "job_watermark"

    program_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("program.id"), primary_key=True)
    job: Mapped[str] = mapped_column(Text, primary_key=True)
    # The rules version the run judged by, the instant it ran as of, and its clock.
    rules_version: Mapped[int] = mapped_column(Integer)
    as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ran_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # When the run began, the id below which every transaction of the database had
    # ended: one that commits later has an id at least this (journal_entry.txid,
    # member_tier.txid).
    txid: Mapped[int] = mapped_column(BigInteger)
    # `expire` under an inactivity policy: every member whose last activity is at or
    # before this had lost their points when the run looked at them.
    inactive_through: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LimitUsage(Base):
    """What a subject (an API key, a member) has used of one of the rules' daily
    `limits` on one local day. Updated in the transaction of the entry it counts,
    with a conditional upsert (`used + n <= limit`), so concurrent requests never
    pass a limit together (app/ledger/limits.py). Only programs whose rules set a
    limit ever write here."""

    __tablename__ = "limit_usage"
    __table_args__ = (
        PrimaryKeyConstraint("program_id", "limit_name", "subject", "day"),
        CheckConstraint("used >= 0", name="used_not_negative"),
    )

    program_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("program.id"))
    # one of Limits' daily limits, e.g. redeem_points_per_member_per_day
    limit_name: Mapped[str] = mapped_column(Text)
    # "member:<member id>" or "key:<api key id>" ("key:bootstrap" for the bootstrap key)
    subject: Mapped[str] = mapped_column(Text)
    day: Mapped[date] = mapped_column(Date)
    used: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
