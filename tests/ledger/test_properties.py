"""Random sequences of ledger operations against a model of what should happen.

After every sequence the ledger must satisfy what `points-ledger verify` checks:
each entry's postings sum to zero, cached balances equal their postings, nothing
is negative, and each idempotency key wrote one entry."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import asyncpg
import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.ledger.verify import verify
from tests.support import Api, dsn, new_program

MEMBERS = 3
Operation = tuple[str, int, int, int]  # (kind, member a, member b or entry index, points)

operations = st.lists(
    st.one_of(
        st.tuples(st.just("award"), st.integers(0, MEMBERS - 1), st.just(0), st.integers(1, 200)),
        st.tuples(st.just("redeem"), st.integers(0, MEMBERS - 1), st.just(0), st.integers(1, 200)),
        st.tuples(
            st.just("transfer"), st.integers(0, MEMBERS - 1), st.integers(0, MEMBERS - 1), st.integers(1, 200)
        ),
        st.tuples(st.just("reverse"), st.just(0), st.integers(0, 30), st.just(0)),
        st.tuples(st.just("retry"), st.just(0), st.integers(0, 30), st.just(0)),
    ),
    min_size=1,
    max_size=25,
)


@dataclass
class Model:
    available: list[int] = field(default_factory=lambda: [0] * MEMBERS)
    # every successful entry: id, its effect on each member, is it a reversal, was it reversed
    entries: list[tuple[str, list[int], bool, bool]] = field(default_factory=list)
    sent: list[tuple[str, str, dict[str, object], bytes]] = field(default_factory=list)


async def run(api: Api, ops: list[Operation]) -> None:
    members = [await api.enrol() for _ in range(MEMBERS)]
    model = Model()
    for kind, a, b, points in ops:
        effect = [0] * MEMBERS
        if kind == "award":
            path, body = f"/v1/members/{members[a]}/awards", {"points": points, "reason": "prop"}
            effect[a] = points
        elif kind == "redeem":
            path, body = f"/v1/members/{members[a]}/redemptions", {"points": points}
            effect[a] = -points
        elif kind == "transfer":
            path = "/v1/transfers"
            body = {"from_member": members[a], "to_member": members[b], "points": points}
            effect[a] -= points
            effect[b] += points
        elif kind == "reverse":
            if not model.entries:
                continue
            index = b % len(model.entries)
            entry_id, original, is_reversal, reversed_ = model.entries[index]
            path, body = f"/v1/entries/{entry_id}/reversal", {"reason": "prop"}
            effect = [-x for x in original]
        else:  # retry an earlier request with its key: must replay, never post again
            if not model.sent:
                continue
            key, path, body, first = model.sent[b % len(model.sent)]
            response = await api.post(path, body, idempotency_key=key)
            assert response.status_code == 201
            assert response.content == first
            continue

        key = f"prop-{len(model.sent)}-{kind}"
        response = await api.post(path, body, idempotency_key=key)
        same_member = kind == "transfer" and a == b
        would_overdraw = any(m + e < 0 for m, e in zip(model.available, effect, strict=True))
        if same_member:
            assert response.status_code == 422
            continue
        if kind == "reverse" and is_reversal:
            assert response.status_code == 422, response.text
            assert response.json()["code"] == "entry_not_reversible"
            continue
        if kind == "reverse" and reversed_:
            assert response.status_code == 409, response.text
            assert response.json()["code"] == "already_reversed"
            continue
        if would_overdraw:
            assert response.status_code == 422, response.text
            assert response.json()["code"] == "insufficient_points"
            continue
        assert response.status_code == 201, response.text
        model.available = [m + e for m, e in zip(model.available, effect, strict=True)]
        if kind == "reverse":
            model.entries[index] = (entry_id, original, False, True)
        model.entries.append((response.json()["id"], effect, kind == "reverse", False))
        model.sent.append((key, path, body, response.content))

    for member, expected in zip(members, model.available, strict=True):
        assert await api.available(member) == expected


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_random_operations_keep_the_ledger_sound(
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
