"""The tier state machine: where a member's tier stands after term ends, grace ends,
override ends and upgrades, after a keep with points or an operator's override, and
the decision that records it.

Pure, like the rest of the rules (app/rules/tiers.py gives the verdicts on one
window's activity; this module strings them along time): the service reads the
member's state and the activity of the windows asked for, passes them in with every
instant (and every id), and writes the `TierDecision` it gets back through tier_apply().
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from app.rules.document import RulesDocument, Tier

# One notion of rank for "no tier" and for a code these rules no longer have (0,
# below every tier), shared with the verdicts.
from app.rules.tiers import (
    Activity,
    _rank,
    keep_price,
    qualified,
    retention,
    term_end,
    upgrade,
    window_start,
)

__all__ = [
    "Change",
    "KeepRefused",
    "Kept",
    "Outcome",
    "TierDecision",
    "TierState",
    "Window",
    "best_upgrade",
    "decision",
    "evaluate",
    "keep_with_points",
    "nothing_above",
    "operator_override",
    "upgrade_windows",
    "window",
]


@dataclass(frozen=True, slots=True)
class TierState:
    """A member's tier as stored: no tier is `tier` None. A pinned tier (an operator's,
    without an end) is never judged; one with `override_until` is judged from then."""

    tier: str | None = None
    since: datetime | None = None
    term_ends_at: datetime | None = None
    grace_ends_at: datetime | None = None
    override_until: datetime | None = None
    pinned: bool = False

    def as_json(self) -> dict[str, Any]:
        """The `state` of tier_apply()'s element."""
        return {
            "tier": self.tier,
            "since": _iso(self.since),
            "term_ends_at": _iso(self.term_ends_at),
            "grace_ends_at": _iso(self.grace_ends_at),
            "override_until": _iso(self.override_until),
            "pinned": self.pinned,
        }


@dataclass(frozen=True, slots=True)
class Window:
    """An activity window [start, end]; `start` None for a lifetime window."""

    start: datetime | None
    end: datetime


