"""Each member status against each operation (a table), and the status read where
it cannot be raced: under the member's balance-row lock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from app.ledger.verify import verify
from tests.partners.helpers import add_rate, convert_in, convert_out, partner_with_key, redeem_at
from tests.support import Api, program_id

RULES: dict[str, Any] = {
    "earn": {"base": {"points": 1, "per": "1", "rounding": "floor"}},
    "events": {"review": {"points": 10}},
}


@dataclass
class Scene:
    """One member in a status, and what the operations need around it."""

    api: Api
    member: str
    other: str  # an active member with points, for transfers
    hold_id: str  # a hold placed while the member was active
    order_id: str  # an order paid while the member was active
    partner: str
    partner_key: str


async def _scene(api: Api, status: str) -> Scene:
    await api.use_rules(RULES)
    member, other = await api.enrol(), await api.enrol()
    assert (await api.award(member, 1000)).status_code == 201
    assert (await api.award(other, 1000)).status_code == 201
    order = await api.order(member, "50.00")
    assert order.status_code == 201, order.text
    code, key = await partner_with_key(api, roles=("earn", "redeem", "convert_out", "convert_in", "donation"))
    await add_rate(api, code, "redeem", price_per_point="0.01")
    await add_rate(api, code, "convert_out", partner_units_per_point="1")
    await add_rate(api, code, "convert_in", partner_units_per_point="1")
    hold_id = ""
    if status != "closed":  # a closed member has no holds: closing refuses while any is active
        hold = await api.post(f"/v1/members/{member}/holds", {"points": 100})
        assert hold.status_code == 201, hold.text
        hold_id = hold.json()["hold_id"]
    if status == "closed":
        closed = await api.post(f"/v1/members/{member}/close", {"reason": "test"})
        assert closed.status_code == 201, closed.text
    elif status != "active":
        changed = await api.post(f"/v1/members/{member}/status", {"status": status, "reason": "test"})
        assert changed.status_code == 201, changed.text
    return Scene(api, member, other, hold_id, order.json()["order_id"], code, key)


Operation = Callable[[Scene], Awaitable[httpx.Response]]

OPERATIONS: dict[str, Operation] = {
    "order": lambda s: s.api.order(s.member, "20.00"),
    "event": lambda s: s.api.post(
        f"/v1/members/{s.member}/events", {"type": "review", "occurred_at": datetime.now(UTC).isoformat()}
    ),
    "award": lambda s: s.api.award(s.member, 10),
    "transfer_in": lambda s: s.api.transfer(s.other, s.member, 10),
    "transfer_out": lambda s: s.api.transfer(s.member, s.other, 10),
    "redemption": lambda s: s.api.redeem(s.member, 10),
    "hold": lambda s: s.api.post(f"/v1/members/{s.member}/holds", {"points": 10}),
    "capture": lambda s: s.api.post(f"/v1/holds/{s.hold_id}/capture", {"points": 60}),
    "release": lambda s: s.api.post(f"/v1/holds/{s.hold_id}/release", {}),
    "conversion_out": lambda s: convert_out(s.api, s.member, s.partner, 10),
    "conversion_in": lambda s: convert_in(s.api, s.partner_key, s.member, 10),
    "partner_redemption": lambda s: redeem_at(s.api, s.partner_key, s.member, 10),
    "donation": lambda s: s.api.post(
        f"/v1/members/{s.member}/donations", {"partner": s.partner, "points": 10}
    ),
    "refund": lambda s: s.api.refund(s.order_id, amount={"amount": "10.00", "currency": "EUR"}),
    "status_change": lambda s: s.api.post(
        f"/v1/members/{s.member}/status", {"status": "active", "reason": "review done"}
    ),
}

OK, NOT_ELIGIBLE, CLOSED, NONE = 201, "member_not_eligible", "member_closed", None
# status -> operation -> 201, or the 409's code; None: the operation cannot arise
EXPECTED: dict[str, dict[str, int | str | None]] = {
    "active": dict.fromkeys(OPERATIONS, OK),
    "frozen": {
        "order": OK,
        "event": OK,
        "award": OK,
        "transfer_in": OK,
        "transfer_out": NOT_ELIGIBLE,
        "redemption": NOT_ELIGIBLE,
        "hold": NOT_ELIGIBLE,
        "capture": OK,  # holds placed before the freeze: the checkout already took the order
        "release": OK,
        "conversion_out": NOT_ELIGIBLE,
        "conversion_in": OK,
        "partner_redemption": NOT_ELIGIBLE,
        "donation": NOT_ELIGIBLE,
        "refund": OK,  # the program takes back what a returned order earned
        "status_change": OK,
    },
    "suspended": {
        "order": NOT_ELIGIBLE,
        "event": NOT_ELIGIBLE,
        "award": NOT_ELIGIBLE,
        "transfer_in": NOT_ELIGIBLE,
        "transfer_out": NOT_ELIGIBLE,
        "redemption": NOT_ELIGIBLE,
        "hold": NOT_ELIGIBLE,
        "capture": OK,
        "release": OK,
        "conversion_out": NOT_ELIGIBLE,
        "conversion_in": NOT_ELIGIBLE,
        "partner_redemption": NOT_ELIGIBLE,
        "donation": NOT_ELIGIBLE,
        "refund": OK,
        "status_change": OK,
    },
    "closed": {
        **dict.fromkeys(OPERATIONS, CLOSED),
        "capture": NONE,  # closing refuses while a hold is active; none can be placed after
        "release": NONE,
    },
}
CASES = [
    (status, operation, expected)
    for status, row in EXPECTED.items()
    for operation, expected in row.items()
    if expected is not NONE
]


async def _footprint(db: asyncpg.Connection, api: Api, member: str) -> tuple[Any, ...]:
    """Everything an operation could write for the member: its balances, postings, orders, events."""
    pid = await program_id(db, api.program)
    row = await db.fetchrow(
        """
        SELECT b.available, b.pending, b.held, b.debt, m.status,
               (SELECT count(*) FROM posting p WHERE p.program_id = m.program_id AND p.member_id = m.id),
               (SELECT count(*) FROM paid_order o WHERE o.program_id = m.program_id AND o.member_id = m.id),
               (SELECT count(*) FROM member_event v WHERE v.program_id = m.program_id AND v.member_id = m.id),
               (SELECT count(*) FROM order_refund r WHERE r.program_id = m.program_id),
               (SELECT count(*) FROM member_status_change c
                 WHERE c.program_id = m.program_id AND c.member_id = m.id),
               (SELECT count(*) FROM point_hold h WHERE h.program_id = m.program_id)
          FROM member m JOIN member_balance b ON b.program_id = m.program_id AND b.member_id = m.id
         WHERE m.program_id = $1 AND m.external_id = $2
        """,
        pid,
        member,
    )
    assert row is not None
    return tuple(row.values())


class TestEachStatusAgainstEachOperation:
    @pytest.mark.parametrize(("status", "operation", "expected"), CASES)
    async def test_the_status_allows_or_refuses_it_and_a_refusal_writes_nothing(
        self, api: Api, db: asyncpg.Connection, status: str, operation: str, expected: int | str
    ) -> None:
        scene = await _scene(api, status)
        before = await _footprint(db, api, scene.member)
        response = await OPERATIONS[operation](scene)
        if expected == OK:
            assert response.status_code == 201, response.text
            return
        assert response.status_code == 409, response.text
        problem = response.json()
        assert problem["code"] == expected
        assert f"member {scene.member} is {status}" in problem["detail"]
        assert await _footprint(db, api, scene.member) == before


async def _hold_member_lock(db: asyncpg.Connection, api: Api, member: str) -> asyncpg.transaction.Transaction:
    """Take the member's balance row as a status change does, in a transaction left open."""
    transaction = db.transaction()
    await transaction.start()
    await db.execute(
        "UPDATE member_balance b SET version = b.version + 1 FROM member m"
        " WHERE m.program_id = $1 AND m.external_id = $2"
        " AND b.program_id = m.program_id AND b.member_id = m.id",
        await program_id(db, api.program),
        member,
    )
    return transaction


