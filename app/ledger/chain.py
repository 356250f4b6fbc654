"""The hash chain: each program's entries in a dense sequence (1, 2, 3, ...), each
with hash = SHA-256(the previous entry's hash || the entry's canonical form), the
first after 32 zero bytes. Anyone holding a hash can prove that nothing before it
was changed, removed or reordered since: `verify` recomputes every chain.

Off the hot path: earning and spending take no program-wide lock. The chainer runs
in the background (the worker, and `serve` unless LEDGER_SERVE_BACKGROUND=false),
a batch at a time per program. It takes entries in the order of the transaction
that wrote them (journal_entry.txid, then id) and only those written by
transactions older than every transaction still running, which can no longer be
joined by an entry ordered before them: the order is deterministic and the chain
never has to insert into its past. Any number of processes may run it: a program's
batch holds an advisory lock, and the chain's unique (program, sequence) is the
backstop.

The canonical form, in the spirit of RFC 8785: a JSON object with sorted keys, no
whitespace, integers as integers, strings as JSON escapes them (non-ASCII as is),
instants as RFC 3339 UTC with microseconds. Its keys: `id`, `kind`, `occurred_at`,
`recorded_at`, `idempotency_key`, `rules_version`, `reverses`, `source`, `reason`,
`order_id`, and `postings`: each posting, in the order written, as `account` (its
kind), `member` (the member's internal id, null for a system account) and `points`
(signed), and for a partner's account `partner` (the partner's internal id; the key
is absent on other postings). Internal ids only, never external ids or personal data, so erasing a
member's personal data never changes a hash.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from uuid_utils.compat import uuid7

from app.clock import Clock
from app.db import Connection, Database, stream
from app.ledger.entries import SILENT_KINDS
from app.ledger.repository import snapshot_txid
from app.metrics import CHAIN_LAG, OUTBOX_DEPTH

logger = logging.getLogger(__name__)

GENESIS = bytes(32)
BATCH = 500
# pg_try_advisory_xact_lock(int, int): "PC" (points chain), then the program id.
LOCK_SPACE = 0x5043

# what an entry's hash covers (its row and postings, as canonical() reads them) and
# its writing transaction: verify's column list (it recomputes every hash from them)
CANONICAL_COLUMNS = """e.id, e.txid, e.kind, e.occurred_at, e.recorded_at, e.idempotency_key, e.rules_version,
       e.reverses_entry_id, e.source_entry_id, e.reason, e.order_id,
       (SELECT json_agg(json_build_array(a.kind, p.member_id, p.amount, a.partner_id) ORDER BY p.id)
          FROM posting p JOIN account a ON a.program_id = p.program_id AND a.id = p.account_id
         WHERE p.program_id = e.program_id AND p.entry_id = e.id)::text AS postings"""


def _json(value: str) -> str:
    # a value as canonical() writes it: to_json() escapes text as Python's json
    # does with ensure_ascii=False (\" \\ \b \f \n \r \t, other control characters
    # as \u00xx, everything else as is); NULL as null
    return f"coalesce(to_json({value})::text, 'null')"


# The canonical form written by PostgreSQL, byte for byte what canonical() writes
# (keys in sorted order, no whitespace): the chainer reads it ready to hash, and
# `verify` recomputes it in Python from the columns, independently.
# tests/eventlog/test_chain.py holds the two to each other, awkward text included.
CANONICAL_SQL = f"""'{{"id":"' || e.id::text
       || '","idempotency_key":' || {_json("e.idempotency_key")}
       || ',"kind":' || {_json("e.kind")}
       || ',"occurred_at":"' || ledger_rfc3339(e.occurred_at)
       || '","order_id":' || {_json("e.order_id")}
       || ',"postings":[' || coalesce(t.postings, '') || ']'
       || ',"reason":' || {_json("e.reason")}
       || ',"recorded_at":"' || ledger_rfc3339(e.recorded_at)
       || '","reverses":' || coalesce('"' || e.reverses_entry_id::text || '"', 'null')
       || ',"rules_version":' || coalesce(e.rules_version::text, 'null')
       || ',"source":' || coalesce('"' || e.source_entry_id::text || '"', 'null')
       || '}}'"""

# An entry's postings in the order written, each {account, member, partner (a
# partner's account only), points}, and the members it concerns (ascending, each
# once: the points.* event's `members`, as an array literal), in one pass.
POSTINGS_SQL = """(SELECT string_agg('{"account":' || to_json(a.kind)::text
                          || ',"member":' || coalesce(p.member_id::text, 'null')
                          || coalesce(',"partner":' || a.partner_id::text, '')
                          || ',"points":' || p.amount::text || '}', ',' ORDER BY p.id) AS postings,
               coalesce((array_agg(DISTINCT p.member_id ORDER BY p.member_id)
                         FILTER (WHERE p.member_id IS NOT NULL))::text, '{}') AS members
          FROM posting p JOIN account a ON a.program_id = p.program_id AND a.id = p.account_id
         WHERE p.program_id = e.program_id AND p.entry_id = e.id)"""

# $5: the oldest transaction still running; older ones are final
NEXT_ENTRIES = f"""
SELECT e.id, e.txid, e.kind, e.occurred_at, e.recorded_at, {CANONICAL_SQL} AS canonical, t.members
  FROM journal_entry e
 CROSS JOIN LATERAL {POSTINGS_SQL} t
 WHERE e.program_id = $1
   AND (e.txid, e.id) > ($2, $3)
   AND e.txid < $5
 ORDER BY e.txid, e.id
 LIMIT $4
