"""Importing a legacy program: members, lots, past orders and tiers.

Every row is validated (a row error names its row, field and stable code), the
control totals are compared before anything is written (a mismatch refuses the
run), and what is already in the ledger is found (rows are keyed by the program,
the source, the kind and their own reference, so a file run again is
`skipped`). A dry run stops there and says what would be written. Otherwise the
valid rows are written in chunks, one transaction each (`--all-or-nothing`: none
at all if any row is invalid). No rules, caps or per-member events run for
imported rows; one `import.completed` event, written after the last chunk,
summarises a run that wrote.

Members, orders and tiers are checked whole, then written. Lots, the big kind,
are read once for what needs the whole file (control totals, members, references
imported before), then parsed and checked block by block (BLOCK) while the
writers write the block before; they go in set-wise (ledger_import_lots():
thousands of entries a statement, checked set-wise where the role may set
session_replication_role; bench/imports.py measures it), by WRITERS connections
at once, each for its own members; each lot an `import` entry from the program's
`migration` account that keeps its original dates, so FIFO and expiry treat it
as earned then (docs/imports.md)."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import AsyncGenerator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg
import uuid_utils
from pydantic import ValidationError

from app.context import RulesSource
from app.db import Database
from app.errors import AppError, FieldError
from app.fields import ID_MAX_LENGTH, NO_CONTROL_PATTERN
from app.imports import repository
from app.imports.schemas import (
    ROW_MODELS,
    ImportKind,
    ImportSummary,
    Lot,
    LotRow,
    MemberRow,
    OrderRow,
    RowError,
    TierRow,
    is_member_id,
    quick_lot,
)
from app.ledger import accounts
from app.outbox import emit
from app.programs import service as programs
from app.rules.earning import local_time
from app.rules.lifecycle import lot_expiry

CHUNK = {"members": 2_000, "lots": 5_000, "orders": 2_000, "tiers": 1_000}
# rows looked up in the ledger at a time while checking
LOOKUP = 10_000
# Lots chunks written at once, each by its own connection (bench/imports.py: on 2
# cores, 2 writers against 1; more would only queue for the CPU).
WRITERS = 2
# Lots are checked and written in blocks of about this many, each holding every
# lot of its members: the writers write one block while the next is checked.
# Each writer's share of a block is grouped by member (then oldest-earned first)
# before it is cut into chunks, so a chunk touches a few members' balance rows
# and index pages instead of one per lot.
BLOCK = 100_000
# Rows checked between two looks at the writers (about 10 ms of checking): a
# writer whose chunk is done waits at most that long to send its next one.
SLICE = 1_000
# Keep the per-row foreign-key and balanced-entry triggers even where
# ledger_import_lots() could check set-wise (bench/imports.py --row-checks: the
# path of a role that may not set session_replication_role).
ROW_CHECKS = False
# A lots chunk refused by a concurrent run's commit of the same keys is tried again
# (filtered), at most this many times in all (the first try unfiltered).
CHUNK_ATTEMPTS = 6
# what a reference may be (ShortText: no control characters), to be looked up
_NO_CONTROL = re.compile(NO_CONTROL_PATTERN)
# journal_entry's unique (program_id, idempotency_key): an import lot's key taken
ENTRY_KEY_INDEX = "uq_journal_entry_program_id_idempotency_key"


class ImportRefused(AppError):
    """A run refused whole: nothing was written. Carries the summary."""

    status, code, title = 422, "import_refused", "Import refused"

    def __init__(self, detail: str, summary: ImportSummary) -> None:
        super().__init__(
            detail,
            errors=[
                FieldError(field=f"rows.{error.row}.{error.field}", message=error.message, type=error.code)
                for error in summary.errors[:100]
            ],
        )
        self.summary = summary


class ControlTotalsMismatch(ImportRefused):
    code, title = "import_control_totals_mismatch", "The control totals do not match the rows"


class ImportRowsInvalid(ImportRefused):
    code, title = "import_rows_invalid", "Some rows are invalid and all-or-nothing was asked"


class ImportTooLarge(AppError):
    status, code, title = 413, "import_too_large", "Too many rows in one call"


class Progress(Protocol):
    def total(self, items: int) -> None: ...

    def advance(self, items: int) -> None: ...


class NoProgress:
    def total(self, items: int) -> None:
        pass

    def advance(self, items: int) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Options:
    dry_run: bool = False
    all_or_nothing: bool = False
    expect_rows: int | None = None
    expect_points: int | None = None


@dataclass(slots=True)
class _Plan:
    rows: int = 0
    file_points: int = 0
    valid: list[tuple[int, Any]] = field(default_factory=list)  # (row number, parsed row)
    raw: list[tuple[int, Any]] = field(default_factory=list)  # (row number, row as read): lots
    errors: list[RowError] = field(default_factory=list)
    skipped: int = 0
    write: list[Any] = field(default_factory=list)  # what to write, as the repository takes it
    points: int = 0
    members: set[int | str] = field(default_factory=set)
    by_month: dict[str, int] = field(default_factory=dict)

    def fail(self, row: int, field_: str, code: str, message: str) -> None:
        self.errors.append(RowError(row=row, field=field_, code=code, message=message))

    def summary(
        self, kind: ImportKind, source: str, dry_run: bool, imported: int, points: int
    ) -> ImportSummary:
        self.errors.sort(key=lambda error: error.row)
        return ImportSummary(
            kind=kind,
            source=source,
            dry_run=dry_run,
            rows=self.rows,
            imported=imported,
            skipped=self.skipped,
            invalid=len({error.row for error in self.errors}),
            points=points,
            members=len(self.members) if imported or dry_run else 0,
            points_by_expiry_month=dict(sorted(self.by_month.items())) if imported or dry_run else {},
            errors=self.errors,
        )


_CODES = {"missing": "missing", "extra_forbidden": "unknown_field"}


def _clean(kind: ImportKind, raw: Mapping[str, Any]) -> dict[str, Any]:
    """A row as read (CSV: every value a string, empty for none) made ready for its
    model: empty values dropped, JSON columns decoded, a flat total made money."""
    row = {key: value for key, value in raw.items() if key is not None and value not in ("", None)}
    for name in ("metadata", "lines"):
        if isinstance(row.get(name), str):
            try:
                row[name] = json.loads(row[name])
            except ValueError:
                pass  # the model says what is wrong with it
    if kind == "orders" and "total" in row and not isinstance(row["total"], dict):
        row["total"] = {"amount": str(row["total"]), "currency": row.pop("currency", None)}
    return row


def _parse(kind: ImportKind, rows: Iterable[Mapping[str, Any]], plan: _Plan) -> None:
    for number, raw in enumerate(rows, start=1):
        plan.rows += 1
        if kind == "lots":
            try:
                plan.file_points += int(raw.get("points") or 0)
            except (TypeError, ValueError, AttributeError):
                pass
            plan.raw.append((number, raw))  # parsed block by block (_lot_blocks)
            continue
        row = _parse_row(kind, number, raw, plan)
        if row is not None:
            plan.valid.append((number, row))


def _parse_row(kind: ImportKind, number: int, raw: Any, plan: _Plan) -> Any:
    """One row through its model (a lot as a Lot), or None with its errors failed."""
    if not isinstance(raw, Mapping):
        plan.fail(number, "row", "invalid", "a row is an object of fields")
        return None
    try:
        row = ROW_MODELS[kind].model_validate(_clean(kind, raw))
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "row"
            plan.fail(number, where, _CODES.get(error["type"], "invalid"), error["msg"])
        return None
    if isinstance(row, LotRow):
        return Lot(row.member, row.lot_ref, row.points, row.earned_at, row.expires_at)
    return row


def _parse_lots(rows: list[tuple[int, Any]], plan: _Plan) -> list[tuple[int, Lot]]:
    """Lot rows parsed (the common shape by quick_lot(), any other by LotRow): the
    valid ones returned, the others failed."""
    valid: list[tuple[int, Lot]] = []
    for number, raw in rows:
        lot = quick_lot(raw) or _parse_row("lots", number, raw, plan)
        if lot is not None:
            valid.append((number, lot))
    return valid


async def run(
    db: Database,
    rules: RulesSource,
    *,
    program_id: int,
    kind: ImportKind,
    source: str,
    rows: Iterable[Mapping[str, Any]],
    options: Options,
    now: datetime,
    actor_key_id: Any = None,
    progress: Progress | None = None,
) -> ImportSummary:
    """Import `rows` of `kind` into the program (see the module's docstring)."""
    bar = progress or NoProgress()
    plan = _Plan()
    _parse(kind, rows, plan)
    if (options.expect_rows is not None and options.expect_rows != plan.rows) or (
        options.expect_points is not None and options.expect_points != plan.file_points
    ):
        if kind == "lots":
            _parse_lots(plan.raw, plan)  # the refusal lists the rows that are invalid too
        summary = plan.summary(kind, source, options.dry_run, 0, 0)
        raise ControlTotalsMismatch(
            f"the rows say {plan.rows} rows and {plan.file_points} points; expected "
            f"{options.expect_rows if options.expect_rows is not None else plan.rows} rows and "
            f"{options.expect_points if options.expect_points is not None else plan.file_points} points: "
            "nothing was written",
            summary,
        )
    async with db.pool.acquire() as connection:
        version, document = await rules.active(connection, program_id)
        if kind == "members":
            await _check_members(connection, program_id, plan, now)
        elif kind == "lots":
            lots = await _lot_blocks(connection, program_id, source, plan)
            checked: list[list[Any]] = []
            if options.dry_run or options.all_or_nothing:
                # every row checked before anything is written (or nothing is)
                checked = [_check_lots(plan, now, document, lots, block) for block in lots.blocks]
        elif kind == "orders":
            await _check_orders(connection, program_id, plan, now, document)
        else:
            await _check_tiers(connection, program_id, source, plan, now, document)
    if options.all_or_nothing and plan.errors:
        summary = plan.summary(kind, source, options.dry_run, 0, 0)
        raise ImportRowsInvalid(
            f"{summary.invalid} of {plan.rows} rows are invalid: nothing was written", summary
        )
    if options.dry_run:
        return plan.summary(kind, source, True, len(plan.write), plan.points)

    imported, points = 0, 0
    size = CHUNK[kind]
    if kind == "lots":
        bar.total(plan.rows)

        async def ready() -> AsyncGenerator[list[Any]]:
            """Each block's lots to write, checked before or as they come."""
            if options.all_or_nothing:
                for block, ready_lots in zip(lots.blocks, checked, strict=True):
                    bar.advance(len(block) - len(ready_lots))  # already imported
                    yield ready_lots
                return
            for block in lots.blocks:
                written: list[Any] = []
                for start in range(0, len(block), SLICE):
                    written += _check_lots(plan, now, document, lots, block[start : start + SLICE])
                    await asyncio.sleep(0)  # a writer whose chunk is done sends its next meanwhile
                bar.advance(len(block) - len(written))  # refused or skipped
                yield written

        imported, points = await _write_lot_blocks(db, program_id, source, now, actor_key_id, ready(), bar)
    else:
        bar.total(len(plan.write))
    async with db.pool.acquire() as connection:
        # the other kinds, in one connection's chunks (lots were written above)
        for start in range(0, 0 if kind == "lots" else len(plan.write), size):
            chunk = plan.write[start : start + size]
            async with connection.transaction():
                if kind == "members":
                    member_ids = await repository.insert_members(connection, program_id, now, chunk)
                    await accounts.open_imported_member_accounts(connection, program_id, member_ids, now)
                    imported += len(member_ids)
                elif kind == "orders":
                    imported += await repository.insert_orders(
                        connection, program_id, source, version, now, chunk
                    )
                else:
                    imported += await repository.apply_tiers(
                        connection,
                        program_id,
                        version,
                        now,
                        repository.row_key(source, "tiers"),
                        chunk,
                        actor_key_id,
                    )
            bar.advance(len(chunk))
        # written meanwhile by a concurrent run of the same rows: skipped, not imported
        plan.skipped += len(plan.write) - imported
        summary = plan.summary(kind, source, False, imported, points)
        if imported:
            async with connection.transaction():
                await emit(
                    connection,
                    program_id,
                    "import.completed",
                    summary.counts(),
                    occurred_at=now,
                    now=now,
                )
    return summary


def _lot_streams(lots: list[Any]) -> list[list[Any]]:
    """A block's lots to write, split into WRITERS streams by member, each written
    in chunks by its own connection at the same time as the others: no member is
    in two streams (nor in two blocks), so concurrent chunks of one run never wait
    for each other's balance-row locks. Each stream grouped by member, oldest
    earned first."""
    streams: list[list[Any]] = [[] for _ in range(WRITERS)]
    for lot in lots:
        streams[lot[0] % WRITERS].append(lot)
    for stream in streams:
        stream.sort(key=lambda lot: (lot[0], lot[3]))
    return streams


async def _write_lot_blocks(
    db: Database,
    program_id: int,
    source: str,
    now: datetime,
    actor_key_id: Any,
    blocks: AsyncGenerator[list[Any]],
    bar: Progress,
) -> tuple[int, int]:
    """Write each block of checked lots as it comes (the next is checked
    meanwhile), by WRITERS connections, each its own share of every block's
    members. Returns the lots and points written."""
    size = CHUNK["lots"]
    queues: list[asyncio.Queue[list[Any] | None]] = [asyncio.Queue() for _ in range(WRITERS)]

    async def feed() -> None:
        try:
            opened = False
            async for lots in blocks:
                if lots and not opened:
                    async with db.pool.acquire() as connection:
                        await accounts.open_migration_account(connection, program_id)
                    opened = True
                for queue, stream in zip(queues, _lot_streams(lots), strict=True):
                    if stream:
                        queue.put_nowait(stream)
        finally:
            await blocks.aclose()
            for queue in queues:
                queue.put_nowait(None)

    async def write(queue: asyncio.Queue[list[Any] | None]) -> tuple[int, int]:
        lots, lot_points = 0, 0
        stream = await queue.get()
        if stream is None:
            return 0, 0
        async with db.pool.acquire() as connection:
            while stream is not None:
                for start in range(0, len(stream), size):
                    chunk = stream[start : start + size]
                    written, written_points = await _write_lots(
                        connection, program_id, source, now, actor_key_id, chunk
                    )
                    lots, lot_points = lots + written, lot_points + written_points
                    bar.advance(len(chunk))
                stream = await queue.get()
        return lots, lot_points

    async with asyncio.TaskGroup() as group:
        group.create_task(feed())
        tasks = [group.create_task(write(queue)) for queue in queues]
    return sum(task.result()[0] for task in tasks), sum(task.result()[1] for task in tasks)


async def _write_lots(
    connection: Any,
    program_id: int,
    source: str,
    now: datetime,
    actor_key_id: Any,
    chunk: list[tuple[int, str, int, datetime, datetime | None]],
) -> tuple[int, int]:
    """One chunk of lots in its own transaction. A concurrent run of the same
    file may write some of them between the check and the insert: the unique
    (program_id, idempotency_key) index then refuses the chunk (23505) once that
    run commits, and the chunk is filtered again and retried, leaving out what
    the other run wrote (each try waits for the run it met, so this ends). The
    first try looks nothing up again: the check found these keys free, and only
    a concurrent run can have taken one since."""
    # Oldest-earned first, so the lots' ids (FIFO's last tie-break) follow their age.
    ordered = sorted(chunk, key=lambda lot: lot[3])
    for attempt in range(1, CHUNK_ATTEMPTS + 1):
        try:
            async with connection.transaction():
                if attempt > 1:
                    # Lots the concurrent run wrote: left out.
                    taken = await repository.taken_entry_keys(
                        connection, program_id, [repository.row_key(source, lot[1]) for lot in ordered]
                    )
                    ordered = [lot for lot in ordered if repository.row_key(source, lot[1]) not in taken]
                    if not ordered:
                        return 0, 0
                written = await repository.import_lots(
                    connection,
                    program_id,
                    source,
                    now,
                    actor_key_id,
                    [uuid_utils.uuid7() for _ in ordered],  # Rust's UUIDs: a seventh of the compat ones' cost
                    ordered,
                    row_checks=ROW_CHECKS,
                )
                return written.lots, written.points
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name != ENTRY_KEY_INDEX or attempt == CHUNK_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


async def _members(connection: Any, program_id: int, names: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    unique = list(dict.fromkeys(names))
    for start in range(0, len(unique), LOOKUP):
        found.update(await repository.member_ids(connection, program_id, unique[start : start + LOOKUP]))
    return found


def _open_member(
    plan: _Plan, number: int, name: str, members: dict[str, int], closed: set[int]
) -> int | None:
    """The row's member, or None with the row failed: not in the program, or closed."""
    member = members.get(name)
    if member is None:
        plan.fail(number, "member", "member_not_found", f"no member {name} in this program")
    elif member in closed:
        plan.fail(number, "member", "member_closed", f"member {name} is closed and accepts nothing new")
        return None
    return member


async def _erased(connection: Any, program_id: int, names: list[str]) -> set[str]:
    """Which of these external ids belonged to a member whose personal data was erased:
    their pseudonym names a member of the program (as enrolment refuses them)."""
    key = await programs.erasure_key_if_any(connection, program_id)
    if key is None:
        return set()
    by_pseudonym = {programs.pseudonym(key, name): name for name in names}
    found = await _members(connection, program_id, list(by_pseudonym))
    return {by_pseudonym[pseudonym] for pseudonym in found}


async def _check_members(connection: Any, program_id: int, plan: _Plan, now: datetime) -> None:
    rows: list[tuple[int, MemberRow]] = plan.valid
    existing = await _members(connection, program_id, [row.external_id for _, row in rows])
    erased = await _erased(connection, program_id, [row.external_id for _, row in rows])
    seen: set[str] = set()
    for number, row in rows:
        if row.external_id in seen:
            plan.fail(
                number, "external_id", "member_exists_in_file", f"{row.external_id} is in the file twice"
            )
            continue
        seen.add(row.external_id)
        if row.external_id in existing:
            plan.skipped += 1
            continue
        if row.external_id.startswith(programs.PSEUDONYM_PREFIX):
            plan.fail(
                number,
                "external_id",
                "invalid",
                f"must not start with {programs.PSEUDONYM_PREFIX} (erased members' pseudonyms)",
            )
            continue
        if row.external_id in erased:
            # an erased customer's old id, imported again by accident (app.privacy)
            plan.fail(
                number,
                "external_id",
                "member_erased",
                f"member {row.external_id} was erased from this program; its id cannot be enrolled again",
            )
            continue
        enrolled_at = (row.enrolled_at or now).astimezone(UTC)
        if enrolled_at > now:
            plan.fail(number, "enrolled_at", "in_future", "must not be in the future")
            continue
        if row.referred_by is not None and row.referred_by not in existing and row.referred_by not in seen:
            referrers = await repository.member_ids(connection, program_id, [row.referred_by])
            if not referrers:
                plan.fail(
                    number,
                    "referred_by",
                    "referrer_not_found",
                    f"no member {row.referred_by} in the program or earlier in the file",
                )
                continue
        plan.write.append((row.external_id, row.birthday, enrolled_at, row.metadata, row.referred_by))
        plan.members.add(row.external_id)


@dataclass(slots=True)
class _LotBlocks:
    """A lots file's rows, as read, in blocks (BLOCK), with what checking them
    needs from the whole file, looked up before anything is written: the members
    it names, which are closed, and the references this source imported before;
    and the references of the rows checked so far (a reference's first valid row
    is imported, any later one refused)."""

    members: dict[str, int]
    closed: set[int]
    taken: set[str]
    seen: set[str]
    blocks: list[list[tuple[int, Any]]]


def _stripped(value: Any) -> str | None:
    """What a text field holds once its model reads and strips it (None: not
    text): Python strips every character pydantic does, and \x1c-\x1f, which
    no id or reference may hold."""
    if isinstance(value, str):
        return str(value).strip()
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode().strip()
        except UnicodeDecodeError:
            return None
    return None


def _storable(reference: str) -> bool:
    """A reference the ledger could hold, so worth looking up (the rows are not
    parsed yet): as ShortText allows (1 to 128 characters, no control
    characters) and valid UTF-8 (a lone surrogate from a JSON escape is not,
    and the model refuses it). A NUL or a surrogate sent to PostgreSQL fails the
    whole statement."""
    if len(reference) > ID_MAX_LENGTH or not _NO_CONTROL.fullmatch(reference):
        return False
    if reference.isascii():
        return True
    try:
        reference.encode()
    except UnicodeEncodeError:
        return False
    return True


async def _lot_blocks(connection: Any, program_id: int, source: str, plan: _Plan) -> _LotBlocks:
    """The rows of a lots file (plan.raw) put in blocks. A block holds every row
    of its members (by member id; (id // WRITERS) so each block's members spread
    over the writers, whose streams go by id % WRITERS), except that block 0,
    checked first, holds every row whose reference is in the file more than
    once and every row of their members, in file order (so a reference's first
    valid row is the one imported whichever member it names, and each member's
    lots stay in one block), and every row whose member is unknown."""
    rows = plan.raw
    names: list[str | None] = []
    references: list[str | None] = []
    for _, raw in rows:
        if type(raw) is dict or isinstance(raw, Mapping):
            name = _stripped(raw.get("member"))
            names.append(name if name is not None and is_member_id(name) else None)
            references.append(_stripped(raw.get("lot_ref")))
        else:
            names.append(None)
            references.append(None)
    members = await _members(connection, program_id, [name for name in names if name is not None])
    closed = await repository.closed_members(connection, program_id, list(members.values()))
    # Looked up before anything is written, never between blocks: the import grows
    # the program's entries, and with statistics from before it (no entries)
    # PostgreSQL scanned every entry of the program for each batch of keys
    # instead of probing the key index (a 1,000,000-lot run outlasted the
    # statement timeout). A concurrent run's keys are the writers' concern.
    known = [reference for reference in references if reference is not None and _storable(reference)]
    taken: set[str] = set()
    prefix = len(repository.row_key(source, ""))
    for start in range(0, len(known), LOOKUP):
        keys = await repository.taken_entry_keys(
            connection,
            program_id,
            [repository.row_key(source, reference) for reference in known[start : start + LOOKUP]],
        )
        taken.update(key[prefix:] for key in keys)
    counted = Counter(reference for reference in references if reference is not None)
    repeated = [reference is not None and counted[reference] > 1 for reference in references]
    involved = {name for name, twice in zip(names, repeated, strict=True) if twice}
    count = max(1, -(-len(rows) // BLOCK))
    blocks: list[list[tuple[int, Any]]] = [[] for _ in range(count)]
    for row, name, twice in zip(rows, names, repeated, strict=True):
        member = members.get(name) if name is not None else None
        if member is None or twice or name in involved:
            blocks[0].append(row)
        else:
            blocks[member // WRITERS % count].append(row)
    return _LotBlocks(members, closed, taken, set(), [block for block in blocks if block])


def _check_lots(
    plan: _Plan, now: datetime, rules: Any, lots: _LotBlocks, rows: list[tuple[int, Any]]
) -> list[Any]:
    """Parse and check lot rows of a block (in Python alone: this runs while the
    writers write): the failed ones into the plan's errors, the ones already imported
    counted skipped, and the rest returned to be written (and added to the
    plan's)."""
    # points by expiry month, keyed (year, month) while counting (formatting each
    # lot's month was a tenth of checking it)
    by_month: dict[tuple[int, int] | None, int] = {}
    write: list[Any] = []
    seen = lots.seen
    for number, row in _parse_lots(rows, plan):
        if row.lot_ref in seen:
            plan.fail(number, "lot_ref", "duplicate_ref", f"lot {row.lot_ref} is in the file twice")
            continue
        seen.add(row.lot_ref)
        member = _open_member(plan, number, row.member, lots.members, lots.closed)
        if member is None:
            continue
        earned_at = row.earned_at.astimezone(UTC)
        if earned_at > now:
            plan.fail(number, "earned_at", "in_future", "must not be in the future")
            continue
        # No date of its own: the rules' policy, as if the lot had been earned then.
        expires_at = row.expires_at if row.expires_at is not None else lot_expiry(rules, earned_at)
        expires_at = None if expires_at is None else expires_at.astimezone(UTC)
        if expires_at is not None and expires_at <= earned_at:
            plan.fail(number, "expires_at", "expires_before_earned", "must be after earned_at")
            continue
        if row.lot_ref in lots.taken:
            plan.skipped += 1
            continue
        if expires_at is not None and expires_at <= now:
            plan.fail(
                number,
                "expires_at",
                "lot_expired",
                f"the lot of {row.points} points expired at {expires_at.isoformat().replace('+00:00', 'Z')}",
            )
            continue
        write.append((member, row.lot_ref, row.points, earned_at, expires_at))
        plan.points += row.points
        plan.members.add(member)
        month = None if expires_at is None else (expires_at.year, expires_at.month)
        by_month[month] = by_month.get(month, 0) + row.points
    for month, month_points in by_month.items():
        key = "never" if month is None else f"{month[0]:04d}-{month[1]:02d}"
        plan.by_month[key] = plan.by_month.get(key, 0) + month_points
    plan.write += write
    return write


async def _check_orders(connection: Any, program_id: int, plan: _Plan, now: datetime, rules: Any) -> None:
    rows: list[tuple[int, OrderRow]] = plan.valid
    members = await _members(connection, program_id, [row.member for _, row in rows])
    closed = await repository.closed_members(connection, program_id, list(members.values()))
    existing: set[str] = set()
    for start in range(0, len(rows), LOOKUP):
        existing |= await repository.existing_orders(
            connection, program_id, [row.order_id for _, row in rows[start : start + LOOKUP]]
        )
    seen: set[str] = set()
    for number, row in rows:
        if row.order_id in seen:
            plan.fail(number, "order_id", "duplicate_ref", f"order {row.order_id} is in the file twice")
            continue
        seen.add(row.order_id)
        member = _open_member(plan, number, row.member, members, closed)
        if member is None:
            continue
        paid_at = row.paid_at.astimezone(UTC)
        if paid_at > now:
            plan.fail(number, "paid_at", "in_future", "must not be in the future")
            continue
        if row.order_id in existing:
            plan.skipped += 1
            continue
        lines = [line.model_dump(mode="json", exclude_none=True) for line in row.lines or []]
        plan.write.append(
            (
                row.order_id,
                member,
                paid_at,
                local_time(rules, paid_at).date(),
                row.total.currency,
                row.total.amount,
                row.channel,
                lines,
            )
        )
        plan.members.add(member)


async def _check_tiers(
    connection: Any, program_id: int, source: str, plan: _Plan, now: datetime, rules: Any
) -> None:
    rows: list[tuple[int, TierRow]] = plan.valid
    members = await _members(connection, program_id, [row.member for _, row in rows])
    closed = await repository.closed_members(connection, program_id, list(members.values()))
    done = await repository.imported_tiers(
        connection, program_id, list(members.values()), repository.row_key(source, "tiers")
    )
    codes = {tier.code for tier in rules.tiers}
    seen: set[str] = set()
    for number, row in rows:
        if row.member in seen:
            plan.fail(number, "member", "duplicate_ref", f"member {row.member} is in the file twice")
            continue
        seen.add(row.member)
        member = _open_member(plan, number, row.member, members, closed)
        if member is None:
            continue
        if row.tier not in codes:
            plan.fail(number, "tier", "tier_unknown", f"the active rules have no tier {row.tier}")
            continue
        since = row.since.astimezone(UTC)
        if since > now:
            plan.fail(number, "since", "in_future", "must not be in the future")
            continue
        term_ends_at = None if row.term_ends_at is None else row.term_ends_at.astimezone(UTC)
        if term_ends_at is not None and term_ends_at <= since:
            plan.fail(number, "term_ends_at", "invalid", "must be after since")
            continue
        if member in done:
            plan.skipped += 1
            continue
        plan.write.append((member, row.tier, since, term_ends_at))
        plan.members.add(member)
