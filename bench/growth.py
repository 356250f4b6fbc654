"""Reads as the ledger grows: the same reads over HTTP on a ledger of 100,000
postings and on one of 10,000,000, side by side.

    uv run python -m bench.growth                       # 22-36 minutes here; 11 GB of disk
    uv run python -m bench.growth --postings 1000000    # a quicker look
    uv run python -m bench.growth --server tuned        # on a private server sized for the machine
    uv run python -m bench.growth --server tuned --prewarm   # ... with the reads' tables in its buffers

Two fresh databases, points_ledger_bench_growth_small (--small postings) and
points_ledger_bench_growth_large (--postings), each bulk-loaded by build() below
with one program's two years of awards and redemptions, then `verify`d: both
must be sound before anything is measured. The two ledgers have the same shape
and differ only in size: a "hot" member m-1 with the same long history in both
(--hot-entries entries, evenly over the two years), and typical members with
about 25 entries each (so the large ledger has a hundred times more of them).

What build() writes is what the service itself would have written for those
entries, row for row, and `verify` checks it: each entry (an award: the member's
available +p, issuance -p, expiring three years after it; or a redemption of part
of the member's balance: available -p, redemption +p, under the active rules
version) with its two postings carrying the member's balances after it, its
idempotency record (a random key, as clients send), its point lot or the lots it
took from oldest-expiring first (lot_use), its place in the program's hash chain
(sequence and hash computed by app.ledger.chain.link(), the chainer's own code,
in (txid, id) order) and its `points.*` event in the event log; the members'
balance rows at the end. Entries are written in batches of --batch, one
transaction each (holding the chainer's advisory lock for the program, and with
the batch's own transaction id as each entry's txid, as the chainer orders
them), with COPY and session_replication_role = replica: no trigger or
foreign-key check per row, as pg_restore --disable-triggers loads a dump. Then
VACUUM (ANALYZE), as autovacuum would leave the tables.

Then one service per ledger (uvicorn, one worker, LEDGER_ENV=production, its
chainer and webhook dispatcher on, as `points-ledger serve` runs), both up at
once on 127.0.0.1, and for each operation --rounds rounds of --requests
sequential requests against each (small first in odd rounds, large first in
even ones), after a warm-up:
- the member view (GET /v1/members/{id}) of a random typical member, and of m-1;
- the statement's first page (GET /v1/members/{id}/entries) of a random typical
  member, and of m-1; m-1's page --deep-page (50 entries a page, reached by
  following the cursors once);
- the balance a year back (GET /v1/members/{id}/balance?as_of=), of m-1 and of a
  random typical member;
- the event log's first page (GET /v1/events) and the page after 90% of the log
  (reached with ?after=, then measured with its next_cursor);
- an award (POST /v1/members/{id}/awards, its own Idempotency-Key) to a random
  typical member.
Printed: each operation's median latency on each ledger, the ratio large / small
and whether it is within --limit (1.25); then `verify` over both ledgers again
(the awards the run made, chained by the service, on top of the bulk load). The
databases are dropped at the end unless --keep; --reuse measures kept ones again
without building them (the awards of earlier runs stay in them).

The shared PostgreSQL on 5432 (or BENCH_SERVER_URL) by default, as Debian
configures it (128 MB of shared buffers). `--server tuned` starts a private one
for the run instead (initdb and pg_ctl on a free port of 127.0.0.1, removed
after, with everything on it): SIZED below, shared buffers a quarter of the
machine's memory, as a server of its own would be configured.

Only 127.0.0.1 is ever targeted; every process the script starts, it stops.
Timings are printed, never asserted. The machine is shared and noisy: compare
ratios from one run, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import os
import random
import statistics
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from app.db import asyncpg_dsn
from app.ledger import chain
from bench import common
from bench.awards import start, stop

SMALL_DATABASE = "points_ledger_bench_growth_small"
LARGE_DATABASE = "points_ledger_bench_growth_large"
PORTS = {"small": 8731, "large": 8732}
# --server tuned: a private server whose shared buffers are a quarter of the
# machine's memory (the usual starting point for a server of its own; 6 GB here),
# the planner told the page cache holds the rest.
_MEMORY_MB = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
SIZED = common.TUNED | {
    "shared_buffers": f"{_MEMORY_MB // 4}MB",
    "effective_cache_size": f"{_MEMORY_MB * 3 // 4}MB",
}
PROGRAM_ID = 1
HOT_MEMBER = "m-1"
HOT_ENTRIES = 5_000
ENTRIES_PER_MEMBER = 25
HISTORY = timedelta(days=730)
LOT_LIFETIME = timedelta(days=3 * 365)
BATCH = 100_000
PAGE = 50
SCOPES = ["members:read", "points:adjust", "events:read"]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# ---------------------------------------------------------------- the builder

ENTRY_COLUMNS = (
    "id",
    "program_id",
    "kind",
    "occurred_at",
    "recorded_at",
    "idempotency_key",
    "request_fingerprint",
    "reason",
    "rules_version",
    "expires_at",
)
POSTING_COLUMNS = (
    "program_id",
    "entry_id",
    "account_id",
    "member_id",
    "amount",
    "available_after",
    "pending_after",
    "held_after",
    "recorded_at",
)
RECORD_COLUMNS = (
    "program_id",
    "key",
    "request_fingerprint",
    "status_code",
    "response_body",
    "entry_id",
    "created_at",
)
CHAIN_COLUMNS = ("entry_id", "program_id", "sequence", "hash", "chained_at")
EVENT_COLUMNS = ("id", "program_id", "type", "sequence", "occurred_at", "created_at", "entry_id", "members")
LOT_COLUMNS = ("id", "program_id", "member_id", "entry_id", "points", "remaining", "expires_at")
LOT_USE_COLUMNS = ("program_id", "entry_id", "lot_id", "points")

SET_REMAINING = """
UPDATE point_lot l SET remaining = x.remaining
  FROM unnest($1::bigint[], $2::bigint[]) AS x(id, remaining)
 WHERE l.program_id = $3 AND l.id = x.id
