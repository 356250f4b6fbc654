"""Importing a legacy program over HTTP: members, lots, orders and tiers, re-runs,
dry runs, control totals, all-or-nothing, scopes, and what the lots mean after."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from uuid_utils.compat import uuid7

from app.imports import repository, service
from app.ledger import accounts
from app.ledger.verify import verify
from app.partners.settlement import VERIFY_CHECKS
from tests.support import Api, chain_program, program_id, unique
from tests.tiers.helpers import tier_rules

NOW = datetime.now(UTC)
# a backend of this database waiting for a lock
WAITING = """
SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock')
"""


def instant(days: float) -> str:
    return (NOW + timedelta(days=days)).isoformat().replace("+00:00", "Z")


def legacy_program(prefix: str, members: int = 12) -> dict[str, list[dict[str, Any]]]:
    """A small legacy program: members, lots with mixed expiries (some already
    expired, some never), past orders and tiers."""
    ids = [f"{prefix}-{n}" for n in range(members)]
    lots = []
    for n, member in enumerate(ids):
        lots.append(
            {
                "member": member,
                "lot_ref": f"L{n}a",
                "points": 100 + n,
                "earned_at": instant(-400),
                "expires_at": instant(30 + n),
            }
        )
        lots.append(
            {
                "member": member,
                "lot_ref": f"L{n}b",
                "points": 50,
                "earned_at": instant(-200),
                "expires_at": instant(400),
            }
        )
        if n % 3 == 0:  # already expired: reported, skipped
            lots.append(
                {
                    "member": member,
                    "lot_ref": f"L{n}x",
                    "points": 7,
                    "earned_at": instant(-800),
                    "expires_at": instant(-10),
                }
            )
        if n % 4 == 0:  # never expires
            lots.append({"member": member, "lot_ref": f"L{n}n", "points": 5, "earned_at": instant(-100)})
    return {
        "members": [
            {
                "external_id": member,
                "enrolled_at": instant(-900),
                "birthday": "1990-04-17",
                "metadata": {"legacy_no": n},
                **({"referred_by": ids[0]} if n else {}),
            }
            for n, member in enumerate(ids)
        ],
        "lots": lots,
        "orders": [
            {
                "member": member,
                "order_id": f"{prefix}-o{n}-{k}",
                "total": {"amount": "60.00", "currency": "EUR"},
                "paid_at": instant(-30 - k),
                "channel": "store",
                "lines": [
                    {"sku": "SKU-1", "quantity": 1, "unit_price": {"amount": "60.00", "currency": "EUR"}}
                ],
            }
            for n, member in enumerate(ids)
            for k in range(2)
        ],
        "tiers": [
            {
                "member": member,
                "tier": "gold" if n % 2 else "silver",
                "since": instant(-100),
                "term_ends_at": instant(265),
            }
            for n, member in enumerate(ids)
        ],
    }


async def run(api: Api, kind: str, rows: list[dict[str, Any]], key: str | None = None, **options: Any) -> Any:
    return await api.post(
        f"/v1/imports/{kind}",
        {"source": "legacy-crm", "rows": rows, **options},
        key=key,
        idempotency_key=None,
    )


async def sound(db: asyncpg.Connection) -> None:
    unsound = [o for o in await verify(db, VERIFY_CHECKS) if o.mismatches]
    assert not unsound, unsound


class TestImportLegacyProgram:
    async def test_import_then_rerun_is_a_no_op_and_the_ledger_is_sound(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        await api.use_rules(tier_rules())
        legacy = legacy_program(unique("lg"))
        expired = sum(1 for lot in legacy["lots"] if lot["lot_ref"].endswith("x"))
        valid_lots = [lot for lot in legacy["lots"] if not lot["lot_ref"].endswith("x")]

        members = await run(api, "members", legacy["members"])
        assert members.status_code == 200, members.text
        assert members.json()["imported"] == 12
        lots = await run(api, "lots", legacy["lots"])
        assert lots.status_code == 200, lots.text
        body = lots.json()
        assert (body["rows"], body["imported"], body["skipped"], body["invalid"]) == (
            len(legacy["lots"]),
            len(valid_lots),
            0,
            expired,
        )
        assert body["points"] == sum(lot["points"] for lot in valid_lots)
        assert {e["code"] for e in body["errors"]} == {"lot_expired"}
        assert body["points_by_expiry_month"]["never"] == 5 * 3
        orders = await run(api, "orders", legacy["orders"])
        assert orders.json()["imported"] == 24, orders.text
        tiers = await run(api, "tiers", legacy["tiers"])
        assert tiers.json()["imported"] == 12, tiers.text

        member = legacy["members"][1]["external_id"]
        view = (await api.get(f"/v1/members/{member}")).json()
        assert view["balances"]["available"] == 101 + 50
        assert view["tier"]["code"] == "gold"
        assert view["referred_by"] == legacy["members"][0]["external_id"]
        assert view["expiring"][0]["points"] == 101  # the lot expiring first, with its own date

        # again: everything already there is skipped, nothing written
        for kind, count in (("members", 12), ("lots", len(valid_lots)), ("orders", 24), ("tiers", 12)):
            again = (await run(api, kind, legacy[kind])).json()
            assert (again["imported"], again["skipped"]) == (0, count), again

        pid = await program_id(db, api.program)
        entries = await db.fetchval("SELECT count(*) FROM journal_entry WHERE program_id = $1", pid)
        assert entries == len(valid_lots)
        migration = await db.fetchval(
            "SELECT sum(p.amount) FROM posting p JOIN account a ON a.program_id = p.program_id"
            " AND a.id = p.account_id WHERE p.program_id = $1 AND a.kind = 'migration'",
            pid,
        )
        assert migration == -body["points"]
        assert (
            await db.fetchval(
                "SELECT count(*) FROM paid_order WHERE program_id = $1 AND points = 0 AND entry_id IS NULL",
                pid,
            )
            == 24
        )

        # chained like every entry; no per-entry or per-member events; one summary per run that wrote
        await chain_program(db, api.program)
        types = [
            r["type"]
            for r in await db.fetch("SELECT type FROM event_log WHERE program_id = $1 ORDER BY sequence", pid)
        ]
        assert [t for t in types if t != "rules.activated"] == ["import.completed"] * 4
        await sound(db)


class TestLotsMeanWhatTheySaid:
    async def test_fifo_and_expiry_treat_an_imported_lot_as_earned_at_its_date(
        self, api: Api, db: asyncpg.Connection, clock: Any
    ) -> None:
        member = await api.enrol()
        await api.award(member, 40)  # expires never
        rows = [
            {
                "member": member,
                "lot_ref": "late",
                "points": 30,
                "earned_at": instant(-10),
                "expires_at": instant(90),
            },
            {
                "member": member,
                "lot_ref": "soon",
                "points": 20,
                "earned_at": instant(-300),
                "expires_at": instant(5),
            },
        ]
        assert (await run(api, "lots", rows)).json()["imported"] == 2
        pid = await program_id(db, api.program)
        occurred = await db.fetchval(
            "SELECT occurred_at FROM journal_entry WHERE program_id = $1 AND kind = 'import'"
            " AND metadata->>'lot_ref' = 'soon'",
            pid,
        )
        assert abs((occurred - (NOW - timedelta(days=300))).total_seconds()) < 1
        # a redemption takes the soonest-expiring lot first
        assert (await api.redeem(member, 25)).status_code == 201
        remaining = {
            (r["expires_at"] is None and "never") or r["points"]: r["remaining"]
            for r in await db.fetch(
                "SELECT points, remaining, expires_at FROM point_lot l"
                " JOIN member m ON m.program_id = l.program_id AND m.id = l.member_id"
                " WHERE m.program_id = $1 AND m.external_id = $2",
                pid,
                member,
            )
        }
        assert remaining == {20: 0, 30: 25, "never": 40}
        # the expire job takes the lot at its own date
        clock.offset = timedelta(days=91)
        expired = await api.post("/v1/jobs/expire", {}, idempotency_key=None)
        assert expired.json()["counts"]["points"] == 25, expired.text
        assert await api.available(member) == 40
        await sound(db)


class TestRefusals:
    async def test_dry_run_writes_nothing(self, api: Api, db: asyncpg.Connection) -> None:
        member = await api.enrol()
        rows = [
            {
                "member": member,
                "lot_ref": f"d{n}",
                "points": 10,
                "earned_at": instant(-5),
                "expires_at": instant(40 + 31 * n),
            }
            for n in range(3)
        ]
        response = await run(api, "lots", rows, dry_run=True)
        body = response.json()
        assert (body["dry_run"], body["imported"], body["points"], body["members"]) == (True, 3, 30, 1)
        assert sum(body["points_by_expiry_month"].values()) == 30
        assert await api.available(member) == 0
        pid = await program_id(db, api.program)
        assert await db.fetchval("SELECT count(*) FROM journal_entry WHERE program_id = $1", pid) == 0
        assert (
            await db.fetchval(
                "SELECT count(*) FROM event_log WHERE program_id = $1 AND type = 'import.completed'", pid
            )
            == 0
        )

    async def test_control_totals_that_do_not_match_refuse(self, api: Api) -> None:
        member = await api.enrol()
        rows = [{"member": member, "lot_ref": "c1", "points": 10, "earned_at": instant(-5)}]
        response = await run(api, "lots", rows, expect_rows=1, expect_points=11)
        assert response.status_code == 422
        assert response.json()["code"] == "import_control_totals_mismatch"
        response = await run(api, "lots", rows, expect_rows=2)
        assert response.json()["code"] == "import_control_totals_mismatch"
        assert await api.available(member) == 0
        ok = await run(api, "lots", rows, expect_rows=1, expect_points=10)
        assert ok.json()["imported"] == 1

    async def test_a_refusal_for_control_totals_lists_the_invalid_rows(self, api: Api) -> None:
        member = await api.enrol()
        rows = [
            {"member": member, "lot_ref": "t1", "points": 10, "earned_at": instant(-5)},
            {"member": member, "lot_ref": "t2", "points": 0, "earned_at": instant(-5)},
        ]
        response = await run(api, "lots", rows, expect_rows=3)
        assert response.status_code == 422
        body = response.json()
        assert body["code"] == "import_control_totals_mismatch"
        assert [(e["field"], e["type"]) for e in body["errors"]] == [("rows.2.points", "invalid")]

    @pytest.mark.parametrize("field", ["member", "lot_ref"])
    async def test_text_the_ledger_cannot_hold_is_a_row_error(self, api: Api, field: str) -> None:
        """A NUL is valid JSON and CSV but no PostgreSQL text: the row is refused,
        the others imported (it once failed the whole run's lookups)."""
        member = await api.enrol()
        rows = [
            {"member": member, "lot_ref": "u1", "points": 10, "earned_at": instant(-5)},
            {"member": member, "lot_ref": "u2", "points": 10, "earned_at": instant(-5), field: "nul\u0000"},
        ]
        response = await run(api, "lots", rows)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["imported"], [(e["row"], e["field"]) for e in body["errors"]]) == (1, [(2, field)])

    async def test_invalid_rows_are_listed_and_the_valid_ones_imported(self, api: Api) -> None:
        member = await api.enrol()
        rows = [
            {"member": member, "lot_ref": "ok", "points": 10, "earned_at": instant(-5)},
            {"member": member, "lot_ref": "neg", "points": -1, "earned_at": instant(-5)},
            {"member": "nobody-here", "lot_ref": "who", "points": 1, "earned_at": instant(-5)},
            {"member": member, "lot_ref": "ok", "points": 3, "earned_at": instant(-5)},
            {"member": member, "points": 3, "earned_at": instant(-5)},
        ]
        body = (await run(api, "lots", rows)).json()
        assert (body["imported"], body["invalid"]) == (1, 4)
        assert [(e["row"], e["field"], e["code"]) for e in body["errors"]] == [
            (2, "points", "invalid"),
            (3, "member", "member_not_found"),
            (4, "lot_ref", "duplicate_ref"),
            (5, "lot_ref", "missing"),
        ]
        assert await api.available(member) == 10

    async def test_all_or_nothing_writes_nothing_when_a_row_is_invalid(self, api: Api) -> None:
        member = await api.enrol()
        rows = [
            {"member": member, "lot_ref": "a", "points": 10, "earned_at": instant(-5)},
            {
                "member": member,
                "lot_ref": "b",
                "points": 10,
                "earned_at": instant(-50),
                "expires_at": instant(-1),
            },
        ]
        response = await run(api, "lots", rows, all_or_nothing=True)
        assert response.status_code == 422
        problem = response.json()
        assert problem["code"] == "import_rows_invalid"
        assert problem["errors"] == [
            {"field": "rows.2.expires_at", "message": problem["errors"][0]["message"], "type": "lot_expired"}
        ]
        assert await api.available(member) == 0

    async def test_more_than_10000_rows_is_413(self, api: Api) -> None:
        rows = [{"external_id": f"m{n}"} for n in range(10_001)]
        response = await run(api, "members", rows)
        assert response.status_code == 413
        assert response.json()["code"] == "import_too_large"

    async def test_unknown_kind_is_422(self, api: Api) -> None:
        response = await run(api, "points", [])
        assert response.status_code == 422
        assert response.json()["code"] == "validation_error"


