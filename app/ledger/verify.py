"""`points-ledger verify`: proves the ledger is sound, in one consistent snapshot."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.db import Connection

SHOW = 20  # mismatches printed per check; all are counted


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    sql: str


CHECKS = (
    Check(
        "every entry has two or more postings summing to zero",
        """
        SELECT e.id::text, count(p.id) AS postings, coalesce(sum(p.amount), 0) AS total
          FROM journal_entry e LEFT JOIN posting p ON p.entry_id = e.id
         GROUP BY e.id
        HAVING count(p.id) < 2 OR coalesce(sum(p.amount), 0) <> 0
        """,
    ),
    Check(
        "every posting is on an existing account, and member postings name its member",
        """
        SELECT p.id::text, p.account_id, p.member_id, a.member_id AS account_member
          FROM posting p LEFT JOIN account a ON a.id = p.account_id
         WHERE a.id IS NULL OR p.member_id IS DISTINCT FROM a.member_id
        """,
    ),
    Check(
        "every entry belongs to an existing program, as do its accounts",
        """
        SELECT e.id::text, e.program_id, a.program_id AS account_program
          FROM journal_entry e
          JOIN posting p ON p.entry_id = e.id
          JOIN account a ON a.id = p.account_id
          LEFT JOIN program g ON g.id = e.program_id
         WHERE g.id IS NULL OR a.program_id <> e.program_id
        """,
    ),
    Check(
        "every cached member balance equals the sum of its postings",
        """
        WITH sums AS (
            SELECT a.member_id,
                   coalesce(sum(p.amount) FILTER (WHERE a.kind = 'available'), 0) AS available,
                   coalesce(sum(p.amount) FILTER (WHERE a.kind = 'pending'), 0) AS pending,
                   coalesce(sum(p.amount) FILTER (WHERE a.kind = 'held'), 0) AS held
              FROM account a LEFT JOIN posting p ON p.account_id = a.id
             WHERE a.member_id IS NOT NULL
             GROUP BY a.member_id
        )
        SELECT m.external_id, b.available, s.available AS posted_available,
               b.pending, s.pending AS posted_pending, b.held, s.held AS posted_held
          FROM member m
          LEFT JOIN member_balance b ON b.member_id = m.id
          LEFT JOIN sums s ON s.member_id = m.id
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
            SELECT DISTINCT ON (p.member_id) p.member_id::text, p.id AS posting_id,
                   p.available_after, p.pending_after, p.held_after, b.available, b.pending, b.held
              FROM posting p JOIN member_balance b ON b.member_id = p.member_id
             WHERE p.member_id IS NOT NULL
             ORDER BY p.member_id, p.id DESC
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
          FROM idempotency_record r LEFT JOIN journal_entry e ON e.id = r.entry_id
         WHERE r.entry_id IS NOT NULL
           AND (e.id IS NULL OR e.program_id <> r.program_id OR e.idempotency_key <> r.key
                OR e.request_fingerprint <> r.request_fingerprint)
        """,
    ),
    Check(
        "each reversal mirrors the entry it reverses",
        """
        WITH legs AS (
            SELECT coalesce(e.reverses_entry_id, e.id) AS original, p.account_id,
                   sum(p.amount) AS net
              FROM journal_entry e JOIN posting p ON p.entry_id = e.id
             WHERE e.reverses_entry_id IS NOT NULL
                OR e.id IN (SELECT reverses_entry_id FROM journal_entry WHERE reverses_entry_id IS NOT NULL)
             GROUP BY 1, 2
        )
        SELECT original::text, account_id, net FROM legs WHERE net <> 0
        """,
    ),
)


@dataclass(slots=True)
class Outcome:
    name: str
    mismatches: int
    examples: list[str] = field(default_factory=list)


async def verify(connection: Connection) -> list[Outcome]:
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
