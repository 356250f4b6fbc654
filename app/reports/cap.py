"""The `check-cost-cap` job: each program's last closed month (in its timezone)
checked against its redemption cost cap, so `cost.cap_exceeded` is written
without anyone asking for the report (docs/reports.md).

A closed month, not the month to date: only a period that has ended has final
figures (revenue and redemptions of a month to date move both ways until it
ends), so the event stays true, and a month is the period the cap is set for.
The job asks the redemption-cost report itself for the month, so the job and
the report never disagree and the report's dedupe (one event per program and
period, under a lock) keeps the event to one however often either runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from zoneinfo import ZoneInfo

from app.config import Settings
from app.context import AppContext
from app.db import Connection, Database
from app.principal import Principal
from app.reports import repository, service
from app.rules import RulesDocument
from app.rulesets.cache import RulesCache


class _NoCallers:
    """The job acts for no caller: nothing here authenticates one."""

    async def authenticate(self, authorization: str | None) -> Principal:
        raise RuntimeError("the check-cost-cap job authenticates no caller")

    def forget(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class _At:
    """A clock stopped at the job's `now`."""

    instant: datetime

    def now(self) -> datetime:
        return self.instant


@dataclass(frozen=True, slots=True)
class CapChecks:
    programs: int
    checked: int  # programs with a cap whose last closed month was checked
    exceeded: int  # of those, months over the cap
    events: int  # cost.cap_exceeded events this run wrote


def last_closed_month(as_of: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[first instant of the month before as_of's, first instant of as_of's month),
    months in `zone`, as UTC instants."""
    local = as_of.astimezone(zone)
    year, month = (local.year - 1, 12) if local.month == 1 else (local.year, local.month - 1)
    start = datetime(year, month, 1, tzinfo=zone)
    end = datetime(local.year, local.month, 1, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


async def check_cost_cap(
    db: Database,
    settings: Settings,
    *,
    program_ids: list[int],
    as_of: datetime,
    now: datetime,
    on_progress: Callable[[int], None] | None = None,
) -> CapChecks:
    """For each program, the redemption-cost report of the month closed before
    `as_of` (in the timezone of the rules in force at as_of), when the rules in
    force at its end set a `redemption_cost_cap`; the report writes the event
    when the month is over the cap. A month that has not ended by `now` (an
    as_of in the future) is left for a later run."""
    rules = RulesCache()
    context = AppContext(settings=settings, db=db, clock=_At(now), auth=_NoCallers(), rules=rules)
    checked = exceeded = events = 0
    for program_id in program_ids:
        found = await db.call(partial(_month, rules=rules, program_id=program_id, as_of=as_of, now=now))
        if found is not None:
            start, end = found
            key = (_utc(start), _utc(end))
            before = await db.call(partial(_written, program_id=program_id, key=key))
            # the report reads the caller's program id and nothing else of it
            principal = Principal(
                program_id=program_id, program_code="", key_id=None, scopes=frozenset({"reports:read"})
            )
            report = await service.redemption_cost(context, principal, start, end)
            checked += 1
            if report.cap_exceeded:
                exceeded += 1
                events += 0 if before else 1
        if on_progress is not None:
            on_progress(1)
    return CapChecks(programs=len(program_ids), checked=checked, exceeded=exceeded, events=events)


def _utc(at: datetime) -> str:
    """As the event's data names an instant (pydantic's JSON: `Z` for UTC)."""
    return at.isoformat().replace("+00:00", "Z")


async def _month(
    connection: Connection, *, rules: RulesCache, program_id: int, as_of: datetime, now: datetime
) -> tuple[datetime, datetime] | None:
    """The month to check, or None: no cap in force at its end, or not ended by now."""
    zone = ZoneInfo((await _rules_at(rules, connection, program_id, as_of)).timezone)
    start, end = last_closed_month(as_of, zone)
    valuation = (await _rules_at(rules, connection, program_id, end)).valuation
    if end > now or valuation is None or valuation.redemption_cost_cap is None:
        return None
    return start, end


async def _written(connection: Connection, *, program_id: int, key: tuple[str, str]) -> bool:
    return await repository.cap_event_written(connection, program_id, *key)


async def _rules_at(
    rules: RulesCache, connection: Connection, program_id: int, at: datetime
) -> RulesDocument:
    """The rules in force at `at` (as the reports read them)."""
    version = await repository.version_at(connection, program_id, at)
    if version is None:
        return (await rules.active(connection, program_id))[1]
    return await rules.document(connection, program_id, version)
