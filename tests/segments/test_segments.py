"""RFM segments over HTTP against hand-computed quintiles, paging, a past as_of
that reproduces, the snapshot-segments job (HTTP and CLI), `when: {segment}` on a
multiplier, scopes and another program's key."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from app.cli import cli
from app.ledger.verify import verify
from app.rules.document import RulesDocument, uses_segments
from tests.support import Api, database_url, new_program, unique

BASE_ONLY: dict[str, Any] = {"earn": {"base": {"points": 1, "per": "1.00"}}}
CORE_DOUBLE: dict[str, Any] = {
    "earn": {
        "base": {"points": 1, "per": "1.00"},
        "multipliers": [{"id": "core-double", "factor": "2", "when": {"segment": ["core"]}}],
    }
}


def iso(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


async def paid(api: Api, member: str, total: str, days_ago: float, now: datetime) -> str:
    order_id = unique("o")
    response = await api.order(member, total, order_id=order_id, paid_at=iso(now - timedelta(days=days_ago)))
    assert response.status_code == 201, response.text
    return order_id


async def small_program(api: Api) -> tuple[dict[str, str], str]:
    """Seven members, five with an order in the last 365 days (docs/segments.md works
    this example): A 3 orders 1-10 days ago (300.00), B 2 orders (100.00, last 2
    days ago), C one order of 400.00 30 days ago, D 2 orders (110.00, last 3 days
    ago), E one of 20.00 100 days ago; F ordered 400 days ago, G never. Returns the
    members and C's order (to refund)."""
    await api.use_rules(BASE_ONLY)
    now = datetime.now(UTC)
    members = {name: await api.enrol(unique(f"seg-{name}")) for name in "ABCDEFG"}
    for days in (1, 5, 10):
        await paid(api, members["A"], "100.00", days, now)
    await paid(api, members["B"], "50.00", 2, now)
    await paid(api, members["B"], "50.00", 20, now)
    c_order = await paid(api, members["C"], "400.00", 30, now)
    await paid(api, members["D"], "100.00", 3, now)
    await paid(api, members["D"], "10.00", 40, now)
    await paid(api, members["E"], "20.00", 100, now)
    await paid(api, members["F"], "80.00", 400, now)
    return members, c_order


async def report(api: Api, key: str | None = None, **params: Any) -> Any:
    response = await api.get("/v1/reports/segments", key=key, **params)
    assert response.status_code == 200, response.text
    return response.json()


async def all_members(api: Api, segment: str, limit: int = 50, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"segment": segment, "limit": limit, **params}
        if cursor is not None:
            query["cursor"] = cursor
        response = await api.get("/v1/reports/segments/members", **query)
        assert response.status_code == 200, response.text
        items.extend(response.json()["items"])
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return items


def counts(body: Any) -> dict[str, tuple[int, str]]:
    return {item["segment"]: (item["members"], item["share"]) for item in body["segments"]}


async def sound(db: asyncpg.Connection) -> None:
    assert all(outcome.mismatches == 0 for outcome in await verify(db))