"""

# events written by other transactions (the outbox), not yet in the sequence
NEXT_EVENTS = """
SELECT position, txid FROM event_log
 WHERE program_id = $1 AND sequence IS NULL AND txid < $2
 ORDER BY txid, position
 LIMIT $3
"""

HEAD = """
SELECT sequence, hash, last_txid, last_entry_id, event_sequence FROM chain_head WHERE program_id = $1
"""

APPEND = """
INSERT INTO entry_chain (entry_id, program_id, sequence, hash, chained_at)
SELECT x.entry_id, $1, x.sequence, x.hash, $5
  FROM unnest($2::uuid[], $3::bigint[], $4::bytea[]) AS x(entry_id, sequence, hash)
"""

# each chained entry is a points.<kind> event (but those of SILENT_KINDS: see
# chain_batch()); its data is the entry, rendered when read. Every column comes
# from what the chainer read (NEXT_ENTRIES): no second look at the entry or its
# postings. $5: each event's members as an array literal ('{3,7}').
ENTRY_EVENTS = """
INSERT INTO event_log (id, program_id, type, sequence, occurred_at, created_at, entry_id, members)
SELECT x.id, $1, 'points.' || x.kind, x.sequence, x.occurred_at, x.created_at, x.entry_id, x.members::bigint[]
  FROM unnest($2::uuid[], $3::uuid[], $4::bigint[], $5::text[], $6::text[],
              $7::timestamptz[], $8::timestamptz[])
       AS x(id, entry_id, sequence, members, kind, occurred_at, created_at)
"""

SEQUENCE_EVENTS = """
UPDATE event_log l SET sequence = x.sequence
  FROM unnest($2::bigint[], $3::bigint[]) AS x(position, sequence)
 WHERE l.program_id = $1 AND l.position = x.position