"""

SET_BALANCES = """
UPDATE member_balance b
   SET available = x.available, version = x.version, updated_at = x.updated_at
  FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::timestamptz[])
       AS x(member_id, available, version, updated_at)
 WHERE b.program_id = $5 AND b.member_id = x.member_id
"""


@dataclass
class Built:
    entries: int
    postings: int
    members: int
    hot_entries: int
    load_seconds: float
    vacuum_seconds: float


def _instant(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _uuid7(milliseconds: int, rng: random.Random) -> uuid.UUID:
    """A UUIDv7 of that millisecond (as uuid_utils makes them when it is now)."""
    value = (milliseconds << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64) | (0b10 << 62)
    return uuid.UUID(int=value | rng.getrandbits(62))


@dataclass(slots=True)
class _Member:
    id: int
    external_id: str
    account_id: int  # the available account
    available: int = 0
    entries: int = 0
    last_at: datetime | None = None
    # what is left of each lot, oldest-expiring first: [lot id, remaining]
    lots: deque[list[int]] = field(default_factory=deque)


@dataclass
class _Batch:
    entries: list[tuple[Any, ...]] = field(default_factory=list)
    postings: list[tuple[Any, ...]] = field(default_factory=list)
    records: list[tuple[Any, ...]] = field(default_factory=list)
    chained: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    lots: dict[int, list[Any]] = field(default_factory=dict)  # new lots by id, remaining kept current
    lot_uses: list[tuple[Any, ...]] = field(default_factory=list)
    older_lots: dict[int, int] = field(default_factory=dict)  # lots of earlier batches: id -> remaining
    # the chain's head after the batch (its txid is the writing transaction's)
    sequence: int = 0
    hash: bytes = b""
    last_entry_id: uuid.UUID = chain.START.last_entry_id
    event_sequence: int = 0


@dataclass
class _History:
    """The program's history, generated in order a batch at a time: who does what
    when, and every row that follows from it."""

    program_id: int
    members: list[_Member]  # [0]: the hot member
    issuance: int
    redemption: int
    rules_version: int
    entries: int
    hot_entries: int
    start_at: datetime
    rng: random.Random
    next_lot: int
    head: chain.Head
    step: timedelta = field(init=False)
    last_ms: int = 0

    def __post_init__(self) -> None:
        self.step = HISTORY / self.entries

    def batch(self, first: int, last: int) -> _Batch:
        """Entries first .. last - 1 of the history."""
        rng, rows = self.rng, _Batch()
        previous, sequence, event_sequence = self.head.hash, self.head.sequence, self.head.event_sequence
        entry_id = self.head.last_entry_id
        for n in range(first, last):
            at_time = self.start_at + self.step * (n + 0.5)
            self.last_ms = milliseconds = max(
                self.last_ms + 1, (at_time - _EPOCH) // timedelta(milliseconds=1)
            )
            # the hot member's entries are spread evenly: one in every entries / hot_entries
            hot = (n * self.hot_entries) // self.entries != ((n + 1) * self.hot_entries) // self.entries
            member = self.members[0] if hot else self.members[rng.randrange(1, len(self.members))]
            entry_id = _uuid7(milliseconds, rng)
            if member.available < 100 or rng.random() < 0.7:
                points = change = rng.randint(10, 500)
                kind, account, reason, version = "award", self.issuance, "bulk award", None
                expires_at: datetime | None = at_time + LOT_LIFETIME
                lot = self.next_lot
                self.next_lot += 1
                rows.lots[lot] = [lot, self.program_id, member.id, entry_id, points, points, expires_at]
                member.lots.append([lot, points])
            else:
                points = max(1, int(member.available * rng.uniform(0.2, 1.0)))
                change = -points
                kind, account, reason, version = (
                    "redemption",
                    self.redemption,
                    "bulk-reward",
                    self.rules_version,
                )
                expires_at = None
                _take(member, points, entry_id, rows)
            member.available += change
            member.entries += 1
            member.last_at = at_time
            key = f"{rng.getrandbits(128):032x}"
            fingerprint = hashlib.sha256(key.encode()).hexdigest()
            system = "issuance" if kind == "award" else "redemption"
            # the chainer's own hash, over what CANONICAL_COLUMNS reads of the entry
            previous = chain.link(
                previous,
                {
                    "id": entry_id,
                    "kind": kind,
                    "occurred_at": at_time,
                    "recorded_at": at_time,
                    "idempotency_key": key,
                    "rules_version": version,
                    "reverses_entry_id": None,
                    "source_entry_id": None,
                    "reason": reason,
                    "order_id": None,
                    "postings": [("available", member.id, change, None), (system, None, -change, None)],
                },
            )
            sequence += 1
            event_sequence += 1
            rows.entries.append(
                (
                    entry_id,
                    self.program_id,
                    kind,
                    at_time,
                    at_time,
                    key,
                    fingerprint,
                    reason,
                    version,
                    expires_at,
                )
            )
            # members' postings first, then the system account's, as ledger_post() writes them
            rows.postings.append(
                (entry_id, member.account_id, member.id, change, member.available, 0, 0, at_time)
            )
            rows.postings.append((entry_id, account, None, -change, None, None, None, at_time))
            body = _response(
                entry_id, kind, points, _instant(at_time), reason, version, expires_at, member, change
            )
            rows.records.append((self.program_id, key, fingerprint, 201, body, entry_id, at_time))
            rows.chained.append(
                (entry_id, self.program_id, sequence, previous, at_time + timedelta(seconds=1))
            )
            rows.events.append(
                (
                    _uuid7(milliseconds + 1000, rng),
                    self.program_id,
                    "points." + kind,
                    event_sequence,
                    at_time,
                    at_time,
                    entry_id,
                    [member.id],
                )
            )
        rows.sequence, rows.hash, rows.event_sequence = sequence, previous, event_sequence
        rows.last_entry_id = entry_id
        self.head = chain.Head(sequence, previous, -1, entry_id, event_sequence)
        return rows


async def build(
    connection: asyncpg.Connection,
    *,
    postings: int,
    now: datetime,
    hot_entries: int = HOT_ENTRIES,
    program_id: int = PROGRAM_ID,
    batch: int = BATCH,
    seed: int = 15,
    progress: Callable[[int, int], None] | None = None,
    entries_per_member: int = ENTRIES_PER_MEMBER,
) -> Built:
    """Bulk-load `postings` postings (two per entry) of the program's members m-1
    (the hot member, `hot_entries` entries) .. m-n (about `entries_per_member`
    entries each, 25 unless told),
    recorded over the two years before `now`; see the module's docstring. The
    program must have no members or entries yet.

    While one batch is written, the next is generated in a thread: the database's
    work and this process's overlap. Python's cyclic garbage collector is off
    meanwhile (nothing here makes cycles; its passes over millions of live rows
    took half the time)."""
    began = time.monotonic()
    entries = max(1, postings // 2)
    hot_entries = min(hot_entries, entries // 2)
    typical = max(1, (entries - hot_entries) // entries_per_member)
    start_at = now - HISTORY
    await common.add_members(connection, program_id, typical + 1, enrolled_at=start_at - timedelta(days=1))
    rows = await connection.fetch(
        "SELECT m.id, m.external_id, a.id AS account_id FROM member m"
        " JOIN account a ON a.member_id = m.id AND a.kind = 'available'"
        " WHERE m.program_id = $1",
        program_id,
    )
    members = [_Member(row["id"], row["external_id"], row["account_id"]) for row in rows]
    members.sort(key=lambda member: int(member.external_id.removeprefix("m-")))
    system = {
        row["kind"]: row["id"]
        for row in await connection.fetch(
            "SELECT kind, id FROM account WHERE program_id = $1 AND member_id IS NULL AND partner_id IS NULL",
            program_id,
        )
    }
    rules_version = await connection.fetchval(
        "SELECT version FROM rules_version WHERE program_id = $1 AND active", program_id
    )
    next_lot = int(await connection.fetchval("SELECT coalesce(max(id), 0) + 1 FROM point_lot"))
    # Whatever waits for the chainer (the outbox) goes first, by its own code.
    while await chain.chain_batch(connection, program_id, now) > 0:
        pass
    history = _History(
        program_id,
        members,
        system["issuance"],
        system["redemption"],
        rules_version,
        entries,
        hot_entries,
        start_at,
        random.Random(seed),
        next_lot,
        await chain.head(connection, program_id),
    )
    collecting = gc.isenabled()
    gc.disable()
    await connection.execute("SET session_replication_role = replica")
    try:
        bounds = [(first, min(entries, first + batch)) for first in range(0, entries, batch)]
        upcoming = asyncio.create_task(asyncio.to_thread(history.batch, *bounds[0]))
        for number, (_, last) in enumerate(bounds):
            rows_of = await upcoming
            if number + 1 < len(bounds):
                upcoming = asyncio.create_task(asyncio.to_thread(history.batch, *bounds[number + 1]))
            await _write(connection, program_id, rows_of, now)
            if progress is not None:
                progress(last, entries)
        await connection.execute(
            SET_BALANCES,
            [m.id for m in members],
            [m.available for m in members],
            [m.entries for m in members],
            [m.last_at or start_at for m in members],
            program_id,
        )
        await connection.execute(
            "SELECT setval(pg_get_serial_sequence('point_lot', 'id'), $1)", max(1, history.next_lot - 1)
        )
    finally:
        await connection.execute("RESET session_replication_role")
        if collecting:
            gc.enable()
    load_seconds = time.monotonic() - began
    began = time.monotonic()
    # every table, the members' and accounts' too: without their statistics the
    # planner misjudged the statement's joins on the small ledger (a 98 ms plan, not 1 ms)
    await connection.execute("VACUUM (ANALYZE)")
    return Built(
        entries,
        2 * entries,
        len(members),
        members[0].entries,
        load_seconds,
        time.monotonic() - began,
    )


def _take(member: _Member, points: int, entry_id: uuid.UUID, rows_of: _Batch) -> None:
    """A redemption takes from the member's lots oldest-expiring first (every lot
    here expires a fixed time after it was earned: oldest first), as
    ledger_apply_lots() does."""
    need = points
    while need:
        lot = member.lots[0]
        take = min(lot[1], need)
        lot[1] -= take
        need -= take
        rows_of.lot_uses.append((entry_id, lot[0], take))
        if lot[0] in rows_of.lots:
            rows_of.lots[lot[0]][5] = lot[1]
        else:
            rows_of.older_lots[lot[0]] = lot[1]
        if lot[1] == 0:
            member.lots.popleft()


def _response(
    entry_id: uuid.UUID,
    kind: str,
    points: int,
    recorded: str,
    reason: str,
    version: int | None,
    expires_at: datetime | None,
    member: _Member,
    change: int,
) -> bytes:
    """The entry as ledger_post() renders it (EntryOut, compact JSON, its keys in
    that order), for the idempotency record. Written out by hand: json.dumps was a
    fifth of the build's time. Every string in it is plain ASCII from this module."""
    system = "issuance" if kind == "award" else "redemption"
    expires = "null" if expires_at is None else f'"{_instant(expires_at)}"'
    return (
        f'{{"id":"{entry_id}","kind":"{kind}","points":{points},"occurred_at":"{recorded}",'
        f'"recorded_at":"{recorded}","reason":"{reason}","order_id":null,"reverses":null,'
        f'"rules_version":{"null" if version is None else version},"expires_at":{expires},'
        f'"pending_until":null,"metadata":{{}},"postings":[{{"member":"{member.external_id}",'
        f'"account":"available","points":{change},"partner":null}},{{"member":null,'
        f'"account":"{system}","points":{-change},"partner":null}}],"balances":[{{"member":'
        f'"{member.external_id}","available":{member.available},"pending":0,"held":0}}]}}'
    ).encode()