@dataclass(frozen=True, slots=True)
class Change:
    """One history row: a tier change (or renewal) and the activity that decided it."""

    before: str | None
    after: str | None
    reason: str
    effective_at: datetime
    term_ends_at: datetime | None
    activity: Activity | None = None
    window: Window | None = None
    entry_id: uuid.UUID | None = None
    actor_key_id: uuid.UUID | None = None
    note: str | None = None

    def as_json(self) -> dict[str, Any]:
        """An element of the `changes` of tier_apply()'s element."""
        return {
            "from": self.before,
            "to": self.after,
            "reason": self.reason,
            "effective_at": _iso(self.effective_at),
            "term_ends_at": _iso(self.term_ends_at),
            "activity": None if self.activity is None else _activity_json(self.activity, self.window),
            "entry_id": None if self.entry_id is None else str(self.entry_id),
            "actor_key_id": None if self.actor_key_id is None else str(self.actor_key_id),
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    """Where `evaluate` got to: the state, the changes on the way there, and, when it
    could not finish, the end of the window whose activity it needs to go on."""

    state: TierState
    changes: tuple[Change, ...] = ()
    needs: datetime | None = None


@dataclass(frozen=True, slots=True)
class TierDecision:
    """A member's new tier state and the changes that led there, made on the state
    that held `before` (tier_apply() refuses it if the member's tier is another by then)."""

    member_id: int
    before: str | None
    state: TierState
    changes: tuple[Change, ...]

    def as_json(self) -> dict[str, Any]:
        """The element tier_apply() (and ledger_post_order()'s `p_tier`) reads."""
        return {
            "member_id": self.member_id,
            "from": self.before,
            "state": self.state.as_json(),
            "changes": [change.as_json() for change in self.changes],
        }


def window(rules: RulesDocument, end: datetime) -> Window:
    """The activity window that ends at `end`."""
    return Window(window_start(rules, end), end)


def evaluate(
    rules: RulesDocument, state: TierState, as_of: datetime, known: Mapping[datetime, Activity]
) -> Outcome:
    """Where the member's tier stands at `as_of`, judging every term end, grace end
    and override end up to then in order (the job may run weeks late: each is judged
    as of its own time), then upgrading if the activity up to `as_of` qualifies for
    more. `known` maps a window's end to its activity; when one is missing the
    outcome says which (`needs`), and the caller asks again with it."""
    changes: list[Change] = []
    current = state
    for _ in range(1000):  # a term is at least a month: this is centuries
        if current.override_until is not None and current.override_until <= as_of:
            # The override ended: from here the tier is judged as at a term's end.
            current = replace(current, term_ends_at=current.override_until, override_until=None, pinned=False)
        if (
            current.tier is None
            or current.pinned
            or current.override_until is not None
            or current.term_ends_at is None
            or current.term_ends_at > as_of
        ):
            break
        end = current.term_ends_at
        activity = known.get(end)
        if activity is None:
            return Outcome(current, tuple(changes), needs=end)
        judged = retention(rules, current.tier, activity)
        if judged.keeps:
            renewed = term_end(rules, end)
            changes.append(
                Change(current.tier, current.tier, "retained", end, renewed, activity, window(rules, end))
            )
            current = replace(current, term_ends_at=renewed, grace_ends_at=None)
            continue
        drop_at = _grace_end(rules, current.grace_ends_at, end)
        if drop_at > as_of:
            current = replace(current, grace_ends_at=drop_at)  # missed: in grace until then
            break
        if drop_at != end:
            # Qualifying again during the grace keeps the tier, however late the job runs.
            at_drop = known.get(drop_at)
            if at_drop is None:
                return Outcome(current, tuple(changes), needs=drop_at)
            again = qualified(rules, at_drop)
            if again is not None and again.rank >= _rank(rules, current.tier):
                renewed = term_end(rules, end)
                changes.append(
                    Change(
                        current.tier,
                        current.tier,
                        "retained",
                        drop_at,
                        renewed,
                        at_drop,
                        window(rules, drop_at),
                    )
                )
                current = replace(current, term_ends_at=renewed, grace_ends_at=None)
                continue
        target = None if judged.target is None else judged.target.code
        ends = None if target is None else term_end(rules, drop_at)
        changes.append(
            Change(current.tier, target, "downgraded", drop_at, ends, activity, window(rules, end))
        )
        current = TierState(target, None if target is None else drop_at, ends)
    now_activity = known.get(as_of)
    if now_activity is None:
        return Outcome(current, tuple(changes), needs=as_of)
    reached = qualified(rules, now_activity)
    if reached is not None and (
        reached.rank > _rank(rules, current.tier)
        or (current.grace_ends_at is not None and reached.code == current.tier)
    ):
        # Up (or, in grace, qualifying again for the same tier): a new term from now.
        ends = term_end(rules, as_of)
        reason = "qualified" if reached.code != current.tier else "retained"
        changes.append(
            Change(current.tier, reached.code, reason, as_of, ends, now_activity, window(rules, as_of))
        )
        current = TierState(reached.code, as_of if reached.code != current.tier else current.since, ends)
    return Outcome(current, tuple(changes))


def decision(member_id: int, before: TierState, outcome: Outcome) -> TierDecision | None:
    """The decision that records an outcome reached from `before`; None when nothing changed."""
    if outcome.state == before and not outcome.changes:
        return None
    return TierDecision(member_id, before.tier, outcome.state, outcome.changes)


def nothing_above(rules: RulesDocument, current: str | None) -> bool:
    """True when no activity can upgrade a member holding `current`: the rules have no
    tiers, or none ranks above it (a code these rules dropped ranks below them all)."""
    return not rules.tiers or _rank(rules, current) == max(tier.rank for tier in rules.tiers)


def upgrade_windows(rules: RulesDocument, at: datetime, now: datetime) -> tuple[Window, ...]:
    """The windows an order or event at `at` is judged on for an upgrade: the one
    ending at `at` (orders posted in the order they were paid, an import say, climb
    as they did then) and the one ending `now` (an order reported late completes
    what later ones began); one when they are the same instant."""
    return tuple(window(rules, end) for end in sorted({at, now}))


def best_upgrade(
    rules: RulesDocument,
    *,
    member_id: int,
    current: str | None,
    at: datetime,
    judged: Iterable[tuple[Window, Activity]],
    extra: Activity | None = None,
    entry_id: uuid.UUID | None = None,
) -> TierDecision | None:
    """The upgrade an order or event at `at` makes for a member holding `current`, if
    the activity of one of the `judged` windows (`upgrade_windows`, with what each
    holds as recorded, earliest first) qualifies them for a higher tier: the highest
    such tier, on the first window that reaches it. `extra` is the order's own activity when it is
    not yet recorded; it counts in each window that contains `at`."""
    best: tuple[Tier, Activity, Window] | None = None
    for judged_window, recorded in judged:
        activity = recorded
        if extra is not None and (judged_window.start is None or at >= judged_window.start):
            activity = Activity(
                activity.orders + extra.orders,
                activity.spend + extra.spend,
                activity.points + extra.points,
                activity.referrals + extra.referrals,
            )
        reached = upgrade(rules, current, activity)
        if reached is not None and (best is None or reached.rank > best[0].rank):
            best = (reached, activity, judged_window)
    if best is None:
        return None
    reached, activity, closed = best
    # The member qualified when that window closed: at the order itself, or, when
    # only the window up to now qualifies (the order came in late), now.
    since = closed.end
    ends = term_end(rules, since)
    change = Change(current, reached.code, "qualified", since, ends, activity, closed, entry_id=entry_id)
    return TierDecision(member_id, current, TierState(reached.code, since, ends), (change,))


@dataclass(frozen=True, slots=True)
class Kept:
    """A term moved forward with points: the points it costs, and the decision that
    records it (its one change names the entry that spends them)."""

    price: int
    decision: TierDecision

    @property
    def renewed(self) -> datetime:
        """The term's new end."""
        ends = self.decision.state.term_ends_at
        assert ends is not None  # a kept term always has an end
        return ends


@dataclass(frozen=True, slots=True)
class KeepRefused:
    """Why a member cannot keep their tier with points now: no tier, or none the
    program sells a renewal of (`not_for_sale`); a tier an operator set, which has
    no term to extend (`set_by_operator`); a term whose grace is over too (`ended`)."""

    reason: Literal["not_for_sale", "set_by_operator", "ended"]


def keep_with_points(
    rules: RulesDocument,
    *,
    member_id: int,
    state: TierState,
    now: datetime,
    entry_id: uuid.UUID,
) -> Kept | KeepRefused:
    """Spending the tier's `keep_with_points` at `now`: the term's end moves forward by
    `term_months` from where it was (not from `now`), and a grace in progress is over.
    Allowed during the term and its grace, whether or not the job has started the
    grace yet. `entry_id` is the entry that will spend the points."""
    price = None if state.tier is None else keep_price(rules, state.tier)
    if state.tier is None or price is None:
        return KeepRefused("not_for_sale")
    if state.pinned or state.override_until is not None or state.term_ends_at is None:
        return KeepRefused("set_by_operator")
    if now >= _grace_end(rules, state.grace_ends_at, state.term_ends_at):
        return KeepRefused("ended")
    renewed = term_end(rules, state.term_ends_at)
    after = replace(state, term_ends_at=renewed, grace_ends_at=None)
    change = Change(state.tier, state.tier, "kept_with_points", now, renewed, entry_id=entry_id)
    return Kept(price, TierDecision(member_id, state.tier, after, (change,)))


def operator_override(
    *,
    member_id: int,
    state: TierState,
    code: str | None,
    until: datetime | None,
    now: datetime,
    actor_key_id: uuid.UUID | None,
    note: str | None,
) -> TierDecision | None:
    """An operator setting a member's tier to `code` (None: no tier) at `now`. With
    `until`, the term ends then and the rules judge it from then as at a term's end;
    without, the tier is pinned: never judged, though an upgrade the member earns
    still applies. Keeping the tier keeps its `since`. None when the member's state is
    already exactly that (setting it again changes nothing). The caller checks that
    `code` is a tier of the active rules and `until` is after `now`."""
    held = until if code is not None else None  # no tier has no term
    after = TierState(
        code,
        None if code is None else (state.since if code == state.tier else now),
        held,
        None,
        held,
        code is not None and until is None,
    )
    if after == state:
        return None
    change = Change(
        state.tier, code, "override", now, after.term_ends_at, actor_key_id=actor_key_id, note=note
    )
    return TierDecision(member_id, state.tier, after, (change,))


def _grace_end(rules: RulesDocument, grace_ends_at: datetime | None, term_ends_at: datetime) -> datetime:
    # The grace the job recorded, or the one the policy gives a term ending then
    # (the job may not have reached the term's end yet).
    return grace_ends_at or term_ends_at + timedelta(days=rules.tier_policy.grace_days)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _activity_json(activity: Activity, window: Window | None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "orders": activity.orders,
        "spend": str(activity.spend),
        "points": activity.points,
    }
    if activity.referrals:
        # only under rules that count them (history rows read a missing key as 0)
        found["referrals"] = activity.referrals
    return {
        **found,
        "window_start": None if window is None else _iso(window.start),
        "window_end": None if window is None else _iso(window.end),
    }
