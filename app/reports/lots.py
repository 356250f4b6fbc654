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
from datetime import UTC, datetime
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
        lot = Lot(self._seq, entry, cohort, expires_at, 0)
        self._remaining(lot, points)
        self.lots.setdefault(member, []).append(lot)
        self.live.setdefault(member, []).append(lot)

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
                uses[lot.seq] = uses.get(lot.seq, 0) + take
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
                    given[lot.seq] -= back
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
    # What a replay needs to go on from here for some members (the rollups keep it
    # at the rolled days' end, report_lot and report_lot_use): each member's lots
    # that can still change (points left, or points an entry took and may give
    # back) and those takings. A lot with nothing left that no entry holds points
    # of never changes again, and is left out.

    def restore(self, lots: Iterable[KeptLot], uses: Iterable[KeptUse]) -> None:
        """Take up members' kept lots and uses (as holdings() gave them). New lots
        number after every restored one, so each member's lots keep their order."""
        for member, seq, entry, cohort, expires_at, remaining in sorted(lots, key=lambda lot: lot[:2]):
            lot = Lot(seq, entry, cohort, expires_at, remaining, listed=remaining > 0)
            self.lots.setdefault(member, []).append(lot)
            if remaining > 0:
                self.live.setdefault(member, []).append(lot)
            self._seq = max(self._seq, seq)
        for member, entry, seq, what, points in uses:
            self.uses.setdefault((entry, member), {})[seq] = points
            self.takings[entry] = what

    def holdings(self, members: Iterable[int]) -> tuple[list[KeptLot], list[KeptUse]]:
        """These members' lots and uses that can still change (restore()'s input)."""
        wanted = set(members)
        uses: list[KeptUse] = [
            (member, entry, seq, self.takings.get(entry, "taken_back"), points)
            for (entry, member), given in self.uses.items()
            if member in wanted
            for seq, points in given.items()
            if points > 0
        ]
        held = {(member, seq) for member, _, seq, _, _ in uses}
        lots: list[KeptLot] = [
            (member, lot.seq, lot.entry, lot.cohort, lot.expires_at, lot.remaining)
            for member in sorted(wanted)
            for lot in self.lots.get(member, [])
            if lot.remaining > 0 or (member, lot.seq) in held
        ]
        return lots, uses


# (member, seq, entry, cohort, expires_at, remaining) and (member, entry, lot seq,
# what the entry was, points it holds of that lot)
KeptLot = tuple[int, int, uuid.UUID, str, datetime | None, int]
KeptUse = tuple[int, uuid.UUID, int, Taking, int]


def comparable(lots: Iterable[KeptLot], uses: Iterable[KeptUse]) -> dict[int, tuple[object, ...]]:
    """Each member's kept state with lots numbered in order from 0: two replays
    number lots differently (a kept state goes on from its own last number), but
    the same state lists the same lots in the same order."""
    by_member: dict[int, list[KeptLot]] = {}
    for lot in sorted(lots, key=lambda lot: lot[:2]):
        by_member.setdefault(lot[0], []).append(lot)
    rank = {(lot[0], lot[1]): index for kept in by_member.values() for index, lot in enumerate(kept)}
    out: dict[int, tuple[object, ...]] = {
        member: (tuple(lot[2:] for lot in kept), ()) for member, kept in by_member.items()
    }
    member_uses: dict[int, list[tuple[object, ...]]] = {}
    for member, entry, seq, what, points in uses:
        member_uses.setdefault(member, []).append((str(entry), rank.get((member, seq), -1), what, points))
    for member, found in member_uses.items():
        out[member] = (out.get(member, ((), ()))[0], tuple(sorted(found)))
    return out