async def _write(connection: asyncpg.Connection, program_id: int, rows_of: _Batch, now: datetime) -> None:
    """One batch in one transaction, which holds the chainer's lock on the program
    and is the txid of the batch's entries (the column's default), as the chainer
    orders them."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1, $2)", chain.LOCK_SPACE, program_id)
        # parents first: the foreign keys hold, though nothing checks them row by row here
        await connection.copy_records_to_table(
            "journal_entry", records=rows_of.entries, columns=ENTRY_COLUMNS
        )
        await connection.copy_records_to_table(
            "posting", records=[(program_id, *row) for row in rows_of.postings], columns=POSTING_COLUMNS
        )
        await connection.copy_records_to_table(
            "idempotency_record", records=rows_of.records, columns=RECORD_COLUMNS
        )
        await connection.copy_records_to_table("entry_chain", records=rows_of.chained, columns=CHAIN_COLUMNS)
        await connection.copy_records_to_table("event_log", records=rows_of.events, columns=EVENT_COLUMNS)
        await connection.copy_records_to_table(
            "point_lot", records=[tuple(lot) for lot in rows_of.lots.values()], columns=LOT_COLUMNS
        )
        await connection.copy_records_to_table(
            "lot_use", records=[(program_id, *row) for row in rows_of.lot_uses], columns=LOT_USE_COLUMNS
        )
        if rows_of.older_lots:
            await connection.execute(
                SET_REMAINING, list(rows_of.older_lots), list(rows_of.older_lots.values()), program_id
            )
        txid = int(await connection.fetchval("SELECT pg_current_xact_id()::text::bigint"))
        await connection.execute(
            chain.MOVE_HEAD,
            program_id,
            rows_of.sequence,
            rows_of.hash,
            txid,
            rows_of.last_entry_id,
            rows_of.event_sequence,
            now,
        )


# ---------------------------------------------------------------- the measurements


@dataclass
class Ledger:
    """One of the two ledgers, as built (or found, with --reuse) and served."""

    label: str
    database: str
    port: int
    key: str = ""
    members: int = 0
    postings: int = 0
    built: Built | None = None
    verify_seconds: float = float("nan")
    sound: bool = False
    size_mib: float = 0.0
    statement_cursor: str = ""  # m-1's statement page --deep-page
    events_cursor: str = ""  # the event log's page after 90% of it
    client: httpx.Client | None = None

    def typical(self, rng: random.Random) -> str:
        return f"m-{rng.randint(2, self.members)}"


@dataclass(frozen=True)
class Operation:
    name: str
    request: Callable[[Ledger, random.Random, str], tuple[str, str, dict[str, Any]]]
    status: int = 200


def _year_back() -> str:
    return _instant(datetime.now(UTC) - timedelta(days=365))


OPERATIONS = (
    Operation(
        "member view, typical member", lambda led, rng, _: ("GET", f"/v1/members/{led.typical(rng)}", {})
    ),
    Operation("member view, hot member", lambda led, rng, _: ("GET", f"/v1/members/{HOT_MEMBER}", {})),
    Operation(
        "statement first page, typical member",
        lambda led, rng, _: ("GET", f"/v1/members/{led.typical(rng)}/entries", {"params": {"limit": PAGE}}),
    ),
    Operation(
        "statement first page, hot member",
        lambda led, rng, _: ("GET", f"/v1/members/{HOT_MEMBER}/entries", {"params": {"limit": PAGE}}),
    ),
    Operation(
        "statement deep page, hot member",
        lambda led, rng, _: (
            "GET",
            f"/v1/members/{HOT_MEMBER}/entries",
            {"params": {"limit": PAGE, "cursor": led.statement_cursor}},
        ),
    ),
    Operation(
        "balance as_of a year back, hot member",
        lambda led, rng, as_of: ("GET", f"/v1/members/{HOT_MEMBER}/balance", {"params": {"as_of": as_of}}),
    ),
    Operation(
        "balance as_of a year back, typical member",
        lambda led, rng, as_of: (
            "GET",
            f"/v1/members/{led.typical(rng)}/balance",
            {"params": {"as_of": as_of}},
        ),
    ),
    Operation("events first page", lambda led, rng, _: ("GET", "/v1/events", {})),
    Operation(
        "events page at 90% of the log",
        lambda led, rng, _: ("GET", "/v1/events", {"params": {"cursor": led.events_cursor}}),
    ),
    Operation(
        "award, typical member",
        lambda led, rng, _: (
            "POST",
            f"/v1/members/{led.typical(rng)}/awards",
            {
                "json": {"points": 10, "reason": "bench growth"},
                "headers": {"Idempotency-Key": f"growth-{uuid.uuid4().hex}"},
            },
        ),
        201,
    ),
)


async def _connect(database: str) -> asyncpg.Connection:
    return await asyncpg.connect(asyncpg_dsn(common.database_url(database)))


# --prewarm: what the measured reads read, loaded into shared buffers before they
# are measured, as a server that has been serving them a while holds them (about 4
# GB on the large ledger: it fits a quarter of this machine's memory, not 128 MB).
PREWARM = (
    "journal_entry",
    "pk_journal_entry",
    "entry_chain",
    "pk_entry_chain",
    "ix_posting_member_id_id",
    "ix_point_lot_member_fifo",
    "event_log",
    "pk_event_log",
    "uq_event_log_program_id_sequence",
)
# and these tables whole, with every index
PREWARM_WHOLE = ("member", "member_balance", "account")


async def prewarm(ledger: Ledger) -> float:
    """Load PREWARM and PREWARM_WHOLE into shared buffers (pg_prewarm); MiB loaded."""
    connection = await _connect(ledger.database)
    try:
        await connection.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        indexes = await connection.fetch(
            "SELECT i.indexrelid::regclass::text AS name FROM pg_index i"
            " WHERE i.indrelid::regclass::text = ANY($1)",
            list(PREWARM_WHOLE),
        )
        blocks = 0
        for name in [*PREWARM, *PREWARM_WHOLE, *(row["name"] for row in indexes)]:
            blocks += await connection.fetchval("SELECT pg_prewarm($1::regclass)", name)
    finally:
        await connection.close()
    return blocks * 8192 / 2**20


async def _verify(ledger: Ledger) -> None:
    began = time.monotonic()
    ledger.sound = await common.sound(ledger.database)
    ledger.verify_seconds = time.monotonic() - began


async def prepare(ledger: Ledger, postings: int, args: argparse.Namespace) -> None:
    """Build the ledger in a fresh database (or, with --reuse, find it), and an API key."""
    if not args.reuse:
        await common.fresh_database(ledger.database)
    connection = await _connect(ledger.database)
    try:
        ledger.key = await common.add_api_key(connection, PROGRAM_ID, "bench-growth", SCOPES)
        if not args.reuse:
            began = time.monotonic()

            def progress(done: int, total: int) -> None:
                seconds = time.monotonic() - began
                print(
                    f"  {ledger.label}: {done:,} / {total:,} entries, {seconds:.0f} s"
                    f" ({done / seconds:,.0f}/s)",
                    flush=True,
                )

            ledger.built = await build(
                connection,
                postings=postings,
                now=datetime.now(UTC),
                hot_entries=args.hot_entries,
                batch=args.batch,
                progress=progress,
            )
        ledger.members = int(
            await connection.fetchval("SELECT count(*) FROM member WHERE program_id = $1", PROGRAM_ID)
        )
        ledger.postings = int(await connection.fetchval("SELECT count(*) FROM posting"))
        ledger.size_mib = await connection.fetchval("SELECT pg_database_size(current_database())") / 2**20
    finally:
        await connection.close()
    if not args.reuse:
        print(f"  {ledger.label}: verifying...", flush=True)
        await _verify(ledger)
        print(f"  {ledger.label}: {'sound' if ledger.sound else 'UNSOUND'} ({ledger.verify_seconds:.0f} s)")


def service_env(database: str) -> dict[str, str]:
    """`points-ledger serve` as production runs it, on `database`."""
    return {
        "LEDGER_DATABASE_URL": common.database_url(database),
        "LEDGER_ENV": "production",
        "LEDGER_DB_POOL_SIZE": "4",
    }


def _call(ledger: Ledger, method: str, path: str, expected: int, **kwargs: Any) -> httpx.Response:
    assert ledger.client is not None
    response = ledger.client.request(method, path, **kwargs)
    if response.status_code != expected:
        raise SystemExit(f"{ledger.label}: {method} {path}: {response.status_code} {response.text[:500]}")
    return response


def find_pages(ledger: Ledger, deep_page: int) -> None:
    """The cursors of m-1's statement page `deep_page` and of the event log's page
    after 90% of it, by following the service's own cursors."""
    cursor: str | None = None
    for _ in range(deep_page - 1):
        params: dict[str, Any] = {"limit": PAGE} | ({"cursor": cursor} if cursor else {})
        cursor = _call(ledger, "GET", f"/v1/members/{HOT_MEMBER}/entries", 200, params=params).json()[
            "next_cursor"
        ]
        if cursor is None:
            raise SystemExit(f"{ledger.label}: {HOT_MEMBER}'s statement has fewer than {deep_page} pages")
    assert cursor is not None
    ledger.statement_cursor = cursor
    head = _call(ledger, "GET", "/v1/ledger/head", 200).json()["sequence"]
    page = _call(ledger, "GET", "/v1/events", 200, params={"after": int(head * 0.9)}).json()
    ledger.events_cursor = page["next_cursor"]


