"""The members' lots replayed from the ledger up to an instant, each lot keeping the
month its points were issued in (its cohort): the liability's points by expiry
month, and breakage by earn month, read from it.

The same rules as app/ledger/lots.py (which `verify` uses to check point_lot):
debits take the source entry's own lots first, then the soonest expiring; a
credit that undoes an entry gives back to the lots that entry took from; a
transfer's credit makes lots with the dates (and here the cohorts) of the lots
its debit took. Pure: no database."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Literal

from app.reports.categories import FORFEIT, USES

# What took points from a cohort: `moved` (a transfer, or its reversal) leaves the
# cohort whole, the receiver's lots keep it.
Taking = Literal["taken_back", "redeemed", "expired", "forfeited", "moved"]

_EARLIEST = datetime.min.replace(tzinfo=UTC)


def taking(kind: str, reversed_kind: str | None) -> Taking:
    """What a debit of `kind` is, for the cohorts it takes from."""
    if kind == "transfer" or (kind == "reversal" and reversed_kind == "transfer"):
        return "moved"
    if kind == FORFEIT:
        return "forfeited"
    use = USES.get(kind)
    if use == "redeemed" or use == "expired":
        return use
    # refunds, reversals of credits, negative adjustments: points issued taken back
    return "taken_back"


@dataclass(slots=True)
class Lot:
    member: int
    seq: int
    entry: uuid.UUID
    cohort: str
    expires_at: datetime | None
    remaining: int
    listed: bool = True  # in its member's `live` list


@dataclass(slots=True)
class Cohort:
    issued: int = 0
    taken_back: int = 0
    redeemed: int = 0
    expired: int = 0
    forfeited: int = 0

    def add(self, what: Taking, points: int) -> None:
        if what != "moved":
            setattr(self, what, getattr(self, what) + points)


NEVER = "never"


@dataclass(slots=True)
class CohortBook:
    lots: dict[int, list[Lot]] = field(default_factory=dict)
    # each member's lots that may have points left (pruned as debits find them
    # empty, given back to when a credit refills one): a debit looks through these,
    # not through every lot the member ever had (a member with thousands of lots
    # made the replay quadratic)
    live: dict[int, list[Lot]] = field(default_factory=dict)
    cohorts: dict[str, Cohort] = field(default_factory=dict)
    # (entry, member) -> lot seq -> points that entry took and kept
    uses: dict[tuple[uuid.UUID, int], dict[int, int]] = field(default_factory=dict)
    # what each debit entry was, so that a credit undoing it gives back to the same category
    takings: dict[uuid.UUID, Taking] = field(default_factory=dict)
    # When set, every change is also added here as (figure, key) -> points, the
    # daily rollups' figures (app/reports/rollups.py): `cohort.<what>` by cohort,
    # `remaining` by cohort, `expiring` by the lot's expiry month (`expiry_month`).
    changes: dict[tuple[str, str], int] | None = None
    expiry_month: Callable[[datetime], str] | None = None
    # When set, the lots and uses changed since the last versions() (the rollups'
    # kept lots, by day): each with what it held before, None for a new lot
    changed: Changed | None = None
    _seq: int = 0

    def cohort(self, name: str) -> Cohort:
        return self.cohorts.setdefault(name, Cohort())

    def _count(self, cohort: str, what: Taking | Literal["issued"], points: int) -> None:
        if what == "issued":
            self.cohort(cohort).issued += points
        else:
            self.cohort(cohort).add(what, points)
        if self.changes is not None and what != "moved":
            key = ("cohort." + what, cohort)
            self.changes[key] = self.changes.get(key, 0) + points

    def _remaining(self, lot: Lot, points: int) -> None:
        if self.changed is not None:
            self.changed.lots.setdefault((lot.member, lot.seq), (lot, lot.remaining))
        lot.remaining += points
        if self.changes is not None:
            changes = self.changes
            changes["remaining", lot.cohort] = changes.get(("remaining", lot.cohort), 0) + points
            month = NEVER
            if lot.expires_at is not None and self.expiry_month is not None:
                month = self.expiry_month(lot.expires_at)
            changes["expiring", month] = changes.get(("expiring", month), 0) + points

    def _new(
        self, member: int, entry: uuid.UUID, cohort: str, points: int, expires_at: datetime | None
    ) -> None:
        self._seq += 1
        lot = Lot(member, self._seq, entry, cohort, expires_at, 0)
        if self.changed is not None:
            self.changed.lots[member, lot.seq] = (lot, None)
        self._remaining(lot, points)
        self.lots.setdefault(member, []).append(lot)
        self.live.setdefault(member, []).append(lot)

    def _use(self, entry: uuid.UUID, member: int, uses: dict[int, int], seq: int, points: int) -> None:
        """The points `entry` holds of the member's lot `seq` change by `points`."""
        held = uses.get(seq, 0)
        if self.changed is not None:
            self.changed.uses.setdefault((member, entry, seq), held)
        uses[seq] = held + points

    def apply(
        self,
        entry: uuid.UUID,
        cohort: str,
        what: Taking,
        source: uuid.UUID | None,
        expires_at: datetime | None,
        changes: list[tuple[int, int]],
    ) -> None:
        """One entry in commit order: `cohort` names the month it was recorded in,
        `what` what its debits are, `changes` (member id, change of available points)."""
        taken: list[tuple[str, datetime | None, int]] = []
        for member, change in changes:
            if change >= 0:
                continue
            need = -change
            uses = self.uses.setdefault((entry, member), {})
            live = []
            for lot in self.live.get(member, []):
                if lot.remaining > 0:
                    live.append(lot)
                else:
                    lot.listed = False
            self.live[member] = live[:]
            # the source's own lots first (a refund takes its order's points), then
            # the soonest expiring, no expiry last, then the oldest
            live.sort(
                key=lambda lot: (
                    lot.entry != source,
                    lot.expires_at is None,
                    lot.expires_at or _EARLIEST,
                    lot.seq,
                )
            )
            for lot in live:
                take = min(lot.remaining, need)
                self._remaining(lot, -take)
                self._use(entry, member, uses, lot.seq, take)
                self._count(lot.cohort, what, take)
                taken.append((lot.cohort, lot.expires_at, take))
                need -= take
                if need == 0:
                    break
        self.takings[entry] = what
        position = 0
        for member, change in changes:
            if change <= 0:
                continue
            need = change
            if source is not None:
                given = self.uses.get((source, member), {})
                mine = [lot for lot in self.lots.get(member, []) if given.get(lot.seq, 0) > 0]
                mine.sort(key=lambda lot: (lot.expires_at is None, lot.expires_at or _EARLIEST, lot.seq))
                for lot in reversed(mine):
                    back = min(given[lot.seq], need)
                    self._use(source, member, given, lot.seq, -back)
                    self._remaining(lot, back)
                    if not lot.listed:
                        lot.listed = True
                        self.live.setdefault(member, []).append(lot)
                    self._count(lot.cohort, self.takings.get(source, "taken_back"), -back)
                    need -= back
                    if need == 0:
                        break
            while need > 0 and position < len(taken):
                lot_cohort, lot_expires, points = taken[position]
                take = min(points, need)
                self._new(member, entry, lot_cohort, take, lot_expires)
                if take == points:
                    position += 1
                else:
                    taken[position] = (lot_cohort, lot_expires, points - take)
                need -= take
            if need > 0:
                self._new(member, entry, cohort, need, expires_at)
                self._count(cohort, "issued", need)

    def remaining(self) -> list[Lot]:
        return [lot for lots in self.lots.values() for lot in lots if lot.remaining > 0]

    # ------------------------------------------------------------ kept state
    # What a replay needs to go on from a day's end for some members (the rollups
    # keep it, report_lot and report_lot_use, as versions by day): each member's
    # lots and the points entries took of them and may give back. Only what changed
    # on a day is written for it; a member's state at a day's end is the last
    # version of each of its lots and uses on or before that day.

    def restore(self, lots: Iterable[KeptLot], uses: Iterable[KeptUse]) -> None:
        """Take up members' lots and uses as kept at a day's end (each lot or use
        once: its last version by then). New lots number after every restored
        one, so each member's lots keep their order."""
        for member, seq, entry, cohort, expires_at, remaining in sorted(lots, key=lambda lot: lot[:2]):
            lot = Lot(member, seq, entry, cohort, expires_at, remaining, listed=remaining > 0)
            self.lots.setdefault(member, []).append(lot)
            if remaining > 0:
                self.live.setdefault(member, []).append(lot)
            self._seq = max(self._seq, seq)
        for member, entry, seq, what, points in uses:
            self.uses.setdefault((entry, member), {})[seq] = points
            self.takings[entry] = what

    def versions(self, day: date) -> tuple[list[LotVersion], list[UseVersion]]:
        """The lots and uses that changed since the last call (or restore()), as
        versions of `day`: a new lot always, any other only if it holds another
        number of points than before."""
        changed = self.changed
        if changed is None:
            return [], []
        lots: list[LotVersion] = [
            (member, seq, day, lot.entry, lot.cohort, lot.expires_at, lot.remaining)
            for (member, seq), (lot, before) in sorted(changed.lots.items(), key=lambda item: item[0])
            if before is None or lot.remaining != before
        ]
        uses: list[UseVersion] = []
        for (member, entry, seq), before in sorted(changed.uses.items(), key=lambda item: item[0][0]):
            points = self.uses[entry, member][seq]
            if points != before:
                uses.append((member, entry, seq, day, self.takings.get(entry, "taken_back"), points))
        self.changed = Changed()
        return lots, uses