class TestAccess:
    async def test_admin_scope_is_required(self, api: Api) -> None:
        key = await api.key_with("members:write", "points:adjust")
        response = await run(api, "members", [{"external_id": "x1"}], key=key)
        assert response.status_code == 403
        assert response.json()["code"] == "forbidden"
        response = await api.client.post("/v1/imports/members", json={"source": "s", "rows": []})
        assert response.status_code == 401

    async def test_another_programs_members_are_not_found(self, api: Api, other: Api) -> None:
        member = await api.enrol()
        rows = [{"member": member, "lot_ref": "x", "points": 10, "earned_at": instant(-5)}]
        body = (await run(other, "lots", rows)).json()
        assert (body["imported"], body["errors"][0]["code"]) == (0, "member_not_found")
        assert await api.available(member) == 0


@pytest.mark.parametrize("kind", ["orders", "tiers"])
async def test_rows_for_unknown_members_are_invalid(api: Api, kind: str) -> None:
    await api.use_rules(tier_rules())
    legacy = legacy_program(unique("u"), members=1)
    body = (await run(api, kind, legacy[kind])).json()
    assert body["invalid"] == len(legacy[kind])
    assert {e["code"] for e in body["errors"]} == {"member_not_found"}


class TestImportsMeetTheMembersLifecycle:
    async def test_an_erased_members_old_id_is_refused_and_the_pseudonym_prefix_too(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        member = await api.enrol()
        erased = await api.post(
            f"/v1/members/{member}/erasure", {"reason": "GDPR request"}, idempotency_key=unique("erase")
        )
        assert erased.status_code in (200, 201), erased.text
        before = await db.fetchval(
            "SELECT count(*) FROM member WHERE program_id = $1", await program_id(db, api.program)
        )
        rows = [
            {"external_id": member},
            {"external_id": "erased:0123"},
            {"external_id": unique("new")},
        ]
        body = (await run(api, "members", rows)).json()
        assert (body["imported"], body["invalid"]) == (1, 2)
        assert [(e["row"], e["field"], e["code"]) for e in body["errors"]] == [
            (1, "external_id", "member_erased"),
            (2, "external_id", "invalid"),
        ]
        after = await db.fetchval(
            "SELECT count(*) FROM member WHERE program_id = $1", await program_id(db, api.program)
        )
        assert after == before + 1

    async def test_a_closed_member_takes_no_imported_lots_orders_or_tiers(self, api: Api) -> None:
        await api.use_rules(tier_rules())
        member = await api.enrol()
        closed = await api.post(f"/v1/members/{member}/close", {"reason": "customer left"})
        assert closed.status_code in (200, 201), closed.text
        lots = (
            await run(
                api, "lots", [{"member": member, "lot_ref": "c1", "points": 10, "earned_at": instant(-5)}]
            )
        ).json()
        orders = (
            await run(
                api,
                "orders",
                [
                    {
                        "member": member,
                        "order_id": unique("o"),
                        "total": {"amount": "10.00", "currency": "EUR"},
                        "paid_at": instant(-3),
                    }
                ],
            )
        ).json()
        tiers = (
            await run(
                api,
                "tiers",
                [{"member": member, "tier": "silver", "since": instant(-3), "term_ends_at": instant(300)}],
            )
        ).json()
        for body in (lots, orders, tiers):
            assert (body["imported"], body["invalid"]) == (0, 1), body
            assert [(e["field"], e["code"]) for e in body["errors"]] == [("member", "member_closed")]
        assert await api.available(member) == 0


class TestConcurrentRuns:
    async def test_a_run_that_meets_another_run_of_the_same_lots_leaves_them_out(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        """Another run of the same file writes a lot after this run checked it was
        free: this run's chunk is refused by the entry key once the other commits,
        filtered again and written without it (skipped, not doubled, no error)."""
        legacy = legacy_program(unique("race"), members=4)
        assert (await run(api, "members", legacy["members"])).status_code == 200
        lots = [lot for lot in legacy["lots"] if not lot["lot_ref"].endswith("x")]
        pid = await program_id(db, api.program)
        await accounts.open_migration_account(db, pid)
        first = lots[0]
        member = await db.fetchval(
            "SELECT id FROM member WHERE program_id = $1 AND external_id = $2", pid, first["member"]
        )
        other = db.transaction()
        await other.start()
        try:
            lot = (
                member,
                first["lot_ref"],
                first["points"],
                datetime.fromisoformat(first["earned_at"]),
                datetime.fromisoformat(first["expires_at"]),
            )
            assert await repository.import_lots(
                db, pid, "legacy-crm", NOW, None, [uuid7()], [lot]
            ) == repository.LotsWritten(1, first["points"], row_checks=False)
            this = asyncio.create_task(run(api, "lots", lots))
            for _ in range(500):  # until this run waits on the other's uncommitted rows (10 s)
                if await db.fetchval(WAITING):
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError("the import never waited for the other run")
        except BaseException:
            await other.rollback()
            raise
        await other.commit()
        response = await this
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["imported"], body["skipped"], body["points"]) == (
            len(lots) - 1,
            1,
            sum(lot["points"] for lot in lots[1:]),
        )
        assert await db.fetchval(
            "SELECT count(*) FROM journal_entry WHERE program_id = $1 AND kind = 'import'", pid
        ) == len(lots)
        await chain_program(db, api.program)
        await sound(db)


class TestBlocks:
    async def test_many_blocks_import_what_one_block_does(
        self, api: Api, other: Api, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Lots are checked and written in blocks of members, the next checked while
        the last is written: cut into blocks of a few lots, the same rows give the
        same summary (the same rows refused, with the same codes, a reference used
        twice refused where it comes second even when its first row is in a later
        block), the same balances and each member's lots in the same order as in
        one block."""
        legacy = legacy_program(unique("blocks"), members=9)
        five = next(lot for lot in legacy["lots"] if lot["member"] == legacy["members"][5]["external_id"])
        seven = legacy["members"][7]["external_id"]
        lots = [
            *legacy["lots"],
            # references twice: members 0 and 5 are in different blocks, so one of
            # these two comes in a block checked before the one with its first row
            {**legacy["lots"][0], "member": legacy["members"][5]["external_id"], "points": 3},
            {**five, "member": legacy["members"][0]["external_id"], "points": 4},
            # the same reference once stripped
            {**legacy["lots"][3], "lot_ref": f" {legacy['lots'][3]['lot_ref']} ", "member": seven},
            {**legacy["lots"][1], "lot_ref": "L-nobody", "member": "nobody"},
            {**legacy["lots"][1], "lot_ref": "L-bad", "points": 0},
        ]
        summaries, balances, lot_orders = [], [], []
        for program, block in ((api, 100_000), (other, 4)):
            assert (await run(program, "members", legacy["members"])).status_code == 200
            monkeypatch.setattr(service, "BLOCK", block)
            response = await run(program, "lots", lots)
            assert response.status_code == 200, response.text
            summaries.append(response.json())
            balances.append(
                await db.fetch(
                    "SELECT m.external_id, b.available FROM member_balance b JOIN member m"
                    " ON m.program_id = b.program_id AND m.id = b.member_id"
                    " WHERE b.program_id = $1 ORDER BY 1",
                    await program_id(db, program.program),
                )
            )
            # each member's lots in id order (FIFO's last tie-break): oldest earned first
            lot_orders.append(
                await db.fetch(
                    "SELECT m.external_id, l.points FROM point_lot l JOIN member m"
                    " ON m.program_id = l.program_id AND m.id = l.member_id"
                    " WHERE l.program_id = $1 ORDER BY m.external_id, l.id",
                    await program_id(db, program.program),
                )
            )
        one, many = summaries
        assert many == one
        assert [(e["row"], e["code"]) for e in one["errors"]] == [
            *[(n + 1, "lot_expired") for n, lot in enumerate(legacy["lots"]) if lot["lot_ref"].endswith("x")],
            (len(lots) - 4, "duplicate_ref"),
            (len(lots) - 3, "duplicate_ref"),
            (len(lots) - 2, "duplicate_ref"),
            (len(lots) - 1, "member_not_found"),
            (len(lots), "invalid"),
        ]
        assert one["imported"] == len(legacy["lots"]) - len(legacy["members"][::3])
        assert [tuple(row) for row in balances[1]] == [tuple(row) for row in balances[0]]
        assert [tuple(row) for row in lot_orders[1]] == [tuple(row) for row in lot_orders[0]]
        for program in (api, other):
            await chain_program(db, program.program)
        await sound(db)