"""

MOVE_HEAD = """
INSERT INTO chain_head (program_id, sequence, hash, last_txid, last_entry_id, event_sequence, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (program_id) DO UPDATE
   SET sequence = excluded.sequence, hash = excluded.hash, last_txid = excluded.last_txid,
       last_entry_id = excluded.last_entry_id, event_sequence = excluded.event_sequence,
       updated_at = excluded.updated_at
"""

# at commit: the webhook dispatchers wake up (payload: the program id)
NOTIFY = "SELECT pg_notify('ledger_events', $1)"
CHANNEL = "ledger_events"

UNCHAINED = """
SELECT count(*) AS waiting, min(e.recorded_at) AS oldest FROM journal_entry e
 WHERE e.program_id = $1 AND (e.txid, e.id) > ($2, $3)
"""

UNSEQUENCED = "SELECT count(*) FROM event_log WHERE sequence IS NULL"

# Both queries below compare entries with each program's head, which they read in
# the same statement: the planner cannot tell how few entries lie past it and
# guesses a third of the journal, so a plain EXISTS or min() over that range read
# the whole journal every round, at a cost growing with the ledger. Walking the
# (program_id, txid, id) index in order, with a LIMIT, is what it plans instead: a
# few index pages, whatever the journal's size.

# programs with something for the chainer (entries past their head, or events
# without a sequence), in one round trip whatever the number of programs
WAITING = """
SELECT p.id FROM program p LEFT JOIN chain_head h ON h.program_id = p.id
 WHERE EXISTS (SELECT FROM (SELECT e.id FROM journal_entry e
                             WHERE e.program_id = p.id
                               AND (e.txid, e.id) > (coalesce(h.last_txid, -1), coalesce(h.last_entry_id, $1))
                             ORDER BY e.txid, e.id LIMIT 1) next)
    OR EXISTS (SELECT 1 FROM event_log l WHERE l.program_id = p.id AND l.sequence IS NULL)
 ORDER BY p.id
"""

# the oldest committed entry not yet chained, over every program: the oldest of
# the next 1,000 of each (the next ones to chain are the oldest but for entries of
# transactions that took their id early and wrote late; past 1,000 waiting, the
# chain lags far more than this metric needs to tell)
OLDEST_WAITING = """
SELECT min(o.oldest) FROM program p LEFT JOIN chain_head h ON h.program_id = p.id
 CROSS JOIN LATERAL (
       SELECT min(w.recorded_at) AS oldest
         FROM (SELECT e.recorded_at FROM journal_entry e
                WHERE e.program_id = p.id
                  AND (e.txid, e.id) > (coalesce(h.last_txid, -1), coalesce(h.last_entry_id, $1))
                ORDER BY e.txid, e.id LIMIT 1000) w) o
"""


def _instant(value: datetime) -> str:
    # RFC 3339 UTC with microseconds ("2026-11-30T02:55:21.085272Z"): what
    # strftime("%Y-%m-%dT%H:%M:%S.%fZ") writes for the years instants may hold
    # (app/fields.py: 1900 to 9000), and cheaper
    return value.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


# the entry's columns its canonical form covers (beside its postings)
ENTRY_FIELDS = (
    "id",
    "kind",
    "occurred_at",
    "recorded_at",
    "idempotency_key",
    "rules_version",
    "reverses_entry_id",
    "source_entry_id",
    "reason",
    "order_id",
)


def canonical(entry: Mapping[str, Any] | asyncpg.Record) -> bytes:
    """An entry's canonical form (see the module's docstring), from its columns and
    postings (CANONICAL_COLUMNS: verify's replay)."""
    postings = json.loads(entry["postings"]) if isinstance(entry["postings"], str) else entry["postings"]
    postings = postings or []  # none at all (json_agg of no rows is NULL): tampered with, or broken
    document = {
        "id": str(entry["id"]),
        "kind": entry["kind"],
        "occurred_at": _instant(entry["occurred_at"]),
        "recorded_at": _instant(entry["recorded_at"]),
        "idempotency_key": entry["idempotency_key"],
        "rules_version": entry["rules_version"],
        "reverses": None if entry["reverses_entry_id"] is None else str(entry["reverses_entry_id"]),
        "source": None if entry["source_entry_id"] is None else str(entry["source_entry_id"]),
        "reason": entry["reason"],
        "order_id": entry["order_id"],
        "postings": [_posting(*posting) for posting in postings],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _posting(kind: str, member: int | None, points: int, partner: int | None = None) -> dict[str, Any]:
    # A partner's account is named by the partner's internal id too; other postings
    # have no `partner` key, so their hashes are what they were before partners.
    posting: dict[str, Any] = {"account": kind, "member": member, "points": points}
    if partner is not None:
        posting["partner"] = partner
    return posting


def next_hash(previous: bytes, form: bytes) -> bytes:
    """An entry's hash: SHA-256 of the previous hash and its canonical form."""
    return hashlib.sha256(previous + form).digest()


def link(previous: bytes, entry: Mapping[str, Any] | asyncpg.Record) -> bytes:
    """The entry's hash, its canonical form written from its columns (verify's way)."""
    return next_hash(previous, canonical(entry))


@dataclass(frozen=True, slots=True)
class Head:
    sequence: int
    hash: bytes
    last_txid: int
    last_entry_id: uuid.UUID
    event_sequence: int = 0


START = Head(0, GENESIS, -1, uuid.UUID(int=0))


async def head(connection: Connection, program_id: int) -> Head:
    row = await connection.fetchrow(HEAD, program_id)
    if row is None:
        return START
    return Head(
        row["sequence"], bytes(row["hash"]), row["last_txid"], row["last_entry_id"], row["event_sequence"]
    )


@dataclass(slots=True)
class _EntryEvents:
    """The points.* events of a batch's entries, column by column (ENTRY_EVENTS)."""

    ids: list[uuid.UUID] = field(default_factory=list)
    entry_ids: list[uuid.UUID] = field(default_factory=list)
    sequences: list[int] = field(default_factory=list)
    members: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    occurred: list[datetime] = field(default_factory=list)
    created: list[datetime] = field(default_factory=list)

    def add(self, entry: asyncpg.Record, sequence: int) -> None:
        self.ids.append(uuid7())
        self.entry_ids.append(entry["id"])
        self.sequences.append(sequence)
        self.members.append(entry["members"])  # for ?member=
        self.kinds.append(entry["kind"])
        self.occurred.append(entry["occurred_at"])
        self.created.append(entry["recorded_at"])

    def columns(self) -> tuple[list[Any], ...]:
        return (
            self.ids,
            self.entry_ids,
            self.sequences,
            self.members,
            self.kinds,
            self.occurred,
            self.created,
        )


async def chain_batch(connection: Connection, program_id: int, now: datetime, batch: int = BATCH) -> int:
    """Chain the program's next final entries and put them, with the other events
    their transactions wrote, into the event log's sequence; one transaction. How
    many entries and events it took (0: nothing waiting, or another process is
    chaining this program right now)."""
    async with connection.transaction():
        if not await connection.fetchval("SELECT pg_try_advisory_xact_lock($1, $2)", LOCK_SPACE, program_id):
            return 0
        at = await head(connection, program_id)
        # final: written by transactions that have ended; another database's long
        # transaction (a report, a bulk load) cannot write here and does not hold it back
        xmin = await snapshot_txid(connection)
        entries = await connection.fetch(
            NEXT_ENTRIES, program_id, at.last_txid, at.last_entry_id, batch, xmin
        )
        events = await connection.fetch(NEXT_EVENTS, program_id, xmin, batch)
        if not entries and not events:
            return 0
        # One order for both: by writing transaction, a transaction's entries (by id)
        # before the other events it wrote (by position). A full batch may stop in
        # the middle of the other list: take nothing beyond the end of either.
        items = sorted(
            [((row["txid"], 0, row["id"].int), row) for row in entries]
            + [((row["txid"], 1, row["position"]), row) for row in events],
            key=lambda item: item[0],
        )
        ends = [
            (entries[-1]["txid"], 0, entries[-1]["id"].int) if len(entries) == batch else None,
            (events[-1]["txid"], 1, events[-1]["position"]) if len(events) == batch else None,
        ]
        if any(ends):
            bound = min(end for end in ends if end is not None)
            items = [item for item in items if item[0] <= bound]
        chain_ids: list[uuid.UUID] = []
        sequences: list[int] = []
        hashes: list[bytes] = []
        positions: list[int] = []
        position_sequences: list[int] = []
        previous, sequence, event_sequence = at.hash, at.sequence, at.event_sequence
        last_txid, last_entry_id = at.last_txid, at.last_entry_id
        events_of_entries = _EntryEvents()
        for (_, is_event, _), row in items:
            if is_event:
                event_sequence += 1
                positions.append(row["position"])
                position_sequences.append(event_sequence)
                continue
            sequence += 1
            previous = next_hash(previous, row["canonical"].encode())  # the form PostgreSQL wrote
            chain_ids.append(row["id"])
            sequences.append(sequence)
            hashes.append(previous)
            last_txid, last_entry_id = row["txid"], row["id"]
            # An imported lot is chained like every entry but is no event of its own:
            # its run's `import.completed` summarises it (the event log stays dense).
            if row["kind"] not in SILENT_KINDS:
                event_sequence += 1
                events_of_entries.add(row, event_sequence)
        if chain_ids:
            await connection.execute(APPEND, program_id, chain_ids, sequences, hashes, now)
        if events_of_entries.ids:
            await connection.execute(ENTRY_EVENTS, program_id, *events_of_entries.columns())
        if positions:
            await connection.execute(SEQUENCE_EVENTS, program_id, positions, position_sequences)
        await connection.execute(
            MOVE_HEAD, program_id, sequence, previous, last_txid, last_entry_id, event_sequence, now
        )
        await connection.execute(NOTIFY, str(program_id))
        return len(items)


async def chain_all(
    db: Database, now: datetime, programs: Iterable[int] | None = None, batch: int = BATCH
) -> int:
    """Chain every program's final entries and events; how many were taken."""
    chained = 0
    async with db.pool.acquire() as connection:
        for program_id in (
            programs
            if programs is not None
            else [r["id"] for r in await connection.fetch(WAITING, START.last_entry_id)]
        ):
            while (done := await chain_batch(connection, program_id, now, batch)) > 0:
                chained += done
                if done < batch:
                    break
    return chained


# every chained entry in chain order, with what its hash covers (LEFT JOIN: a
# chained entry that has gone is a break too)
WALK = f"""
SELECT c.program_id, c.sequence, c.hash AS stored_hash, c.entry_id AS chained_id,
       {CANONICAL_COLUMNS}
  FROM entry_chain c LEFT JOIN journal_entry e ON e.program_id = c.program_id AND e.id = c.entry_id
 ORDER BY c.program_id, c.sequence
"""

# entries the chain has passed (at or before its head, in chain order) without
# taking them: written behind the service's back, or their chain row removed
SKIPPED = """
SELECT e.program_id, e.id FROM journal_entry e
  JOIN chain_head h ON h.program_id = e.program_id AND (e.txid, e.id) <= (h.last_txid, h.last_entry_id)
  LEFT JOIN entry_chain c ON c.program_id = e.program_id AND c.entry_id = e.id
 WHERE c.entry_id IS NULL
"""

HEADS = "SELECT program_id, sequence, hash FROM chain_head"


async def breaks(connection: Connection) -> list[str]:
    """Recompute every program's chain from its entries; the first break of each
    (a changed entry or posting, a gap, a reordering, a missing or skipped entry, a
    head that disagrees). Call inside a transaction (it streams with a cursor)."""
    found: dict[int, str] = {}
    heads = {row["program_id"]: row for row in await connection.fetch(HEADS)}
    program = -1
    previous, expected, order = GENESIS, 1, (-1, uuid.UUID(int=0))
    last: dict[int, tuple[int, bytes]] = {}
    async for row in stream(connection, WALK, batch=1000):
        if row["program_id"] != program:
            program, previous, expected, order = row["program_id"], GENESIS, 1, (-1, uuid.UUID(int=0))
        if program in found:
            continue
        where = f"program {program} sequence {row['sequence']} entry {row['chained_id']}"
        if row["sequence"] != expected:
            found[program] = f"{where}: expected sequence {expected} (a gap: entries removed from the chain)"
            continue
        if row["id"] is None:
            found[program] = f"{where}: the chained entry is missing from the journal"
            continue
        if (row["txid"], row["id"]) <= order:
            found[program] = f"{where}: out of order (chained after a later entry)"
            continue
        computed = link(previous, row)
        if computed != bytes(row["stored_hash"]):
            found[program] = (
                f"{where}: hash does not match the entry and its postings (changed, or reordered)"
            )
            continue
        previous, expected, order = computed, expected + 1, (row["txid"], row["id"])
        last[program] = (row["sequence"], computed)
    for program_id, head_row in heads.items():
        if program_id in found:
            continue
        sequence, hash_ = last.get(program_id, (0, GENESIS))
        if (head_row["sequence"], bytes(head_row["hash"])) != (sequence, hash_):
            found[program_id] = (
                f"program {program_id}: the head (sequence {head_row['sequence']}) disagrees with the chain "
                f"(last sequence {sequence})"
            )
    for row in await connection.fetch(SKIPPED):
        found.setdefault(
            row["program_id"],
            f"program {row['program_id']} entry {row['id']}: not in the chain, "
            "though the chain has passed it",
        )
    return [found[key] for key in sorted(found)]


@dataclass(frozen=True, slots=True)
class ChainState:
    sequence: int
    hash: str | None
    entries_unchained: int
    oldest_unchained_at: datetime | None


async def state(connection: Connection, program_id: int) -> ChainState:
    """The program's chain head and what is still waiting for the chainer."""
    at = await head(connection, program_id)
    row = await connection.fetchrow(UNCHAINED, program_id, at.last_txid, at.last_entry_id)
    assert row is not None
    return ChainState(at.sequence, at.hash.hex() if at.sequence else None, int(row["waiting"]), row["oldest"])


async def run(
    db: Database, clock: Clock, stop: asyncio.Event, every: float = 0.5, batch: int = BATCH
) -> None:
    """Chain every `every` seconds until `stop`; report the chain's lag (the age of
    the oldest entry still waiting) as a metric. A failed round (the database away)
    is logged and the next one tries again."""
    while not stop.is_set():
        try:
            await chain_all(db, clock.now(), batch=batch)
            async with db.pool.acquire() as connection:
                oldest = await connection.fetchval(OLDEST_WAITING, START.last_entry_id)
                depth = int(await connection.fetchval(UNSEQUENCED))
            CHAIN_LAG.set(0.0 if oldest is None else max(0.0, (clock.now() - oldest).total_seconds()))
            OUTBOX_DEPTH.set(depth)
        except Exception:
            logger.warning("chaining failed; trying again", exc_info=True)
        try:
            await asyncio.wait_for(stop.wait(), timeout=every)
        except TimeoutError:
            pass