class TestSegmentsReport:
    async def test_hand_computed_quintiles_ties_lapsed_and_a_refund(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        members, c_order = await small_program(api)
        before_refund = datetime.now(UTC)
        await asyncio.sleep(0.01)
        refund = await api.refund(c_order, amount={"amount": "350.00", "currency": "EUR"})
        assert refund.status_code == 201, refund.text
        as_of = datetime.now(UTC)

        body = await report(api, as_of=iso(as_of))
        assert (body["window_days"], body["members"], body["from_snapshot"]) == (365, 7, False)
        head = (await api.get("/v1/ledger/head")).json()
        assert body["chain_sequence"] <= head["sequence"]
        # recency desc E100 C30 D3 B2 A1 -> r 1..5; frequency C,E=1 (rank 1) B,D=2 (rank 3) A=3
        # -> f 1,1,3,3,5; monetary E20 C50 (400 less 350 refunded) B100 D110 A300 -> m 1..5
        assert counts(body) == {
            "core": (1, "0.1429"),
            "potential": (1, "0.1429"),
            "regular": (0, "0.0000"),
            "basic": (3, "0.4286"),
            "lapsed": (2, "0.2857"),
        }
        scored = {}
        for segment in ("core", "potential", "regular", "basic", "lapsed"):
            for item in await all_members(api, segment, as_of=iso(as_of)):
                scored[item["member"]] = item
        by_name = {name: scored[external] for name, external in members.items()}
        assert {name: (row["r"], row["f"], row["m"], row["segment"]) for name, row in by_name.items()} == {
            "A": (5, 5, 5, "core"),
            "B": (4, 3, 3, "basic"),
            "C": (2, 1, 2, "basic"),
            "D": (3, 3, 4, "potential"),
            "E": (1, 1, 1, "basic"),
            "F": (None, None, None, "lapsed"),
            "G": (None, None, None, "lapsed"),
        }
        assert (by_name["C"]["monetary"], by_name["C"]["frequency"], by_name["C"]["recency_days"]) == (
            "50.00",
            1,
            30,
        )
        assert (by_name["A"]["monetary"], by_name["A"]["frequency"], by_name["A"]["recency_days"]) == (
            "300.00",
            3,
            1,
        )
        assert (by_name["G"]["frequency"], by_name["G"]["recency_days"]) == (0, None)

        # Before the refund C's 400.00 was the most spent: m 5 and `potential`; D fell to m 3.
        past = await report(api, as_of=iso(before_refund))
        assert counts(past)["potential"] == (1, "0.1429")
        potential = await all_members(api, "potential", as_of=iso(before_refund))
        assert [item["member"] for item in potential] == [members["C"]]
        assert (potential[0]["m"], potential[0]["monetary"]) == (5, "400.00")

        # A shorter window: only the orders of the last 15 days count.
        short = await report(api, as_of=iso(as_of), window_days=15)
        assert counts(short)["lapsed"][0] == 4  # C, E, F, G
        await sound(db)

    async def test_a_past_as_of_reproduces_whatever_happens_since(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        members, _ = await small_program(api)
        then = datetime.now(UTC)
        first = await report(api, as_of=iso(then))
        first_core = await all_members(api, "core", as_of=iso(then))
        await asyncio.sleep(0.01)
        # Afterwards: G orders big, F comes back, a new member enrols.
        now = datetime.now(UTC)
        await paid(api, members["G"], "999.00", 0.5, now)
        await paid(api, members["F"], "5.00", 0.5, now)
        await api.enrol(unique("seg-late"))
        assert await report(api, as_of=iso(then)) == first
        assert await all_members(api, "core", as_of=iso(then)) == first_core
        later = await report(api)
        assert (later["members"], counts(later)["lapsed"][0]) == (8, 1)  # lapsed: the new member
        await sound(db)

    async def test_pages_by_member_with_a_cursor_that_keeps_its_as_of(self, api: Api) -> None:
        members = [await api.enrol(unique("seg-p")) for _ in range(5)]
        first = await api.get("/v1/reports/segments/members", segment="lapsed", limit=2)
        assert first.status_code == 200
        body = first.json()
        assert len(body["items"]) == 2
        assert body["next_cursor"] is not None
        await api.enrol(unique("seg-after"))  # enrolled after the first page: not in this list
        listed = [item["member"] for item in await all_members(api, "lapsed", limit=2)]
        assert len(listed) == 6  # a list started afresh is as of now
        paged = body["items"]
        cursor = body["next_cursor"]
        while cursor is not None:
            page = await api.get("/v1/reports/segments/members", segment="lapsed", limit=2, cursor=cursor)
            assert page.json()["as_of"] == body["as_of"]
            paged.extend(page.json()["items"])
            cursor = page.json()["next_cursor"]
        assert [item["member"] for item in paged] == members  # by member id, enrolment order
        wrong_list = await api.get("/v1/reports/segments/members", segment="core", cursor=body["next_cursor"])
        assert (wrong_list.status_code, wrong_list.json()["code"]) == (400, "invalid_cursor")

    async def test_bad_input_is_a_problem_and_nothing_else(self, api: Api) -> None:
        future = iso(datetime.now(UTC) + timedelta(days=1))
        for path, params in (
            ("/v1/reports/segments", {"window_days": 0}),
            ("/v1/reports/segments", {"window_days": 3661}),
            ("/v1/reports/segments", {"as_of": future}),
            ("/v1/reports/segments", {"as_of": "yesterday"}),
            ("/v1/reports/segments/members", {}),
            ("/v1/reports/segments/members", {"segment": "whales"}),
            ("/v1/reports/segments/members", {"segment": "core", "as_of": future}),
        ):
            response = await api.get(path, **params)
            assert response.status_code == 422, (path, params, response.text)
            assert response.json()["code"] == "validation_error"
        bogus = await api.get("/v1/reports/segments/members", segment="core", cursor="nope")
        assert (bogus.status_code, bogus.json()["code"]) == (400, "invalid_cursor")

    async def test_scopes_and_another_programs_key(self, api: Api) -> None:
        member = await api.enrol(unique("seg-s"))
        reader = await api.key_with("reports:read")
        other = await api.key_with("members:read")
        assert (await report(api, key=reader))["members"] == 1
        for path, params in (
            ("/v1/reports/segments", {}),
            ("/v1/reports/segments/members", {"segment": "lapsed"}),
        ):
            refused = await api.get(path, key=other, **params)
            assert (refused.status_code, refused.json()["code"]) == (403, "forbidden"), refused.text
        elsewhere = await new_program(api.client)
        theirs = await report(elsewhere)
        assert theirs["members"] == 0
        listed = await elsewhere.get("/v1/reports/segments/members", segment="lapsed")
        assert listed.json()["items"] == []
        ours = await api.get("/v1/reports/segments/members", segment="lapsed", key=reader)
        assert [item["member"] for item in ours.json()["items"]] == [member]


class TestSnapshotSegments:
    async def test_the_job_keeps_a_snapshot_the_report_reads(self, api: Api, db: asyncpg.Connection) -> None:
        await small_program(api)
        as_of = datetime.now(UTC)
        live = await report(api, as_of=iso(as_of))
        live_members = {
            segment: await all_members(api, segment, as_of=iso(as_of))
            for segment in ("core", "potential", "basic", "lapsed")
        }
        job = await api.post("/v1/jobs/snapshot-segments", {"as_of": iso(as_of)}, idempotency_key=None)
        assert job.status_code == 200, job.text
        assert job.json()["counts"] == {"programs": 1, "snapshots": 1, "members": 7, "pruned": 0}
        again = await api.post("/v1/jobs/snapshot-segments", {"as_of": iso(as_of)}, idempotency_key=None)
        assert again.json()["counts"] == {"programs": 1, "snapshots": 0, "members": 0, "pruned": 0}
        kept = await report(api, as_of=iso(as_of))
        assert kept["from_snapshot"] is True
        assert {**kept, "from_snapshot": False} == live
        for segment in ("core", "potential", "basic", "lapsed"):
            assert await all_members(api, segment, as_of=iso(as_of), limit=2) == live_members[segment]
        # another window than the snapshot's is computed, not read from it
        assert (await report(api, as_of=iso(as_of), window_days=30))["from_snapshot"] is False
        await sound(db)

    async def test_runs_at_once_for_one_as_of_keep_one_snapshot(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        for _ in range(3):
            await api.enrol(unique("seg-c"))
        as_of = iso(datetime.now(UTC))
        runs = await asyncio.gather(
            *(
                api.post("/v1/jobs/snapshot-segments", {"as_of": as_of}, idempotency_key=None)
                for _ in range(6)
            )
        )
        assert all(run.status_code == 200 for run in runs), [run.text for run in runs]
        assert sorted(run.json()["counts"]["snapshots"] for run in runs) == [0] * 5 + [1]
        assert sum(run.json()["counts"]["members"] for run in runs) == 3
        rows = await db.fetchval(
            "SELECT count(*) FROM member_segment s JOIN program p ON p.id = s.program_id WHERE p.code = $1",
            api.program,
        )
        assert rows == 3

    @pytest.mark.usefixtures("fresh_settings")
    async def test_from_the_cli(self, api: Api) -> None:
        await api.enrol(unique("seg-cli"))
        as_of = iso(datetime.now(UTC))
        env = {"LEDGER_DATABASE_URL": database_url(), "LEDGER_ENV": "test"}
        args = ["jobs", "run", "snapshot-segments", "--program", api.program, "--as-of", as_of]
        result = await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)
        assert result.exit_code == 0, result.output
        assert "1 programs, 1 snapshots, 1 members, 0 pruned" in result.output
        again = await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)
        assert "1 programs, 0 snapshots, 0 members, 0 pruned" in again.output
        assert (await report(api, as_of=as_of))["from_snapshot"] is True


class TestSegmentsCsv:
    async def test_the_report_as_csv(self, api: Api) -> None:
        await small_program(api)
        as_of = iso(datetime.now(UTC))
        body = await report(api, as_of=as_of)
        response = await api.get("/v1/reports/segments", as_of=as_of, format="csv")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        assert response.text.splitlines() == [
            "segment,members,share",
            "core,1,0.1429",
            "potential,1,0.1429",
            "regular,0,0.0000",
            "basic,3,0.4286",
            "lapsed,2,0.2857",
        ]
        assert response.headers["X-Chain-Sequence"] == str(body["chain_sequence"])
        assert datetime.fromisoformat(response.headers["X-As-Of"]) == datetime.fromisoformat(body["as_of"])
        assert response.headers["X-Currency"] == "EUR"

    async def test_a_segments_members_as_csv_page_by_page(self, api: Api) -> None:
        members, _ = await small_program(api)
        as_of = iso(datetime.now(UTC))
        first = await api.get(
            "/v1/reports/segments/members", segment="basic", as_of=as_of, limit=2, format="csv"
        )
        assert first.status_code == 200, first.text
        lines = first.text.splitlines()
        assert lines[0] == "member,segment,recency_days,frequency,monetary,r,f,m"
        # Without the refund, B, D and E are basic (C is potential), by member id: B and D first
        assert lines[1:] == [
            f"{members['B']},basic,2,2,100.00,4,3,2",
            f"{members['D']},basic,3,2,110.00,3,3,3",
        ]
        cursor = first.headers["X-Next-Cursor"]
        last = await api.get(
            "/v1/reports/segments/members", segment="basic", limit=2, cursor=cursor, format="csv"
        )
        assert last.text.splitlines()[1:] == [f"{members['E']},basic,100,1,20.00,1,1,1"]
        assert "X-Next-Cursor" not in last.headers
        assert last.headers["X-As-Of"] == first.headers["X-As-Of"]
        lapsed = await api.get("/v1/reports/segments/members", segment="lapsed", as_of=as_of, format="csv")
        # a lapsed member has no recency or scores: empty cells
        assert f"{members['G']},lapsed,,0,0,,," in lapsed.text.splitlines()

    async def test_an_unknown_format_is_refused(self, api: Api) -> None:
        for path, params in (
            ("/v1/reports/segments", {"format": "xlsx"}),
            ("/v1/reports/segments/members", {"segment": "core", "format": "xml"}),
        ):
            response = await api.get(path, **params)
            assert (response.status_code, response.json()["code"]) == (422, "validation_error")


class TestSegmentCondition:
    async def test_a_multiplier_for_core_uses_the_snapshot_before_paid_at(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        await api.use_rules(BASE_ONLY)
        now = datetime.now(UTC)
        x, y, z = [await api.enrol(unique(f"seg-{name}")) for name in "xyz"]
        # n = 3: X ranks 3rd in all three (score 1 + 5*2//3 = 4: core); Y r2 f1 m2 (basic)
        await paid(api, x, "100.00", 3, now)
        await paid(api, x, "100.00", 2, now)
        await paid(api, y, "50.00", 20, now)
        await paid(api, z, "20.00", 30, now)
        taken = datetime.now(UTC)
        job = await api.post("/v1/jobs/snapshot-segments", {"as_of": iso(taken)}, idempotency_key=None)
        assert job.json()["counts"]["snapshots"] == 1
        core = await all_members(api, "core", as_of=iso(taken))
        assert [item["member"] for item in core] == [x]

        await asyncio.sleep(0.01)
        start = datetime.now(UTC)
        plain = await api.order(x, "10.00", paid_at=iso(datetime.now(UTC)))
        assert plain.json()["points"] == 10  # the active rules have no segment multiplier yet
        draft = await api.post("/v1/rules", CORE_DOUBLE, idempotency_key=None)
        version = draft.json()["version"]
        simulated = await api.post(
            f"/v1/rules/{version}/simulate",
            {"from": iso(start), "to": iso(datetime.now(UTC))},
            idempotency_key=None,
        )
        assert simulated.status_code == 200, simulated.text
        assert (simulated.json()["actual_points"], simulated.json()["simulated_points"]) == (10, 20)

        activated = await api.post(f"/v1/rules/{version}/activate", {}, idempotency_key=None)
        assert activated.status_code == 200, activated.text
        doubled = await api.order(x, "10.00", paid_at=iso(datetime.now(UTC)))
        assert doubled.json()["points"] == 20
        single = await api.order(y, "10.00", paid_at=iso(datetime.now(UTC)))
        assert single.json()["points"] == 10
        # paid before the snapshot: no snapshot before paid_at, no segment
        earlier = await api.order(x, "10.00", paid_at=iso(taken - timedelta(seconds=1)))
        assert earlier.json()["points"] == 10
        # a member enrolled after the snapshot has no segment in it
        late = await api.enrol(unique("seg-late"))
        assert (await api.order(late, "10.00")).json()["points"] == 10
        await sound(db)

    async def test_an_unknown_segment_is_refused(self, api: Api) -> None:
        bad = {
            "earn": {
                "base": {"points": 1, "per": "1.00"},
                "multipliers": [{"id": "m", "factor": "2", "when": {"segment": ["whales"]}}],
            }
        }
        response = await api.post("/v1/rules", bad, idempotency_key=None)
        assert response.status_code == 422
        assert response.json()["code"] == "invalid_rules"


def valuation(currency: str) -> dict[str, str]:
    return {"cost_per_point": "0.005", "currency": currency, "redemption_cost_cap": "0.03"}


async def scored(api: Api, as_of: str) -> dict[str, tuple[str, int | None, str]]:
    """Each member's (monetary, m, segment) as of as_of."""
    found = {}
    for segment in ("core", "potential", "regular", "basic", "lapsed"):
        for item in await all_members(api, segment, as_of=as_of):
            found[item["member"]] = (item["monetary"], item["m"], item["segment"])
    return found


class TestMonetaryCurrency:
    async def test_one_currency_and_orders_in_others_counted_apart(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        await api.use_rules(BASE_ONLY)  # no currency, no valuation: orders in any currency
        now = datetime.now(UTC)
        p, q, r = [await api.enrol(unique(f"seg-{name}")) for name in "pqr"]
        await paid(api, p, "100.00", 1, now)
        await paid(api, r, "50.00", 2, now)
        usd = await api.order(q, "500.00", currency="USD", paid_at=iso(now - timedelta(days=3)))
        assert usd.status_code == 201, usd.text
        first = iso(datetime.now(UTC))

        # Neither the rules nor a valuation name one: the window's most used, EUR. Q's
        # 500.00 USD is not added to euros: Q spent 0 EUR (M 1), but it is still an order.
        body = await report(api, as_of=first)
        assert (body["currency"], body["other_currency_orders"]) == ("EUR", 1)
        assert await scored(api, first) == {
            p: ("100.00", 4, "potential"),  # r 4 f 1 m 4
            q: ("0", 1, "basic"),
            r: ("50.00", 2, "basic"),
        }
        q_row = (await all_members(api, "basic", as_of=first))[0]
        assert (q_row["member"], q_row["frequency"], q_row["recency_days"], q_row["r"]) == (q, 1, 3, 1)

        # A valuation in USD: monetary is in USD from its activation on.
        await asyncio.sleep(0.01)
        await api.use_rules({**BASE_ONLY, "valuation": valuation("USD")})
        second = iso(datetime.now(UTC))
        body = await report(api, as_of=second)
        assert (body["currency"], body["other_currency_orders"]) == ("USD", 2)
        assert await scored(api, second) == {
            p: ("0", 1, "basic"),  # P and R tie at 0: both M 1
            q: ("500.00", 4, "potential"),
            r: ("0", 1, "basic"),
        }
        members_page = await api.get("/v1/reports/segments/members", segment="potential", as_of=second)
        assert members_page.json()["currency"] == "USD"

        # The rules' own currency comes before the valuation's.
        await asyncio.sleep(0.01)
        await api.use_rules({**BASE_ONLY, "currency": "EUR", "valuation": valuation("USD")})
        third = iso(datetime.now(UTC))
        assert (await report(api, as_of=third))["currency"] == "EUR"

        # A past as_of keeps the currency of the rules in force then; a snapshot agrees.
        assert (await report(api, as_of=first))["currency"] == "EUR"
        assert (await report(api, as_of=second))["currency"] == "USD"
        job = await api.post("/v1/jobs/snapshot-segments", {"as_of": second}, idempotency_key=None)
        assert job.json()["counts"]["snapshots"] == 1
        kept = await report(api, as_of=second)
        assert kept["from_snapshot"] is True
        assert await scored(api, second) == {
            p: ("0", 1, "basic"),
            q: ("500.00", 4, "potential"),
            r: ("0", 1, "basic"),
        }
        await sound(db)


class TestSnapshotRetention:
    async def test_prunes_past_the_retention_but_the_snapshot_orders_still_read(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        """LEDGER_SEGMENT_SNAPSHOT_RETENTION_DAYS is 35 (the default) here."""
        await api.use_rules(BASE_ONLY)
        now = datetime.now(UTC)
        x, y, z = [await api.enrol(unique(f"seg-{name}")) for name in "xyz"]
        await paid(api, x, "100.00", 3, now)  # X core, as in TestSegmentCondition
        await paid(api, x, "100.00", 2, now)
        await paid(api, y, "50.00", 20, now)
        await paid(api, z, "20.00", 30, now)
        t0 = datetime.now(UTC)

        async def job(at: datetime) -> dict[str, int]:
            response = await api.post("/v1/jobs/snapshot-segments", {"as_of": iso(at)}, idempotency_key=None)
            assert response.status_code == 200, response.text
            counts: dict[str, int] = response.json()["counts"]
            return counts

        async def kept() -> list[datetime]:
            rows = await db.fetch(
                "SELECT s.as_of FROM segment_snapshot s JOIN program p ON p.id = s.program_id"
                " WHERE p.code = $1 ORDER BY s.as_of",
                api.program,
            )
            return [row["as_of"] for row in rows]

        assert (await job(t0))["snapshots"] == 1
        await api.use_rules(CORE_DOUBLE)
        await asyncio.sleep(0.01)
        assert (await api.order(x, "10.00")).json()["points"] == 20  # core in the snapshot at t0

        # 36 days on (jobs may run as of a future instant outside production): the
        # cutoff is a day after t0, and t0's is the latest snapshot before it: kept.
        assert await job(t0 + timedelta(days=36)) == {
            "programs": 1,
            "snapshots": 1,
            "members": 3,
            "pruned": 0,
        }
        assert await kept() == [t0, t0 + timedelta(days=36)]
        assert (await api.order(x, "10.00")).json()["points"] == 20

        # 80 days on: the cutoff is day 45, day 36's snapshot the latest before it;
        # t0's goes, with its members' rows.
        assert (await job(t0 + timedelta(days=80)))["pruned"] == 1
        assert await kept() == [t0 + timedelta(days=36), t0 + timedelta(days=80)]
        rows = await db.fetchval(
            "SELECT count(*) FROM member_segment s JOIN program p ON p.id = s.program_id"
            " WHERE p.code = $1 AND s.as_of = $2",
            api.program,
            t0,
        )
        assert rows == 0
        # An order paid now reads no snapshot any more (paid more than the retention
        # before the snapshots the job keeps): no segment.
        assert (await api.order(x, "10.00")).json()["points"] == 10
        # The report as of t0 is computed instead, with the same figures.
        assert (await report(api, as_of=iso(t0)))["from_snapshot"] is False
        assert [item["member"] for item in await all_members(api, "core", as_of=iso(t0))] == [x]
        # Again for the same instant: nothing taken, nothing pruned.
        assert await job(t0 + timedelta(days=80)) == {
            "programs": 1,
            "snapshots": 0,
            "members": 0,
            "pruned": 0,
        }

    async def test_rules_without_segments_leave_it_unread_and_rules_with_one_read_it(
        self, api: Api, app: FastAPI, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The segment lookup is left out of an order's facts read when the process
        # knows the active rules name no segment. An order under segment rules must
        # still see its segment: right after the activation, with the rules known,
        # and when the process still holds the rules from before the activation.
        assert not uses_segments(RulesDocument.model_validate(BASE_ONLY))
        assert uses_segments(RulesDocument.model_validate(CORE_DOUBLE))
        base = await api.use_rules(BASE_ONLY)
        now = datetime.now(UTC)
        x, y, z = [await api.enrol(unique(f"unread-{name}")) for name in "xyz"]
        await paid(api, x, "100.00", 3, now)  # as in the test above: X core, Y basic
        await paid(api, x, "100.00", 2, now)
        await paid(api, y, "50.00", 20, now)
        await paid(api, z, "20.00", 30, now)
        taken = datetime.now(UTC)
        job = await api.post("/v1/jobs/snapshot-segments", {"as_of": iso(taken)}, idempotency_key=None)
        assert job.json()["counts"]["snapshots"] == 1
        assert [item["member"] for item in await all_members(api, "core", as_of=iso(taken))] == [x]
        assert y in [item["member"] for item in await all_members(api, "basic", as_of=iso(taken))]

        # the process knows the active rules (no segment): nothing reads the segment
        cache = app.state.context.rules
        stale = ((base, RulesDocument.model_validate(BASE_ONLY)), -1)
        monkeypatch.setattr(cache, "cached_active", lambda program: stale)
        await asyncio.sleep(0.01)
        start = datetime.now(UTC)
        unread = unique("o")
        plain = await api.order(x, "10.00", order_id=unread, paid_at=iso(datetime.now(UTC)))
        assert plain.json()["points"] == 10
        facts = await db.fetchval("SELECT facts FROM paid_order WHERE order_id = $1", unread)
        assert "segment" not in json.loads(facts)
        # a what-if under segment rules replays it with the segment it had
        draft = await api.post("/v1/rules", CORE_DOUBLE, idempotency_key=None)
        version = draft.json()["version"]
        simulated = await api.post(
            f"/v1/rules/{version}/simulate",
            {"from": iso(start), "to": iso(datetime.now(UTC))},
            idempotency_key=None,
        )
        assert simulated.status_code == 200, simulated.text
        assert (simulated.json()["actual_points"], simulated.json()["simulated_points"]) == (10, 20)

        activated = await api.post(f"/v1/rules/{version}/activate", {}, idempotency_key=None)
        assert activated.status_code == 200, activated.text
        # the process still holds the rules from before: the facts say another
        # version is active, whose multiplier names a segment, so it is read then
        for member, points, segment in ((x, 20, "core"), (y, 10, "basic")):
            order_id = unique("o")
            placed = await api.order(member, "10.00", order_id=order_id, paid_at=iso(datetime.now(UTC)))
            assert placed.json()["points"] == points, placed.text
            facts = await db.fetchval("SELECT facts FROM paid_order WHERE order_id = $1", order_id)
            assert json.loads(facts)["segment"] == segment
        # and with whatever the process knows now (the new rules, once it has read them)
        monkeypatch.undo()
        for _ in range(3):
            order_id = unique("o")
            placed = await api.order(x, "10.00", order_id=order_id, paid_at=iso(datetime.now(UTC)))
            assert placed.json()["points"] == 20, placed.text
            facts = await db.fetchval("SELECT facts FROM paid_order WHERE order_id = $1", order_id)
            assert json.loads(facts)["segment"] == "core"
        await sound(db)

    async def test_an_imported_order_replays_with_no_segment(self, api: Api, db: asyncpg.Connection) -> None:
        # An imported order's facts ({"imported": source}) have no segment either:
        # unlike an order that skipped the lookup, it never had one.
        await api.use_rules(BASE_ONLY)
        now = datetime.now(UTC)
        x, y, z = [await api.enrol(unique(f"imp-{name}")) for name in "xyz"]
        await paid(api, x, "100.00", 3, now)  # as in the tests above: X core
        await paid(api, x, "100.00", 2, now)
        await paid(api, y, "50.00", 20, now)
        await paid(api, z, "20.00", 30, now)
        taken = datetime.now(UTC)
        job = await api.post("/v1/jobs/snapshot-segments", {"as_of": iso(taken)}, idempotency_key=None)
        assert job.json()["counts"]["snapshots"] == 1
        assert [item["member"] for item in await all_members(api, "core", as_of=iso(taken))] == [x]
        await asyncio.sleep(0.01)
        start = datetime.now(UTC)
        row = {
            "member": x,
            "order_id": unique("imported"),
            "total": {"amount": "10.00", "currency": "EUR"},
            "paid_at": iso(datetime.now(UTC)),
        }
        imported = await api.post(
            "/v1/imports/orders", {"source": "legacy-crm", "rows": [row]}, idempotency_key=None
        )
        assert imported.json()["imported"] == 1, imported.text
        draft = await api.post("/v1/rules", CORE_DOUBLE, idempotency_key=None)
        simulated = await api.post(
            f"/v1/rules/{draft.json()['version']}/simulate",
            {"from": iso(start), "to": iso(datetime.now(UTC))},
            idempotency_key=None,
        )
        assert simulated.status_code == 200, simulated.text
        assert (simulated.json()["actual_points"], simulated.json()["simulated_points"]) == (0, 10)
        await sound(db)