async def _set_status_inside(db: asyncpg.Connection, api: Api, member: str, status: str) -> None:
    await db.execute(
        "UPDATE member SET status = $3 WHERE program_id = $1 AND external_id = $2",
        await program_id(db, api.program),
        member,
        status,
    )


class TestTheStatusIsReadUnderTheMembersLock:
    """A status change that commits while an operation waits for the member's lock
    decides that operation: the status is read after the lock, not before."""

    @pytest.mark.parametrize(
        ("operation", "status"),
        [
            ("redemption", "frozen"),
            ("transfer_out", "frozen"),
            ("award", "suspended"),
            ("order", "suspended"),
            ("event", "suspended"),
        ],
    )
    async def test_an_operation_waiting_on_a_status_change_sees_the_new_status(
        self, api: Api, db: asyncpg.Connection, operation: str, status: str
    ) -> None:
        scene = await _scene(api, "active")
        before = await _footprint(db, api, scene.member)
        transaction = await _hold_member_lock(db, api, scene.member)
        try:
            waiting = asyncio.ensure_future(OPERATIONS[operation](scene))
            await asyncio.sleep(0.5)  # it has read the member (active) and waits for the lock
            assert not waiting.done()
            await _set_status_inside(db, api, scene.member, status)
        except BaseException:
            await transaction.rollback()
            raise
        await transaction.commit()
        response = await waiting
        assert response.status_code == 409, response.text
        assert response.json()["code"] == "member_not_eligible"
        footprint = await _footprint(db, api, scene.member)
        assert footprint[:4] == before[:4]  # balances untouched
        assert footprint[5:] == before[5:]  # nothing written

    async def test_many_redemptions_racing_a_freeze_none_passes_after_it(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        member = await api.enrol()
        assert (await api.award(member, 10_000)).status_code == 201
        redemptions = [asyncio.ensure_future(api.redeem(member, 10)) for _ in range(10)]
        await asyncio.sleep(0.01)
        frozen = await api.post(f"/v1/members/{member}/status", {"status": "frozen", "reason": "race"})
        assert frozen.status_code == 201, frozen.text
        answers = await asyncio.gather(*redemptions)
        passed = sum(response.status_code == 201 for response in answers)
        refused = [response.json()["code"] for response in answers if response.status_code == 409]
        assert set(refused) <= {"member_not_eligible"}
        assert passed + len(refused) == 10
        assert await api.available(member) == 10_000 - 10 * passed
        later = await api.redeem(member, 10)
        assert (later.status_code, later.json()["code"]) == (409, "member_not_eligible")
        assert [outcome.name for outcome in await verify(db) if outcome.mismatches] == []
