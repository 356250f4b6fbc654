"""`points-ledger verify`: proves the ledger is sound, in one consistent snapshot."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from app.db import Connection
from app.ledger import chain, lots
from app.ledger.entries import SILENT_KINDS, sql_in

SHOW = 20  # mismatches printed per check; all are counted


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    sql: str


CHECKS = (
    Check(
        "every entry has two or more postings summing to zero, each recorded when the entry was",
        """
        SELECT e.id::text, count(p.id) AS postings, coalesce(sum(p.amount), 0) AS total,
               count(*) FILTER (WHERE p.recorded_at <> e.recorded_at) AS recorded_otherwise
          FROM journal_entry e LEFT JOIN posting p ON p.program_id = e.program_id AND p.entry_id = e.id
         GROUP BY e.program_id, e.id
        HAVING count(p.id) < 2 OR coalesce(sum(p.amount), 0) <> 0
            OR count(*) FILTER (WHERE p.recorded_at <> e.recorded_at) > 0
        """,
    ),
    Check(
        "every posting is on an existing account of its entry's program, and member postings name its member",
        """
        -- a posting's program is its entry's (its foreign key says so): an account of
        -- another program is not found here
        SELECT p.id::text, p.account_id, p.member_id, a.member_id AS account_member
          FROM posting p LEFT JOIN account a ON a.program_id = p.program_id AND a.id = p.account_id
         WHERE a.id IS NULL OR p.member_id IS DISTINCT FROM a.member_id
        """,
    ),
    Check(
        "every entry belongs to an existing program",
        """
        SELECT e.id::text, e.program_id
          FROM journal_entry e
          LEFT JOIN program g ON g.id = e.program_id
         WHERE g.id IS NULL
        """,
    ),
    Check(
        "every cached member balance equals the sum of its postings",
        """
        WITH sums AS (
            SELECT a.program_id, a.member_id,
                   coalesce(sum(p.amount) FILTER (WHERE a.kind = 'available'), 0) AS available,
                   coalesce(sum(p.amount) FILTER (WHERE a.kind = 'pending'), 0) AS pending,
                   coalesce(sum(p.amount) FILTER (WHERE a.kind = 'held'), 0) AS held
              FROM account a LEFT JOIN posting p ON p.program_id = a.program_id AND p.account_id = a.id
             WHERE a.member_id IS NOT NULL
             GROUP BY a.program_id, a.member_id
        )
        SELECT m.external_id, b.available, s.available AS posted_available,
               b.pending, s.pending AS posted_pending, b.held, s.held AS posted_held
          FROM member m
          LEFT JOIN member_balance b ON b.program_id = m.program_id AND b.member_id = m.id
          LEFT JOIN sums s ON s.program_id = m.program_id AND s.member_id = m.id
         WHERE b.member_id IS NULL
            OR (b.available, b.pending, b.held)
               IS DISTINCT FROM (coalesce(s.available, 0), coalesce(s.pending, 0), coalesce(s.held, 0))
        """,
    ),
    Check(
        "no member balance is negative",
        """
        SELECT member_id::text, available, pending, held FROM member_balance
         WHERE available < 0 OR pending < 0 OR held < 0
        """,
    ),
    Check(
        "each member's latest posting records its current balances",
        """
        SELECT * FROM (
            SELECT DISTINCT ON (p.program_id, p.member_id) p.member_id::text, p.id AS posting_id,
                   p.available_after, p.pending_after, p.held_after, b.available, b.pending, b.held
              FROM posting p
              JOIN member_balance b ON b.program_id = p.program_id AND b.member_id = p.member_id
             WHERE p.member_id IS NOT NULL
             ORDER BY p.program_id, p.member_id, p.id DESC
        ) latest
         WHERE (available_after, pending_after, held_after) IS DISTINCT FROM (available, pending, held)
        """,
    ),
    Check(
        "each idempotency key has one entry, and its record matches that entry",
        """
        SELECT program_id::text, idempotency_key, count(*) AS entries
          FROM journal_entry GROUP BY program_id, idempotency_key HAVING count(*) > 1
        UNION ALL
        SELECT r.program_id::text, r.key, 0
          FROM idempotency_record r
          LEFT JOIN journal_entry e ON e.program_id = r.program_id AND e.id = r.entry_id
         WHERE r.entry_id IS NOT NULL
           AND (e.id IS NULL OR e.idempotency_key <> r.key
                OR e.request_fingerprint <> r.request_fingerprint)
        """,
    ),
    Check(
        "each reversal mirrors the entry it reverses",
        """
        WITH legs AS (
            SELECT e.program_id, coalesce(e.reverses_entry_id, e.id) AS original, p.account_id,
                   sum(p.amount) AS net
              FROM journal_entry e JOIN posting p ON p.program_id = e.program_id AND p.entry_id = e.id
             WHERE e.reverses_entry_id IS NOT NULL
                OR (e.program_id, e.id) IN (SELECT program_id, reverses_entry_id FROM journal_entry
                                             WHERE reverses_entry_id IS NOT NULL)
             GROUP BY 1, 2, 3
        )
        SELECT original::text, account_id, net FROM legs WHERE net <> 0
        """,
    ),
    Check(
        "each member's pending credits add up to their pending balance",
        """
        SELECT b.member_id::text, b.pending, coalesce(c.remaining, 0) AS pending_credits
          FROM member_balance b
          LEFT JOIN (SELECT program_id, member_id, sum(remaining) AS remaining
                       FROM pending_credit GROUP BY program_id, member_id) c
            ON c.program_id = b.program_id AND c.member_id = b.member_id
         WHERE b.pending <> coalesce(c.remaining, 0)
        """,
    ),
    Check(
        "each order's entry credits exactly the order's points, to its member",
        """
        SELECT o.program_id::text, o.order_id, o.points, sum(p.amount) FILTER (WHERE p.amount > 0) AS credited
          FROM paid_order o
          LEFT JOIN posting p ON p.program_id = o.program_id AND p.entry_id = o.entry_id
         GROUP BY o.program_id, o.id
        HAVING (o.entry_id IS NULL AND o.points <> 0)
            OR (o.entry_id IS NOT NULL AND (
                   coalesce(sum(p.amount) FILTER (WHERE p.amount > 0), 0) <> o.points
                OR bool_or(p.member_id IS NOT NULL AND p.member_id <> o.member_id)))
        """,
    ),
    Check(
        "each order's refunds add up to what it says was taken back, and each moved what it says",
        """
        SELECT o.program_id::text, o.order_id, o.points_taken_back, sum(f.points) AS refunded
          FROM paid_order o JOIN order_refund f ON f.program_id = o.program_id AND f.paid_order_id = o.id
         GROUP BY o.program_id, o.id
        HAVING sum(f.points) <> o.points_taken_back
        UNION ALL
        SELECT o.program_id::text, f.refund_id, f.from_pending + f.from_available + f.debt, moved.points
          FROM order_refund f
          JOIN paid_order o ON o.program_id = f.program_id AND o.id = f.paid_order_id
         CROSS JOIN LATERAL (
               SELECT coalesce(sum(p.amount), 0) AS points
                 FROM posting p WHERE p.program_id = f.program_id AND p.entry_id = f.entry_id AND p.amount > 0
               ) moved
         WHERE f.from_pending + f.from_available + f.debt <> moved.points
        """,
    ),
    Check(
        "each member's lots add up to their available points",
        """
        SELECT b.member_id::text, b.available, coalesce(l.remaining, 0) AS in_lots
          FROM member_balance b
          LEFT JOIN (SELECT program_id, member_id, sum(remaining) AS remaining
                       FROM point_lot GROUP BY program_id, member_id) l
            ON l.program_id = b.program_id AND l.member_id = b.member_id
         WHERE b.available <> coalesce(l.remaining, 0)
        """,
    ),
    Check(
        "what each lot lost is what entries took from it and kept",
        """
        SELECT l.id::text, l.points, l.remaining, coalesce(u.used, 0) AS used
          FROM point_lot l
          LEFT JOIN (SELECT program_id, lot_id, sum(points) AS used
                       FROM lot_use GROUP BY program_id, lot_id) u
            ON u.program_id = l.program_id AND u.lot_id = l.id
         WHERE l.points - l.remaining <> coalesce(u.used, 0)
        """,
    ),
    Check(
        "each active hold's (and pending conversion's) points are held, and each closed hold was "
        "closed by its entry",
        """
        SELECT b.member_id::text, b.held, coalesce(h.points, 0) AS in_active_holds, NULL::text AS hold
          FROM member_balance b
          LEFT JOIN (SELECT program_id, member_id, sum(points) AS points
                       FROM (SELECT program_id, member_id, points FROM point_hold WHERE status = 'active'
                             UNION ALL
                             -- a conversion to a partner's units holds its points until the
                             -- partner confirms or rejects it (app/partners)
                             SELECT program_id, member_id, points FROM conversion
                              WHERE direction = 'out' AND status = 'pending') held
                      GROUP BY program_id, member_id) h
            ON h.program_id = b.program_id AND h.member_id = b.member_id
         WHERE b.held <> coalesce(h.points, 0)
        UNION ALL
        SELECT h.member_id::text, h.points, h.captured_points, h.id::text
          FROM point_hold h
          LEFT JOIN journal_entry e ON e.program_id = h.program_id AND e.id = h.close_entry_id
         WHERE h.status <> 'active'
           AND (e.id IS NULL OR e.source_entry_id IS DISTINCT FROM h.id
                OR e.kind <> CASE h.status WHEN 'captured' THEN 'capture' ELSE 'release' END)
        """,
    ),
    Check(
        "each program's event log is dense (1, 2, 3, ...), ends at its head, and has one event per "
        "chained entry (imported lots: none) and none for an entry the journal lacks or a program "
        "that does not exist",
        f"""
        WITH logged AS (
            SELECT program_id, count(*) AS events, max(sequence) AS last
              FROM event_log WHERE sequence IS NOT NULL GROUP BY program_id
        )
        SELECT coalesce(l.program_id, h.program_id)::text AS program, l.events, l.last,
               h.event_sequence AS head, NULL::text AS entry_or_event
          FROM logged l FULL JOIN chain_head h ON h.program_id = l.program_id
         WHERE coalesce(l.events, 0) <> coalesce(l.last, 0)
            OR coalesce(l.last, 0) <> coalesce(h.event_sequence, 0)
        UNION ALL
        SELECT c.program_id::text, NULL, NULL, NULL, c.entry_id::text
          FROM entry_chain c
          JOIN journal_entry e ON e.program_id = c.program_id AND e.id = c.entry_id
          LEFT JOIN event_log l ON l.program_id = c.program_id AND l.entry_id = c.entry_id
         WHERE (l.id IS NULL) <> (e.kind IN ({sql_in(tuple(sorted(SILENT_KINDS)))}))
        UNION ALL
        SELECT l.program_id::text, NULL, NULL, NULL, l.entry_id::text
          FROM event_log l
          LEFT JOIN journal_entry e ON e.program_id = l.program_id AND e.id = l.entry_id
         WHERE l.entry_id IS NOT NULL AND e.id IS NULL
        UNION ALL
        SELECT l.program_id::text, NULL, NULL, NULL, l.id::text
          FROM event_log l
         WHERE NOT EXISTS (SELECT FROM program p WHERE p.id = l.program_id)
        """,
    ),
    Check(
        "every campaign budget has used what its orders took less what their refunds gave back",
        """
        WITH taken AS (
            SELECT o.program_id, c->>'budget' AS key, sum((c->>'points')::bigint) AS points
              FROM paid_order o CROSS JOIN LATERAL jsonb_array_elements(o.budget_charges) c
             WHERE o.budget_charges IS NOT NULL GROUP BY 1, 2
        ), given_back AS (
            SELECT f.program_id, r->>'budget' AS key, sum((r->>'points')::bigint) AS points
              FROM order_refund f CROSS JOIN LATERAL jsonb_array_elements(f.budget_returns) r
             WHERE f.budget_returns IS NOT NULL GROUP BY 1, 2
        ), left_over AS (
            SELECT s.program_id, s.budget_id, sum(s.remaining) AS remaining, count(*) AS slices
              FROM rules_budget_slice s GROUP BY 1, 2
        )
        SELECT b.program_id::text, b.key, b.points - l.remaining AS used,
               coalesce(t.points, 0) - coalesce(g.points, 0) AS taken_less_given_back, l.slices
          FROM rules_budget b
          LEFT JOIN left_over l ON l.program_id = b.program_id AND l.budget_id = b.id
          LEFT JOIN taken t ON t.program_id = b.program_id AND t.key = b.key
          LEFT JOIN given_back g ON g.program_id = b.program_id AND g.key = b.key
         WHERE l.slices IS DISTINCT FROM b.slices
            OR b.points - l.remaining <> coalesce(t.points, 0) - coalesce(g.points, 0)
        UNION ALL
        SELECT t.program_id::text, t.key, NULL, t.points, NULL
          FROM taken t LEFT JOIN rules_budget b ON b.program_id = t.program_id AND b.key = t.key
         WHERE b.id IS NULL
        """,
    ),
    Check(
        "every program has exactly one active rules version, and entries name versions it has",
        """
        SELECT g.id::text, count(r.version) AS active_versions, NULL::integer AS unknown_version
          FROM program g LEFT JOIN rules_version r ON r.program_id = g.id AND r.active
         GROUP BY g.id HAVING count(r.version) <> 1
        UNION ALL
        SELECT e.id::text, NULL, e.rules_version
          FROM journal_entry e
          LEFT JOIN rules_version r ON r.program_id = e.program_id AND r.version = e.rules_version
         WHERE e.rules_version IS NOT NULL AND r.version IS NULL
        """,
    ),
)


@dataclass(slots=True)
class Outcome:
    name: str
    mismatches: int
    examples: list[str] = field(default_factory=list)


# a check a domain above the ledger adds (partners' settlement): its name, and a
# function that answers the mismatches it finds, read in verify's snapshot
ExtraCheck = tuple[str, Callable[[Connection], Awaitable[list[str]]]]


async def verify(connection: Connection, extra: Sequence[ExtraCheck] = ()) -> list[Outcome]:
    outcomes: list[Outcome] = []
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        for check in CHECKS:
            rows = await connection.fetch(check.sql)
            outcomes.append(
                Outcome(
                    check.name,
                    len(rows),
                    [", ".join(f"{k}={v}" for k, v in r.items()) for r in rows[:SHOW]],
                )
            )
        replay = await lots.disagreements(connection)
        outcomes.append(Outcome("the lots agree with a replay of the ledger", len(replay), replay[:SHOW]))
        breaks = await chain.breaks(connection)
        outcomes.append(
            Outcome(
                "each program's hash chain recomputes from its entries, dense and in order (first break)",
                len(breaks),
                breaks[:SHOW],
            )
        )
        for name, extra_check in extra:
            found = await extra_check(connection)
            outcomes.append(Outcome(name, len(found), found[:SHOW]))
    return outcomes


async def totals(connection: Connection) -> dict[str, int]:
    row = await connection.fetchrow(
        """
        SELECT (SELECT count(*) FROM program) AS programs,
               (SELECT count(*) FROM member) AS members,
               (SELECT count(*) FROM journal_entry) AS entries,
               (SELECT count(*) FROM posting) AS postings
        """
    )
    assert row is not None
    return dict(row.items())
