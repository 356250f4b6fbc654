"""`verify` holds the order and pending projections to the ledger: each check fails
on a tampered row (restored straight after)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from app.ledger.verify import verify
from tests.support import Api, unique


async def failing(db: asyncpg.Connection) -> set[str]:
    return {outcome.name for outcome in await verify(db) if outcome.mismatches}


async def test_each_projection_check_catches_a_tampered_row(api: Api, db: asyncpg.Connection) -> None:
    await api.use_rules({"earn": {"base": {"points": 1, "per": "1"}, "pending_days": 30}})
    member = await api.enrol()
    order_id = unique("o")
    paid_at = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    body = {
        "order_id": order_id,
        "member": member,
        "total": {"amount": "50.00", "currency": "EUR"},
        "paid_at": paid_at,
    }
    assert (await api.post("/v1/orders", body)).status_code == 201
    refund = await api.refund(order_id, amount={"amount": "10.00", "currency": "EUR"})
    assert refund.status_code == 201
    assert await failing(db) == set()

    tampering = {
        "each member's pending credits add up to their pending balance": (
            "UPDATE pending_credit SET remaining = remaining - 1 WHERE entry_id ="
            " (SELECT entry_id FROM paid_order WHERE order_id = $1)",
            "UPDATE pending_credit SET remaining = remaining + 1 WHERE entry_id ="
            " (SELECT entry_id FROM paid_order WHERE order_id = $1)",
        ),
        "each order's entry credits exactly the order's points, to its member": (
            "UPDATE paid_order SET points = points + 1 WHERE order_id = $1",
            "UPDATE paid_order SET points = points - 1 WHERE order_id = $1",
        ),
        "each order's refunds add up to what it says was taken back, and each moved what it says": (
            "UPDATE paid_order SET points_taken_back = points_taken_back - 1 WHERE order_id = $1",
            "UPDATE paid_order SET points_taken_back = points_taken_back + 1 WHERE order_id = $1",
        ),
    }
    for check, (tamper, restore) in tampering.items():
        await db.execute(tamper, order_id)
        try:
            assert await failing(db) == {check}
        finally:
            await db.execute(restore, order_id)
    assert await failing(db) == set()


async def test_a_program_without_an_active_rules_version_is_caught(api: Api, db: asyncpg.Connection) -> None:
    program_id = await db.fetchval("SELECT id FROM program WHERE code = $1", api.program)
    await db.execute("UPDATE rules_version SET active = false WHERE program_id = $1", program_id)
    try:
        assert await failing(db) == {
            "every program has exactly one active rules version, and entries name versions it has"
        }
    finally:
        await db.execute(
            "UPDATE rules_version SET active = true WHERE program_id = $1 AND version = 1", program_id
        )


async def test_lot_and_hold_checks_catch_tampered_rows(api: Api, db: asyncpg.Connection) -> None:
    member = await api.enrol()
    award = await api.award(member, 50, expires_at=(datetime.now(UTC) + timedelta(days=9)).isoformat())
    hold = await api.post(f"/v1/members/{member}/holds", {"points": 20})
    assert hold.status_code == 201, hold.text
    entry_id = award.json()["id"]
    assert await failing(db) == set()

    tampering = {
        # what the lots hold no longer matches the balance, what was taken, or history
        "UPDATE point_lot SET remaining = remaining - 1 WHERE entry_id = $1": (
            "UPDATE point_lot SET remaining = remaining + 1 WHERE entry_id = $1",
            {
                "each member's lots add up to their available points",
                "what each lot lost is what entries took from it and kept",
                "the lots agree with a replay of the ledger",
            },
        ),
        # a lot that expires on another day than the ledger says
        "UPDATE point_lot SET expires_at = expires_at + interval '1 day' WHERE entry_id = $1": (
            "UPDATE point_lot SET expires_at = expires_at - interval '1 day' WHERE entry_id = $1",
            {"the lots agree with a replay of the ledger"},
        ),
        "UPDATE point_hold SET points = points + 1 WHERE member_id ="
        " (SELECT member_id FROM point_lot WHERE entry_id = $1)": (
            "UPDATE point_hold SET points = points - 1 WHERE member_id ="
            " (SELECT member_id FROM point_lot WHERE entry_id = $1)",
            {
                "each active hold's (and pending conversion's) points are held, and each closed hold was "
                "closed by its entry"
            },
        ),
    }
    for tamper, (restore, checks) in tampering.items():
        await db.execute(tamper, entry_id)
        try:
            assert await failing(db) == checks
        finally:
            await db.execute(restore, entry_id)
    assert await failing(db) == set()


async def test_rebuilding_the_lots_repairs_a_tampered_projection(api: Api, db: asyncpg.Connection) -> None:
    from app.ledger.lots import rebuild

    member, other = await api.enrol(), await api.enrol()
    soon = datetime.now(UTC) + timedelta(days=9)
    await api.award(member, 50, expires_at=soon.isoformat())
    await api.award(member, 20)
    assert (await api.transfer(member, other, 30)).status_code == 201
    spent = await api.redeem(member, 15)
    assert (await api.reverse(spent.json()["id"])).status_code == 201
    before = await db.fetch(
        "SELECT member_id, entry_id, expires_at, points, remaining FROM point_lot ORDER BY member_id, id"
    )
    await db.execute("UPDATE point_lot SET remaining = 0, expires_at = NULL")
    assert "the lots agree with a replay of the ledger" in await failing(db)
    assert await rebuild(db) == len(before)
    after = await db.fetch(
        "SELECT member_id, entry_id, expires_at, points, remaining FROM point_lot ORDER BY member_id, id"
    )
    assert [tuple(row) for row in after] == [tuple(row) for row in before]
    assert await failing(db) == set()