def measure(
    ledgers: list[Ledger], requests: int, rounds: int, warmup: int
) -> dict[tuple[str, str], list[float]]:
    """Milliseconds of each request, by (operation, ledger). The two ledgers take
    turns request by request (which goes first alternates by round), so the
    machine's other load falls on both alike."""
    rng = random.Random(15)
    timings: dict[tuple[str, str], list[float]] = {}
    as_of = _year_back()
    for number in range(rounds):
        order = ledgers if number % 2 == 0 else ledgers[::-1]
        for operation in OPERATIONS:
            for n in range(warmup + requests):
                for ledger in order:
                    method, path, kwargs = operation.request(ledger, rng, as_of)
                    began = time.perf_counter()
                    _call(ledger, method, path, operation.status, **kwargs)
                    if n >= warmup:
                        timings.setdefault((operation.name, ledger.label), []).append(
                            (time.perf_counter() - began) * 1000
                        )
        print(f"round {number + 1} of {rounds} done (load average {os.getloadavg()[0]:.1f})", flush=True)
    return timings


def report(ledgers: list[Ledger], timings: dict[tuple[str, str], list[float]], limit: float) -> None:
    small, large = ledgers
    print()
    print(
        f"{'ledger':8s} {'postings':>12s} {'members':>9s} {'m-1 entries':>12s} {'build s':>9s} "
        f"{'vacuum s':>9s} {'verify s':>9s} {'database':>10s}"
    )
    for ledger in ledgers:
        built = ledger.built
        print(
            f"{ledger.label:8s} {ledger.postings:12,d} {ledger.members:9,d} "
            f"{built.hot_entries if built else float('nan'):12,.0f} "
            f"{built.load_seconds if built else float('nan'):9.1f} "
            f"{built.vacuum_seconds if built else float('nan'):9.1f} "
            f"{ledger.verify_seconds:9.1f} {ledger.size_mib / 1024:8.1f} GB"
        )
    print()
    width = max(len(operation.name) for operation in OPERATIONS)
    print(f"{'operation (median ms)':{width}s} {'small':>8s} {'large':>8s} {'ratio':>6s}  within {limit}x")
    for operation in OPERATIONS:
        first = statistics.median(timings[operation.name, small.label])
        second = statistics.median(timings[operation.name, large.label])
        ratio = round(second / first, 2)  # judged as printed
        print(
            f"{operation.name:{width}s} {first:8.2f} {second:8.2f} {ratio:6.2f}  "
            f"{'yes' if ratio <= limit else 'NO'}"
        )


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--postings", type=int, default=10_000_000, help="postings of the large ledger")
    parser.add_argument("--small", type=int, default=100_000, help="postings of the small ledger")
    parser.add_argument("--hot-entries", type=int, default=HOT_ENTRIES, help="entries of m-1, in both")
    parser.add_argument("--batch", type=int, default=BATCH, help="entries per transaction of the load")
    parser.add_argument("--requests", type=int, default=200, help="per operation, ledger and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured requests before each series")
    parser.add_argument("--deep-page", type=int, default=60, help="m-1's statement page measured (50 a page)")
    parser.add_argument("--limit", type=float, default=1.25, help="the ratio large / small allowed")
    parser.add_argument("--keep", action="store_true", help="keep both databases (for --reuse)")
    parser.add_argument("--reuse", action="store_true", help="measure the databases a --keep run left")
    parser.add_argument("--no-verify-after", dest="verify_after", action="store_false")
    parser.add_argument(
        "--prewarm",
        action="store_true",
        help="load what the reads read into shared buffers first (PREWARM; pg_prewarm), on both ledgers",
    )
    parser.add_argument(
        "--server",
        choices=("shared", "tuned"),
        default="shared",
        help="the shared PostgreSQL, or a private one sized for this machine's memory (SIZED)",
    )
    return parser.parse_args()


