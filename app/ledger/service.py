"""The ledger's own operations: awards, redemptions, transfers and reversals
(each one entry through `posting.post`), and reading a member's statement and
balances."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import asyncpg

from app.approvals import service as approvals
from app.context import AppContext
from app.db import PRIMARY, Connection, ReadFrom
from app.errors import AppError, FieldError, ValidationFailed
from app.fields import Money
from app.idempotency import KeyedRequest, StoredResponse
from app.ledger import awards, chain, repository
from app.ledger import limits as limits_
from app.ledger.entries import LIFECYCLE_KINDS, ORDER_KINDS, Leg
from app.ledger.errors import (
    REDEEM_REFUSALS,
    CurrencyMismatch,
    EntryNotFound,
    EntryNotReversible,
    MemberNotFound,
)
from app.ledger.posting import post, replay_or_raise
from app.ledger.schemas import (
    AwardIn,
    BalanceOut,
    EntryView,
    LotView,
    MemberBalances,
    PostingOut,
    RedemptionIn,
    ReversalIn,
    StatementItem,
    StatementPage,
    TransferIn,
)
from app.principal import Principal
from app.rules import RulesDocument
from app.rules.lifecycle import redeem_refusal


async def award(context: AppContext, request: KeyedRequest, member: str, body: AwardIn) -> StoredResponse:
    now = context.clock.now()
    rules_version, rules = await awards.active_rules(context, request.principal.program_id)
    plan = awards.plan_award(rules_version, rules, member, body, now)
    if isinstance(plan, AppError):
        # a retry passed these checks at its time: it replays
        return await replay_or_raise(context, request, plan)
    limits = rules.limits
    if limits.on_awards:
        refusal = limits_.award_max_refusal(limits, body.points)
        if refusal is not None:
            return await replay_or_raise(context, request, refusal)
        if limits.award_approval_above is not None and body.points > limits.award_approval_above:
            return await approvals.request(context, request, member, body, now)
    return await limits_.post_within_limits(
        context,
        request,
        rules,
        limits_.award_charges(limits, request.principal.key_id, body.points),
        "award",
        plan.legs,
        now,
        reason=body.reason,
        expires_at=plan.expires_at,
        rules_version=plan.rules_version,
        pending_until=plan.pending_until,
        metadata=body.metadata,
        # one member's earn: with others at once when group commit is on
        grouped=True,
    )


def check_redeem_limits(rules: RulesDocument, points: int, order_total: Money | None) -> None:
    """The rules' `redeem` limits for a redemption or a hold of `points`."""
    if order_total is not None and rules.currency is not None and order_total.currency != rules.currency:
        raise CurrencyMismatch(
            f"order_total is in {order_total.currency}; this program redeems against {rules.currency}"
        )
    refusal = redeem_refusal(rules.redeem, points, None if order_total is None else order_total.amount)
    if refusal is not None:
        raise REDEEM_REFUSALS[refusal.code](
            refusal.message,
            errors=[FieldError(field=refusal.field, message=refusal.message, type=refusal.code)],
        )


async def redeem(
    context: AppContext, request: KeyedRequest, member: str, body: RedemptionIn
) -> StoredResponse:
    rules_version, rules = await awards.active_rules(context, request.principal.program_id)
    try:
        check_redeem_limits(rules, body.points, body.order_total)
    except AppError as error:  # a retry passed the limits of its time; they may have changed since
        return await replay_or_raise(context, request, error)
    return await limits_.post_within_limits(
        context,
        request,
        rules,
        limits_.redeem_charges(rules.limits, member, body.points),
        "redemption",
        [Leg(member, "available", -body.points), Leg(None, "redemption", body.points)],
        context.clock.now(),
        reason=body.reward,
        order_id=body.order_id,
        rules_version=rules_version,
        metadata=body.metadata,
    )


async def transfer(context: AppContext, request: KeyedRequest, body: TransferIn) -> StoredResponse:
    if body.from_member == body.to_member:
        raise ValidationFailed.on("body.to_member", "must differ from from_member")
    _, rules = await awards.active_rules(context, request.principal.program_id)
    return await limits_.post_within_limits(
        context,
        request,
        rules,
        limits_.transfer_charges(rules.limits, body.from_member, body.points),
        "transfer",
        [
            Leg(body.from_member, "available", -body.points),
            Leg(body.to_member, "available", body.points),
        ],
        context.clock.now(),
        reason=body.reason,
    )


