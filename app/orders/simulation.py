"""What-if: what a rules version (a draft, say) would have given the program's past
orders, beside what they did earn. Pure replay through the rules module over the
orders as recorded; nothing is written."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from zoneinfo import ZoneInfo

from app.context import AppContext
from app.errors import ValidationFailed
from app.orders import service as orders
from app.orders.schemas import RuleSplit, SimulationIn, SimulationOut
from app.principal import Principal
from app.rules import RulesError
from app.rules.budgets import Scope, budget_key, budget_limits, earn_within_budgets, section_path
from app.rulesets.service import RulesVersionNotFound

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
            async for order in orders.past_orders(connection, program_id, body.from_, body.to, earned_today):
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
    )
