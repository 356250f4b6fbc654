"""What a rules version's `limits` would have refused of the program's past awards,
redemptions, holds and transfers (the what-if simulation). Pure: the movements come
in, already in the order they were recorded, with their local day.

The replay counts as the service does (app/ledger/limits.py): a single award over
`award_max_points` is refused before anything is counted; daily limits count what
passed, per API key (awards) or per paying member (redemptions and holds when placed;
transfers out, their number and their points together), so a refused movement
counts for nothing; an award over `award_approval_above` would have waited for a
second key, and counts as if approved the same day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

from app.rules.document import Limits

MovementKind = Literal["award", "redemption", "hold", "transfer"]


@dataclass(frozen=True, slots=True)
class Movement:
    kind: MovementKind
    day: date  # the local day it was recorded, in the simulated rules' timezone
    points: int
    subject: str  # awards: the API key's subject; the rest: the paying member's


@dataclass(slots=True)
class LimitsReplay:
    awards: int = 0
    awards_refused: int = 0
    award_points_refused: int = 0
    awards_for_approval: int = 0
    redemptions: int = 0
    redemptions_refused: int = 0
    redeem_points_refused: int = 0
    transfers: int = 0
    transfers_refused: int = 0
    transfer_points_refused: int = 0


class LimitsReplayer:
    """Feeds movements one at a time, in recorded order, so a long period never has
    to be held in memory: only the current local day's counts are kept (a limit is
    per day, and days only move forward in recorded order)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.out = LimitsReplay()
        self._day: date | None = None
        self._used: dict[tuple[str, str], int] = {}

    def _take(self, charges: list[tuple[str, int | None, int]], subject: str) -> bool:
        """Count every charge (limit, allowed, amount) or none of them."""
        wanted = [(name, allowed, amount) for name, allowed, amount in charges if allowed is not None]
        if any(self._used.get((name, subject), 0) + amount > allowed for name, allowed, amount in wanted):
            return False
        for name, _, amount in wanted:
            self._used[name, subject] = self._used.get((name, subject), 0) + amount
        return True

    def feed(self, movement: Movement) -> None:
        if movement.day != self._day:
            if self._day is not None and movement.day < self._day:
                raise ValueError(f"movements out of recorded order: {movement.day} after {self._day}")
            self._day = movement.day
            self._used.clear()
        limits, out = self.limits, self.out
        if movement.kind == "award":
            out.awards += 1
            passed = (
                limits.award_max_points is None or movement.points <= limits.award_max_points
            ) and self._take(
                [("award_points_per_key_per_day", limits.award_points_per_key_per_day, movement.points)],
                movement.subject,
            )
            if not passed:
                out.awards_refused += 1
                out.award_points_refused += movement.points
            elif limits.award_approval_above is not None and movement.points > limits.award_approval_above:
                out.awards_for_approval += 1
        elif movement.kind == "transfer":
            out.transfers += 1
            if not self._take(
                [
                    ("transfers_per_member_per_day", limits.transfers_per_member_per_day, 1),
                    (
                        "transfer_points_per_member_per_day",
                        limits.transfer_points_per_member_per_day,
                        movement.points,
                    ),
                ],
                movement.subject,
            ):
                out.transfers_refused += 1
                out.transfer_points_refused += movement.points
        else:
            out.redemptions += 1
            if not self._take(
                [
                    (
                        "redeem_points_per_member_per_day",
                        limits.redeem_points_per_member_per_day,
                        movement.points,
                    )
                ],
                movement.subject,
            ):
                out.redemptions_refused += 1
                out.redeem_points_refused += movement.points
