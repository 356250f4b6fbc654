"""The lots, rebuilt from the ledger alone: `verify` compares them with point_lot.

This is a second, independent statement of the rules ledger_apply_lots() keeps in
SQL (app/sql/functions/ledger_apply_lots.sql); when the two disagree,
one of them is wrong, or the table was changed behind the ledger's back."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from app.db import Connection, stream

# Every entry that changed some member's available points, in commit order: the
# same history ledger_rebuild_lots() replays (app/sql/functions/ledger_lot_changes.sql).
ENTRIES = """
SELECT entry_id AS id, source_entry_id AS source, expires_at, member_ids, changes
  FROM ledger_lot_changes()
"""

STORED = """
SELECT member_id, entry_id, expires_at, points, remaining FROM point_lot ORDER BY member_id, id
"""


_EARLIEST = datetime.min.replace(tzinfo=UTC)


@dataclass(slots=True)
class Lot:
    seq: int  # creation order, like point_lot.id
    entry_id: uuid.UUID
    expires_at: datetime | None
    points: int
    remaining: int

    def key(self) -> tuple[uuid.UUID, datetime | None, int, int]:
        return (self.entry_id, self.expires_at, self.points, self.remaining)


@dataclass(slots=True)
class _Taken:
    expires_at: datetime | None
    points: int


def _fifo(lot: Lot, source: uuid.UUID | None) -> tuple[bool, bool, datetime, int]:
    # The source's own lots first, then soonest expiry, no expiry last, then age.
    return (lot.entry_id != source, lot.expires_at is None, lot.expires_at or _EARLIEST, lot.seq)


def _latest_first(lot: Lot) -> tuple[bool, datetime, int]:
    # Sorted in reverse: no expiry first, then latest expiry, then youngest.
    return (lot.expires_at is None, lot.expires_at or _EARLIEST, lot.seq)


@dataclass(slots=True)
class LotBook:
    """Every member's lots, as the ledger's entries make them, applied in commit order."""

    lots: dict[int, list[Lot]] = field(default_factory=dict)
    # (entry, member) -> what that entry took from the member's lots and kept: lot seq -> points
    uses: dict[tuple[uuid.UUID, int], dict[int, int]] = field(default_factory=dict)
    _seq: int = 0

    def _new(self, member: int, entry: uuid.UUID, points: int, expires_at: datetime | None) -> None:
        self._seq += 1
        self.lots.setdefault(member, []).append(Lot(self._seq, entry, expires_at, points, points))

    def apply(
        self,
        entry: uuid.UUID,
        source: uuid.UUID | None,
        expires_at: datetime | None,
        changes: list[tuple[int, int]],
    ) -> None:
        """One entry: `changes` are (member id, change of available points), by member id."""
        taken: list[_Taken] = []
        for member, change in changes:
            if change >= 0:
                continue
            need = -change
            uses = self.uses.setdefault((entry, member), {})
            live = [lot for lot in self.lots.get(member, []) if lot.remaining > 0]
            for lot in sorted(live, key=lambda lot: _fifo(lot, source)):
                take = min(lot.remaining, need)
                lot.remaining -= take
                uses[lot.seq] = uses.get(lot.seq, 0) + take
                if taken and taken[-1].expires_at == lot.expires_at:
                    taken[-1].points += take
                else:
                    taken.append(_Taken(lot.expires_at, take))
                need -= take
                if need == 0:
                    break
            if need:
                raise ValueError(f"entry {entry} takes more than member {member}'s lots hold")
        position = 0
        for member, change in changes:
            if change <= 0:
                continue
            need = change
            if source is not None:
                given = self.uses.get((source, member), {})
                mine = [lot for lot in self.lots.get(member, []) if given.get(lot.seq, 0) > 0]
                for lot in sorted(mine, key=_latest_first, reverse=True):
                    back = min(given[lot.seq], need)
                    given[lot.seq] -= back
                    lot.remaining += back
                    need -= back
                    if need == 0:
                        break
            while need > 0 and position < len(taken):
                take = min(taken[position].points, need)
                self._new(member, entry, take, taken[position].expires_at)
                taken[position].points -= take
                if taken[position].points == 0:
                    position += 1
                need -= take
            if need > 0:
                self._new(member, entry, need, expires_at)


Change = tuple[uuid.UUID, uuid.UUID | None, datetime | None, list[tuple[int, int]]]


async def _entries(connection: Connection) -> AsyncIterator[Change]:
    async for row in stream(connection, ENTRIES, batch=2000):
        yield (
            row["id"],
            row["source"],
            row["expires_at"],
            list(zip(row["member_ids"], row["changes"], strict=True)),
        )


async def rebuild(connection: Connection) -> int:
    """Rewrite every lot from the ledger (ledger_rebuild_lots()); the lots written."""
    async with connection.transaction():
        return int(await connection.fetchval("SELECT ledger_rebuild_lots()"))


async def disagreements(connection: Connection) -> list[str]:
    """Members whose stored lots differ from the replay (inside the caller's transaction)."""
    book = LotBook()
    async for entry, source, expires_at, changes in _entries(connection):
        book.apply(entry, source, expires_at, changes)
    stored: dict[int, list[tuple[uuid.UUID, datetime | None, int, int]]] = {}
    async for row in stream(connection, STORED, batch=5000):
        stored.setdefault(row["member_id"], []).append(
            (row["entry_id"], row["expires_at"], row["points"], row["remaining"])
        )
    found = []
    for member in sorted(set(stored) | set(book.lots)):
        replayed = [lot.key() for lot in book.lots.get(member, [])]
        if stored.get(member, []) != replayed:
            found.append(f"member_id={member}, stored={stored.get(member, [])}, replayed={replayed}")
    return found