@dataclass(slots=True)
class Changed:
    """What a book changed since its last versions(): (member, seq) -> the lot and
    its points before (None: new); (member, entry, seq) -> the points held before."""

    lots: dict[tuple[int, int], tuple[Lot, int | None]] = field(default_factory=dict)
    uses: dict[tuple[int, uuid.UUID, int], int] = field(default_factory=dict)


# (member, seq, entry, cohort, expires_at, remaining) and (member, entry, lot seq,
# what the entry was, points it holds of that lot): a member's state at a day's end
KeptLot = tuple[int, int, uuid.UUID, str, datetime | None, int]
KeptUse = tuple[int, uuid.UUID, int, Taking, int]
# the same with the day of the version: (member, seq, day, entry, cohort,
# expires_at, remaining) and (member, entry, seq, day, what, points)
LotVersion = tuple[int, int, date, uuid.UUID, str, datetime | None, int]
UseVersion = tuple[int, uuid.UUID, int, date, Taking, int]


def comparable(lots: Iterable[LotVersion], uses: Iterable[UseVersion]) -> dict[int, set[Versioned]]:
    """Each member's versions with its lots numbered in order from 0: two replays
    number lots differently (a kept state goes on from its own last number), but
    the same history has the same versions of the same lots in the same order."""
    lots, uses = list(lots), list(uses)
    seqs: dict[int, set[int]] = {}
    for member, seq, *_ in lots:
        seqs.setdefault(member, set()).add(seq)
    rank = {(member, seq): index for member, found in seqs.items() for index, seq in enumerate(sorted(found))}
    out: dict[int, set[Versioned]] = {}
    for member, seq, day, entry, cohort, expires_at, remaining in lots:
        lot = (day, "lot", rank[member, seq], entry, cohort, expires_at, remaining)
        out.setdefault(member, set()).add(lot)
    for member, entry, seq, day, what, points in uses:
        use = (day, "use", rank.get((member, seq), -1), entry, what, None, points)
        out.setdefault(member, set()).add(use)
    return out


# a version as comparable() gives it: (day, "lot" or "use", the lot's rank, entry, ...)
Versioned = tuple[date, str, int, uuid.UUID, str, datetime | None, int]