async def reverse(
    context: AppContext, request: KeyedRequest, entry_id: uuid.UUID, body: ReversalIn
) -> StoredResponse:
    async with context.db.pool.acquire() as connection:
        rows = await repository.entries(connection, request.principal.program_id, [entry_id])
    if not rows:
        raise EntryNotFound(f"no entry {entry_id} in this program")
    if rows[0]["kind"] == "reversal":
        raise EntryNotReversible("a reversal cannot itself be reversed; post a new entry instead")
    if rows[0]["kind"] in ORDER_KINDS:
        raise EntryNotReversible(f"a {rows[0]['kind']} entry belongs to an order: refund the order instead")
    if any(row["partner_id"] is not None for row in rows):
        raise EntryNotReversible(
            "an entry with a partner is undone by the partner's own operations (a partner order's "
            "refund, a partner redemption's reversal), which keep its settlement in step"
        )
    if rows[0]["kind"] in LIFECYCLE_KINDS:
        raise EntryNotReversible(
            f"a {rows[0]['kind']} entry cannot be reversed: holds are undone by release, expired "
            "points are reinstated with a new award, and a kept tier keeps its term"
        )
    legs = [Leg(row["member"], row["account"], -row["amount"]) for row in rows]
    return await post(
        context,
        request,
        "reversal",
        legs,
        context.clock.now(),
        reverses=entry_id,
        reason=body.reason,
    )


async def entry(
    context: AppContext, principal: Principal, entry_id: uuid.UUID, read: ReadFrom = PRIMARY
) -> EntryView:
    """One entry as the ledger's POSTs answer it, with its place in the chain
    (GET /v1/entries/{id})."""

    async def work(connection: Connection) -> dict[uuid.UUID, EntryView]:
        return await entry_views(connection, principal.program_id, [entry_id])

    found = await context.db.read(work, read)
    if entry_id not in found:
        raise EntryNotFound(f"no entry {entry_id} in this program")
    return found[entry_id]


async def entry_views(
    connection: Connection, program_id: int, entry_ids: list[uuid.UUID]
) -> dict[uuid.UUID, EntryView]:
    """The program's entries among `entry_ids`, as GET /v1/entries/{id} shows them."""
    by_entry: dict[uuid.UUID, list[asyncpg.Record]] = {}
    for row in await repository.entries(connection, program_id, entry_ids):
        by_entry.setdefault(row["id"], []).append(row)
    return {entry_id: _entry_view(rows) for entry_id, rows in by_entry.items()}


def _entry_view(rows: list[asyncpg.Record]) -> EntryView:
    first = rows[0]
    balances = {
        row["member"]: MemberBalances(
            member=row["member"],
            available=row["available_after"],
            pending=row["pending_after"],
            held=row["held_after"],
        )
        for row in rows
        if row["member"] is not None
    }
    return EntryView(
        id=first["id"],
        kind=first["kind"],
        points=sum(row["amount"] for row in rows if row["amount"] > 0),
        occurred_at=first["occurred_at"],
        recorded_at=first["recorded_at"],
        reason=first["reason"],
        order_id=first["order_id"],
        reverses=first["reverses_entry_id"],
        rules_version=first["rules_version"],
        expires_at=first["expires_at"],
        pending_until=first["pending_until"],
        metadata=json.loads(first["metadata"]),
        postings=[
            PostingOut(
                member=row["member"], account=row["account"], points=row["amount"], partner=row["partner"]
            )
            for row in rows
        ],
        # by external id in byte order, as ledger_post() renders them
        balances=[balances[member] for member in sorted(balances, key=lambda name: name.encode())],
        sequence=first["sequence"],
        hash=None if first["hash"] is None else bytes(first["hash"]).hex(),
        canonical=None
        if first["sequence"] is None
        else chain.canonical(
            {
                **{key: first[key] for key in chain.ENTRY_FIELDS},
                "postings": [
                    (row["account"], row["member_id"], row["amount"], row["partner_id"]) for row in rows
                ],
            }
        ).decode(),
    )


async def internal_member_id(connection: Connection, program_id: int, member: str) -> int:
    """A member's internal id from its external id; 404 `member_not_found`."""
    found = await repository.member_id(connection, program_id, member)
    if found is None:
        raise MemberNotFound(f"no member {member} in this program")
    return found


async def member_id_or_none(connection: Connection, program_id: int, member: str) -> int | None:
    """A member's internal id from its external id; None if the program has none."""
    return await repository.member_id(connection, program_id, member)


async def statement(
    context: AppContext,
    principal: Principal,
    member: str,
    *,
    limit: int,
    cursor: str | None,
    read: ReadFrom = PRIMARY,
) -> StatementPage:
    async def work(connection: Connection) -> tuple[str, list[asyncpg.Record]]:
        member_id = await internal_member_id(connection, principal.program_id, member)
        list_id = f"statement:{member_id}"
        (before,) = [2**63 - 1] if cursor is None else context.cursors.read(list_id, cursor)
        # one entry more than the page: whether another page follows
        rows = await repository.statement_postings(
            connection, principal.program_id, member_id, before_posting_id=before, entries=limit + 1
        )
        return list_id, rows

    list_id, rows = await context.db.read(work, read)
    groups: list[list[asyncpg.Record]] = []
    for row in rows:
        if groups and groups[-1][0]["entry_id"] == row["entry_id"]:
            groups[-1].append(row)
        else:
            groups.append([row])
    more = len(groups) > limit
    groups = groups[:limit]
    items = [_statement_item(group) for group in groups]
    next_cursor = context.cursors.issue(list_id, groups[-1][-1]["posting_id"]) if more else None
    return StatementPage(items=items, next_cursor=next_cursor)


