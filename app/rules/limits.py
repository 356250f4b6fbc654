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

from collections.abc import Iterable
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


def replay_limits(limits: Limits, movements: Iterable[Movement]) -> LimitsReplay:
    out = LimitsReplay()
    used: dict[tuple[str, str, date], int] = {}

    def take(charges: list[tuple[str, int | None, int]], subject: str, day: date) -> bool:
        """Count every charge (limit, allowed, amount) or none of them."""
        wanted = [(name, allowed, amount) for name, allowed, amount in charges if allowed is not None]
        if any(used.get((name, subject, day), 0) + amount > allowed for name, allowed, amount in wanted):
            return False
        for name, _, amount in wanted:
            used[name, subject, day] = used.get((name, subject, day), 0) + amount
        return True

    for movement in movements:
        if movement.kind == "award":
            out.awards += 1
            passed = (limits.award_max_points is None or movement.points <= limits.award_max_points) and take(
                [("award_points_per_key_per_day", limits.award_points_per_key_per_day, movement.points)],
                movement.subject,
                movement.day,
            )
            if not passed:
                out.awards_refused += 1
                out.award_points_refused += movement.points
            elif limits.award_approval_above is not None and movement.points > limits.award_approval_above:
                out.awards_for_approval += 1
        elif movement.kind == "transfer":
            out.transfers += 1
            if not take(
                [
                    ("transfers_per_member_per_day", limits.transfers_per_member_per_day, 1),
                    (
                        "transfer_points_per_member_per_day",
                        limits.transfer_points_per_member_per_day,
                        movement.points,
                    ),
                ],
                movement.subject,
                movement.day,
            ):
                out.transfers_refused += 1
                out.transfer_points_refused += movement.points
        else:
            out.redemptions += 1
            if not take(
                [
                    (
                        "redeem_points_per_member_per_day",
                        limits.redeem_points_per_member_per_day,
                        movement.points,
                    )
                ],
                movement.subject,
                movement.day,
            ):
                out.redemptions_refused += 1
                out.redeem_points_refused += movement.points
    return out
