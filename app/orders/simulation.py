"""What-if: what a rules version (a draft, say) would have given the program's past
orders, beside what they did earn. Pure replay through the rules module over the
orders as recorded; nothing is written."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from zoneinfo import ZoneInfo

from app.context import AppContext
from app.db import Connection
from app.errors import ValidationFailed
from app.ledger import limits as ledger_limits
from app.orders import service as orders
from app.orders.schemas import (
    EventsSimulationOut,
    LimitsSimulationOut,
    RuleSplit,
    SimulationIn,
    SimulationOut,
    TierSimulationOut,
)
from app.principal import Principal
from app.rules import EventFacts, RulesDocument, RulesError, earn_event
from app.rules.budgets import Scope, budget_key, budget_limits, earn_within_budgets, section_path
from app.rules.document import uses_segments
from app.rules.events import StreakMark
from app.rules.limits import LimitsReplayer
from app.rulesets.service import RulesVersionNotFound
from app.tiers import service as tiers

# Orders replayed between two yields to the event loop (a few milliseconds' work).
YIELD_EVERY = 64


async def simulate(
    context: AppContext, principal: Principal, version: int, body: SimulationIn
) -> SimulationOut:
    """Replay the program's orders paid in [from, to) under `version`; write nothing.

    Orders are replayed in the order they were recorded, each with the facts it was
    recorded with (tier, birthday, first order), except what the member had earned
    that day: the daily cap counts the replay's own points, from the start of the
    period. Orders in a currency the version does not take earn nothing under it;
    partners' orders earn by the version's `partner_earn` section for their partner,
    and nothing when it has none.

    Campaign budgets: each budget of the version starts the period with its whole
    `points` (and each member with `per_member`), and the replayed orders spend it in
    order; a rule its budget can no longer cover is left out, as an order would. So
    a budgeted rule's simulated points are what it would have added within its
    budget over this period alone (not what is left of the live budget now)."""
    if body.to <= body.from_:
        raise ValidationFailed.on("body.to", "must be after from")
    program_id = principal.program_id
    actual = simulated = count = skipped = 0
    split: dict[str, list[int]] = {}
    # what each member earned per local day, from each earner (the program: None, or a
    # partner), as daily caps count it
    earned: dict[tuple[int, str | None, date], int] = {}
    # budgets' points spent by the replay, by budget, and by budget and member
    spent: dict[str, int] = {}
    spent_by_member: dict[tuple[str, int], int] = {}
    async with context.db.pool.acquire() as connection:
        try:
            rules = await context.rules.document(connection, program_id, version)
        except LookupError:
            raise RulesVersionNotFound(f"the program has no rules version {version}") from None
        zone = ZoneInfo(rules.timezone)
        limits = {limit.key: limit for limit in budget_limits(rules)}

        def earned_today(member_id: int, partner: str | None, paid_at: datetime) -> int:
            return earned.get((member_id, partner, paid_at.astimezone(zone).date()), 0)

        async with connection.transaction(isolation="repeatable_read", readonly=True):
            for rule, points in (
                await orders.past_points_by_rule(connection, program_id, body.from_, body.to)
            ).items():
                split[rule] = [points, 0]
            async for order in orders.past_orders(
                connection, program_id, body.from_, body.to, earned_today, segments=uses_segments(rules)
            ):
                count += 1
                if count % YIELD_EVERY == 0:
                    # The replay is CPU work on the event loop: let other requests
                    # of this process run between small slices of it.
                    await asyncio.sleep(0)
                actual += order.points
                section = rules.earn
                if order.partner is not None:
                    # a partner's order earns by its partner's section, or nothing
                    found = rules.partner_earn.get(order.partner)
                    if found is None:
                        skipped += 1
                        continue
                    section = found
                member_id = order.member_id

                def covers(key: str, points: int) -> Scope | None:
                    limit = limits[key]
                    if limit.per_member is not None and (
                        spent_by_member.get((key, member_id), 0) + points > limit.per_member  # noqa: B023
                    ):
                        return "member"
                    return "budget" if spent.get(key, 0) + points > limit.points else None

                path = section_path(order.partner)
                try:
                    earning = earn_within_budgets(
                        rules,
                        order.facts,
                        path,
                        covers,
                        explain=False,
                        section=section,
                        limits=tuple(limits.values()),
                    )
                except RulesError:
                    skipped += 1
                    continue
                for charge in earning.charges:
                    key = budget_key(path, charge.rule)
                    spent[key] = spent.get(key, 0) + charge.points
                    spent_by_member[key, member_id] = spent_by_member.get((key, member_id), 0) + charge.points
                simulated += earning.points
                day = (order.member_id, order.partner, earning.local_day)
                earned[day] = earned.get(day, 0) + earning.points
                for line in earning.lines:
                    split.setdefault(line.rule, [0, 0])[1] += line.points
            events = await _replay_events(connection, rules, program_id, body)
            limits_replayed = await _replay_limits(connection, rules, program_id, body)
            tier_counts = await _tier_counts(context, connection, rules, program_id, body)
    rules_split = [
        RuleSplit(rule=rule, actual_points=a, simulated_points=s, delta_points=s - a)
        for rule, (a, s) in split.items()
    ]
    rules_split.sort(key=lambda item: (-abs(item.delta_points), item.rule))
    return SimulationOut(
        version=version,
        from_=body.from_,
        to=body.to,
        orders=count,
        orders_not_earning=skipped,
        actual_points=actual,
        simulated_points=simulated,
        delta_points=simulated - actual,
        rules=rules_split,
        events=events,
        limits=limits_replayed,
        tiers=tier_counts,
    )


async def _replay_events(
    connection: Connection, rules: RulesDocument, program_id: int, body: SimulationIn
) -> EventsSimulationOut:
    """Replay the member events that occurred in [from, to) under `rules`, in the
    order they were recorded: per-day limits, a referral's once-only rule and
    streaks are counted by the replay itself, from the start of the period (a
    streak under way before it starts from nothing). An event the rules refuse
    earns nothing."""
    count = actual = simulated = streaks = 0
    today: dict[tuple[int, str, date], int] = {}
    referred: set[int] = set()
    marks: dict[tuple[int, str], StreakMark] = {}
    zone = ZoneInfo(rules.timezone)
    async for past in orders.past_events(connection, program_id, body.from_, body.to):
        count += 1
        if count % YIELD_EVERY == 0:
            await asyncio.sleep(0)
        actual += past.points
        day = past.occurred_at.astimezone(zone).date()
        try:
            earning = earn_event(
                rules,
                EventFacts(
                    type=past.type,
                    occurred_at=past.occurred_at,
                    earned_today=today.get((past.member_id, past.type, day), 0),
                    has_referrer=True,  # recorded referrals had one
                    referrals_before=int(past.member_id in referred) if past.type == "referral" else 0,
                    last_streak=marks.get((past.member_id, past.type)),
                ),
            )
        except RulesError:
            continue
        today[past.member_id, past.type, day] = today.get((past.member_id, past.type, day), 0) + 1
        if past.type == "referral":
            referred.add(past.member_id)
        simulated += earning.points + earning.referrer_points
        if earning.streak is not None:
            marks[past.member_id, past.type] = earning.streak
        streaks += any(line.rule.endswith(":streak") for line in earning.lines)
    return EventsSimulationOut(
        events=count,
        actual_points=actual,
        simulated_points=simulated,
        delta_points=simulated - actual,
        streaks_completed=streaks,
    )


async def _replay_limits(
    connection: Connection, rules: RulesDocument, program_id: int, body: SimulationIn
) -> LimitsSimulationOut:
    """The version's limits against the period's awards, redemptions, holds and
    transfers (app.rules.limits.LimitsReplayer says how they count)."""
    replayer = LimitsReplayer(rules.limits)
    if rules.limits.configured:
        fed = 0
        async for movement in ledger_limits.past_movements(
            connection, program_id, body.from_, body.to, rules.timezone
        ):
            replayer.feed(movement)
            fed += 1
            if fed % YIELD_EVERY == 0:
                await asyncio.sleep(0)
    replayed = replayer.out
    return LimitsSimulationOut(
        awards=replayed.awards,
        awards_refused=replayed.awards_refused,
        award_points_refused=replayed.award_points_refused,
        awards_for_approval=replayed.awards_for_approval,
        redemptions=replayed.redemptions,
        redemptions_refused=replayed.redemptions_refused,
        redeem_points_refused=replayed.redeem_points_refused,
        transfers=replayed.transfers,
        transfers_refused=replayed.transfers_refused,
        transfer_points_refused=replayed.transfer_points_refused,
    )


async def _tier_counts(
    context: AppContext, connection: Connection, rules: RulesDocument, program_id: int, body: SimulationIn
) -> list[TierSimulationOut]:
    """Members each tier would hold on the activity of the window ending at `to`,
    under the active rules and under the simulated ones (a tier that counts
    referrals shows what they do)."""
    _, active = await context.rules.active(connection, program_id)
    actual = await tiers.qualified_counts(connection, active, program_id, body.to)
    simulated = await tiers.qualified_counts(connection, rules, program_id, body.to)
    codes = [tier.code for tier in sorted(rules.tiers, key=lambda tier: tier.rank)]
    codes += [code for code in actual if code not in simulated]
    return [
        TierSimulationOut(
            tier=code,
            actual_members=actual.get(code, 0),
            simulated_members=simulated.get(code, 0),
            delta_members=simulated.get(code, 0) - actual.get(code, 0),
        )
        for code in codes
    ]