def _statement_item(postings: list[asyncpg.Record]) -> StatementItem:
    first = postings[0]
    change = {"available": 0, "pending": 0, "held": 0, "debt": 0}
    for posting in postings:
        change[posting["account"]] += posting["amount"]
    return StatementItem(
        id=first["entry_id"],
        kind=first["kind"],
        points=change["available"],
        pending_points=change["pending"],
        held_points=change["held"],
        debt_points=-change["debt"],
        balance_after=first["available_after"],
        pending_after=first["pending_after"],
        held_after=first["held_after"],
        occurred_at=first["occurred_at"],
        recorded_at=first["recorded_at"],
        reason=first["reason"],
        order_id=first["order_id"],
        reverses=first["reverses_entry_id"],
        rules_version=first["rules_version"],
        explanation=json.loads(first["explanation"]) if first["explanation"] is not None else None,
        sequence=first["sequence"],
        hash=None if first["hash"] is None else bytes(first["hash"]).hex(),
    )


async def balance(
    context: AppContext, principal: Principal, member: str, as_of: datetime | None, read: ReadFrom = PRIMARY
) -> BalanceOut:
    now = context.clock.now()
    if as_of is not None and as_of > now:
        raise ValidationFailed.on("query.as_of", "must not be in the future: the ledger knows only the past")

    async def work(connection: Connection) -> BalanceOut:
        if as_of is None:
            row = await repository.balance_now(connection, principal.program_id, member)
            if row is None:
                raise MemberNotFound(f"no member {member} in this program")
            return BalanceOut(
                member=member,
                as_of=now,
                available=row["available"],
                pending=row["pending"],
                held=row["held"],
            )
        member_id = await internal_member_id(connection, principal.program_id, member)
        past = await repository.balance_as_of(connection, principal.program_id, member_id, as_of)
        values = (
            (0, 0, 0)
            if past is None
            else (past["available_after"], past["pending_after"], past["held_after"])
        )
        return BalanceOut(member=member, as_of=as_of, available=values[0], pending=values[1], held=values[2])

    return await context.db.read(work, read)


# -- a member's whole record (export and erasure, app.privacy) ----------------------------------


async def member_entries_page(
    connection: Connection, program_id: int, member_id: int, *, before_posting_id: int, limit: int
) -> tuple[list[EntryView], int | None]:
    """Up to `limit` of a member's entries, newest first, each as GET /v1/entries/{id}
    shows it (every posting, the balances after it, its place in the chain), from
    before a posting id; and the posting id to read the next page from (None: that
    was the last). A page at a time, so no member's history is read whole at once."""
    rows = await repository.member_entry_ids(
        connection, program_id, member_id, before_posting_id=before_posting_id, limit=4 * limit + 1
    )
    groups: list[list[asyncpg.Record]] = []
    for row in rows:
        if groups and groups[-1][0]["entry_id"] == row["entry_id"]:
            groups[-1].append(row)
        else:
            groups.append([row])
    # the last group may be cut short by the LIMIT: it is read again on the next page
    more = len(groups) > limit or len(rows) == 4 * limit + 1
    page = groups[:limit] if len(groups) > limit else groups[:-1] if more else groups
    page = page or groups[:1]
    views = await entry_views(connection, program_id, [group[0]["entry_id"] for group in page])
    following = page[-1][-1]["posting_id"] if more and page else None
    return [views[group[0]["entry_id"]] for group in page], following


async def member_lots_page(
    connection: Connection, program_id: int, member_id: int, *, after_lot_id: int, limit: int
) -> list[LotView]:
    """Up to `limit` of the member's lots that still hold points, oldest first."""
    rows = await repository.member_lots(
        connection, program_id, member_id, after_lot_id=after_lot_id, limit=limit
    )
    return [
        LotView(
            id=row["id"],
            entry_id=row["entry_id"],
            points=row["points"],
            remaining=row["remaining"],
            expires_at=row["expires_at"],
        )
        for row in rows
    ]


async def redact_stored_responses(
    connection: Connection, program_id: int, member_id: int, *, external_id: str, pseudonym: str
) -> int:
    """Erasure: the first responses kept for the Idempotency-Keys of the member's
    entries (a retry replays them) name it by its pseudonym from now on. Inside the
    caller's transaction; how many were changed. Entries themselves are untouched:
    they name members by internal id only."""
    return await repository.redact_responses(
        connection, program_id, member_id, json.dumps(external_id), json.dumps(pseudonym)
    )
