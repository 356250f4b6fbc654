"""Random sequences of earning, spending, holding, transferring and expiring,
against a small model of lots: the member's expiring points (by date) and
balances must match the model, and `verify` (which replays the lots from the
ledger) must pass."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.ledger.verify import verify
from tests.support import Api, dsn, new_program

MEMBERS = 2
DATES = 4  # expiry dates to choose from, plus "never"
Operation = tuple[str, int, int, int]

operations = st.lists(
    st.one_of(
        st.tuples(st.just("award"), st.integers(0, MEMBERS - 1), st.integers(0, DATES), st.integers(1, 60)),
        st.tuples(st.just("redeem"), st.integers(0, MEMBERS - 1), st.just(0), st.integers(1, 80)),
        st.tuples(st.just("transfer"), st.integers(0, MEMBERS - 1), st.just(0), st.integers(1, 80)),
        st.tuples(st.just("hold"), st.integers(0, MEMBERS - 1), st.just(0), st.integers(1, 80)),
        st.tuples(st.just("capture"), st.just(0), st.integers(0, 10), st.integers(0, 80)),
        st.tuples(st.just("release"), st.just(0), st.integers(0, 10), st.just(0)),
        st.tuples(st.just("expire"), st.just(0), st.integers(0, DATES - 1), st.just(0)),
    ),
    min_size=1,
    max_size=30,
)


@dataclass
class ModelLot:
    expires_at: datetime | None
    remaining: int


@dataclass
class ModelHold:
    member: int
    takes: list[tuple[ModelLot, int]]  # in the order taken: oldest-expiring first


@dataclass
class Model:
    lots: dict[int, list[ModelLot]] = field(default_factory=lambda: defaultdict(list))
    held: list[int] = field(default_factory=lambda: [0] * MEMBERS)
    holds: list[tuple[str, ModelHold]] = field(default_factory=list)

    def available(self, member: int) -> int:
        return sum(lot.remaining for lot in self.lots[member])

    def take(self, member: int, points: int) -> list[tuple[ModelLot, int]]:
        order = sorted(
            (lot for lot in self.lots[member] if lot.remaining),
            key=lambda lot: (lot.expires_at is None, lot.expires_at or datetime.min.replace(tzinfo=UTC)),
        )
        takes = []
        for lot in order:
            if points == 0:
                break
            take = min(lot.remaining, points)
            lot.remaining -= take
            points -= take
            takes.append((lot, take))
        assert points == 0
        return takes

    def expiring(self, member: int) -> dict[datetime, int]:
        found: dict[datetime, int] = defaultdict(int)
        for lot in self.lots[member]:
            if lot.remaining and lot.expires_at is not None:
                found[lot.expires_at] += lot.remaining
        return dict(found)


async def run(api: Api, ops: list[Operation]) -> None:
    members = [await api.enrol() for _ in range(MEMBERS)]
    start = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    dates = [start + timedelta(days=day) for day in range(DATES)]
    model = Model()
    for kind, a, b, points in ops:
        if kind == "award":
            expires = dates[b] if b < DATES else None
            fields = {} if expires is None else {"expires_at": expires.isoformat()}
            assert (await api.award(members[a], points, **fields)).status_code == 201
            model.lots[a].append(ModelLot(expires, points))
        elif kind in ("redeem", "transfer", "hold"):
            if kind == "redeem":
                response = await api.redeem(members[a], points)
            elif kind == "transfer":
                response = await api.transfer(members[a], members[1 - a], points)
            else:
                response = await api.post(f"/v1/members/{members[a]}/holds", {"points": points})
            if points > model.available(a):
                assert response.status_code == 422, response.text
                continue
            assert response.status_code == 201, response.text
            takes = model.take(a, points)
            if kind == "transfer":
                model.lots[1 - a].extend(ModelLot(lot.expires_at, take) for lot, take in takes)
            if kind == "hold":
                model.held[a] += points
                model.holds.append((response.json()["hold_id"], ModelHold(a, takes)))
        elif kind in ("capture", "release"):
            if not model.holds:
                continue
            hold_id, hold = model.holds.pop(b % len(model.holds))
            total = sum(take for _, take in hold.takes)
            captured = min(points, total) if kind == "capture" else 0
            if kind == "capture" and captured == 0:
                response = await api.post(f"/v1/holds/{hold_id}/release", {})
            elif kind == "capture":
                response = await api.post(f"/v1/holds/{hold_id}/capture", {"points": captured})
            else:
                response = await api.post(f"/v1/holds/{hold_id}/release", {})
            assert response.status_code == 201, response.text
            model.held[hold.member] -= total
            back = total - captured
            for lot, take in reversed(hold.takes):  # latest-expiring back first
                returned = min(take, back)
                lot.remaining += returned
                back -= returned
        else:
            as_of = dates[b]
            done = await api.post("/v1/jobs/expire", {"as_of": as_of.isoformat()}, idempotency_key=None)
            assert done.status_code == 200, done.text
            for lots in model.lots.values():
                for lot in lots:
                    if lot.expires_at is not None and lot.expires_at <= as_of:
                        lot.remaining = 0

    for index, member in enumerate(members):
        view = (await api.get(f"/v1/members/{member}")).json()
        assert view["balances"]["available"] == model.available(index)
        assert view["balances"]["held"] == model.held[index]
        listed = {datetime.fromisoformat(item["expires_at"]): item["points"] for item in view["expiring"]}
        assert listed == model.expiring(index)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_lots_follow_every_movement_of_points(
    client: httpx.AsyncClient, session_loop: asyncio.AbstractEventLoop, ops: list[Operation]
) -> None:
    session_loop.run_until_complete(_example(client, ops))


async def _example(client: httpx.AsyncClient, ops: list[Operation]) -> None:
    api = await new_program(client)
    await run(api, ops)
    connection = await asyncpg.connect(dsn())
    try:
        outcomes = await verify(connection)
    finally:
        await connection.close()
    assert [(o.name, o.examples) for o in outcomes if o.mismatches] == []