def main() -> None:
    args = parse()
    if args.server == "shared":
        run(args)
        return
    if args.keep or args.reuse:
        raise SystemExit("--keep and --reuse work on the shared server only (a private one is removed after)")
    with common.private_server(SIZED):
        run(args)


def run(args: argparse.Namespace) -> None:
    ledgers = [
        Ledger("small", SMALL_DATABASE, PORTS["small"]),
        Ledger("large", LARGE_DATABASE, PORTS["large"]),
    ]
    began = time.monotonic()
    for ledger, postings in zip(ledgers, (args.small, args.postings), strict=True):
        print(
            f"{'finding' if args.reuse else 'building'} the {ledger.label} ledger ({postings:,} postings)..."
        )
        asyncio.run(prepare(ledger, postings, args))
    if not all(ledger.sound for ledger in ledgers) and not args.reuse:
        raise SystemExit("a bulk-loaded ledger is unsound: nothing measured (databases kept)")
    if args.prewarm:
        for ledger in ledgers:
            print(f"  {ledger.label}: {asyncio.run(prewarm(ledger)):,.0f} MiB prewarmed into shared buffers")
    processes = [start("app.asgi:app", ledger.port, service_env(ledger.database)) for ledger in ledgers]
    try:
        for ledger in ledgers:
            ledger.client = httpx.Client(
                base_url=f"http://127.0.0.1:{ledger.port}",
                headers={"Authorization": f"Bearer {ledger.key}"},
                timeout=60,
            )
            find_pages(ledger, args.deep_page)
        timings = measure(ledgers, args.requests, args.rounds, args.warmup)
        time.sleep(1)  # the chainers take the last awards
    finally:
        for ledger in ledgers:
            if ledger.client is not None:
                ledger.client.close()
        for process in processes:
            stop(process)
    print(
        f"\n{args.rounds} rounds of {args.requests} sequential requests per operation and ledger "
        f"(after {args.warmup} unmeasured), one uvicorn worker each, production settings"
    )
    report(ledgers, timings, args.limit)
    if args.verify_after:
        for ledger in ledgers:
            asyncio.run(_verify(ledger))
        print(
            "verify after the run: "
            + ", ".join(
                f"{led.label} {'sound' if led.sound else 'UNSOUND'} ({led.verify_seconds:.0f} s)"
                for led in ledgers
            )
        )
    if args.keep:
        print(f"kept {SMALL_DATABASE} and {LARGE_DATABASE} (--reuse measures them again)")
    else:
        asyncio.run(_drop([ledger.database for ledger in ledgers]))
    print(f"whole run: {(time.monotonic() - began) / 60:.1f} minutes")


async def _drop(databases: list[str]) -> None:
    for name in databases:
        await common.drop_database(name)


if __name__ == "__main__":
    main()
