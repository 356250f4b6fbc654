"""Closed settlement statements: POST/GET /v1/partners/{code}/statements, the
partner's own reads, late and unchained lines, the close-statements job, and
verify catching a tampered statement."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from app.ledger.verify import verify
from app.partners.settlement import VERIFY_CHECKS
from tests.partners.helpers import (
    add_rate,
    earned,
    get_partner,
    instant,
    partner_earning,
    partner_key,
    partner_with_key,
    problem,
    redeem_at,
    run_job,
    settlement_of,
)
from tests.support import Api, MovableClock, chain_program

STATEMENT_FIELDS = {
    "id",
    "partner",
    "period_start",
    "period_end",
    "currency",
    "sections",
    "totals",
    "lines_count",
    "lines_digest",
    "paid_at",
    "chain_sequence",
    "created_at",
}


async def trading_partner(api: Api, **fields: Any) -> tuple[str, str]:
    """A postpaid partner members earn and spend with: (code, key)."""
    code, key = await partner_with_key(api, **fields)
    await add_rate(api, code, "earn", price_per_point="0.0125")
    await add_rate(api, code, "redeem", price_per_point="0.005")
    await partner_earning(api, code, points=3)
    return code, key


async def close(api: Api, code: str, period_end: datetime) -> Any:
    return await api.post(
        f"/v1/partners/{code}/statements", {"period_end": period_end.isoformat()}, idempotency_key=None
    )


async def closed(api: Api, code: str, period_end: datetime) -> dict[str, Any]:
    response = await close(api, code, period_end)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def statement_lines(api: Api, path: str, key: str | None = None) -> list[dict[str, Any]]:
    response = await api.get(f"{path}/lines", key=key)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


class TestCloseStatement:
    async def test_closes_the_chained_lines_since_the_partners_creation(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        code, key = await trading_partner(api)
        member = await api.enrol()
        orders = [await earned(api, key, member, "1.00") for _ in range(2)]
        spent = await redeem_at(api, key, member, 5)
        assert spent.status_code == 201, spent.text
        await chain_program(db, api.program)
        created_at = (await get_partner(api, code))["created_at"]
        period_end = datetime.now(UTC)

        statement = await closed(api, code, period_end)
        assert set(statement) == STATEMENT_FIELDS
        assert (statement["partner"], statement["currency"], statement["lines_count"]) == (code, "EUR", 3)
        assert statement["period_start"] == created_at
        assert instant(statement["period_end"]) == period_end
        assert len(statement["lines_digest"]) == 64
        int(statement["lines_digest"], 16)
        assert statement["chain_sequence"] >= 3
        derived = await settlement_of(
            api, code, **{"from": instant(created_at).isoformat(), "to": period_end.isoformat()}
        )
        assert statement["sections"] == derived["sections"]
        assert statement["totals"] == derived["totals"]
        assert statement["sections"]["earn"] == {"points": 6, "money": {"amount": "0.08", "currency": "EUR"}}
        assert statement["sections"]["redemptions"]["money"]["amount"] == "0.03"
        assert statement["totals"]["net"] == {"amount": "0.05", "currency": "EUR"}

        path = f"/v1/partners/{code}/statements/{statement['id']}"
        assert (await api.get(path)).json() == statement
        listed = (await api.get(f"/v1/partners/{code}/statements")).json()
        assert listed == {"items": [statement], "next_cursor": None}
        lines = await statement_lines(api, path)
        assert [line["entry_id"] for line in lines[:2]] == [order["entry_id"] for order in orders]
        assert [line["section"] for line in lines] == ["earn", "earn", "redemptions"]

    async def test_the_partners_own_keys_read_its_statements(self, api: Api, db: asyncpg.Connection) -> None:
        code, key = await trading_partner(api)
        member = await api.enrol()
        await earned(api, key, member, "1.00")
        await chain_program(db, api.program)
        statement = await closed(api, code, datetime.now(UTC))
        reader = await partner_key(api, code, "partner:redeem")
        own = await api.get("/v1/partner/statements", key=reader)
        assert own.status_code == 200, own.text
        assert own.json() == {"items": [statement], "next_cursor": None}
        one = await api.get(f"/v1/partner/statements/{statement['id']}", key=reader)
        assert one.json() == statement
        admin_lines = await statement_lines(api, f"/v1/partners/{code}/statements/{statement['id']}")
        own_lines = await statement_lines(api, f"/v1/partner/statements/{statement['id']}", key=reader)
        assert own_lines == admin_lines
        assert len(own_lines) == 1
        for path, k in (
            (f"/v1/partners/{code}/statements/{statement['id']}/lines", None),
            (f"/v1/partner/statements/{statement['id']}/lines", reader),
        ):
            response = await api.get(path, key=k, format="csv")
            assert response.status_code == 200, response.text
            rows = list(csv.DictReader(io.StringIO(response.text)))
            assert [row["entry_id"] for row in rows] == [line["entry_id"] for line in admin_lines]
            assert rows[0]["money"] == "0.04"

    async def test_another_partners_statement_is_404(self, api: Api, db: asyncpg.Connection) -> None:
        a, a_key = await trading_partner(api)
        b, b_key = await trading_partner(api)
        await chain_program(db, api.program)
        statement = await closed(api, a, datetime.now(UTC))
        assert problem(await api.get(f"/v1/partner/statements/{statement['id']}", key=b_key)) == (
            404,
            "statement_not_found",
        )
        assert problem(await api.get(f"/v1/partner/statements/{statement['id']}/lines", key=b_key)) == (
            404,
            "statement_not_found",
        )
        assert problem(await api.get(f"/v1/partners/{b}/statements/{statement['id']}")) == (
            404,
            "statement_not_found",
        )
        assert problem(await api.get(f"/v1/partners/{a}/statements/{uuid.uuid4()}")) == (
            404,
            "statement_not_found",
        )
        assert (await api.get("/v1/partner/statements", key=b_key)).json()["items"] == []
        assert (await api.get("/v1/partner/statements", key=a_key)).json()["items"] == [statement]

    async def test_a_period_end_in_the_future_is_422(self, api: Api) -> None:
        code, _ = await trading_partner(api)
        response = await close(api, code, datetime.now(UTC) + timedelta(minutes=5))
        assert problem(response) == (422, "validation_error")
        assert (await api.get(f"/v1/partners/{code}/statements")).json()["items"] == []

    async def test_a_period_end_not_after_the_previous_is_409(self, api: Api) -> None:
        code, _ = await trading_partner(api)
        first = await closed(api, code, datetime.now(UTC))
        end = instant(first["period_end"])
        assert problem(await close(api, code, end)) == (409, "period_closed")
        assert problem(await close(api, code, end - timedelta(seconds=1))) == (409, "period_closed")
        second = await closed(api, code, datetime.now(UTC))
        assert second["period_start"] == first["period_end"]
        assert second["lines_count"] == 0
        listed = (await api.get(f"/v1/partners/{code}/statements")).json()["items"]
        assert [item["id"] for item in listed] == [second["id"], first["id"]]
        page = (await api.get(f"/v1/partners/{code}/statements", limit=1)).json()
        assert [item["id"] for item in page["items"]] == [second["id"]]
        rest = (await api.get(f"/v1/partners/{code}/statements", limit=1, cursor=page["next_cursor"])).json()
        assert ([item["id"] for item in rest["items"]], rest["next_cursor"]) == ([first["id"]], None)

    async def test_a_period_end_before_the_partner_existed_is_409(self, api: Api) -> None:
        code, _ = await trading_partner(api)
        created = instant((await get_partner(api, code))["created_at"])
        assert problem(await close(api, code, created - timedelta(days=1))) == (409, "period_closed")

    async def test_admin_only(self, api: Api, other: Api) -> None:
        code, key = await trading_partner(api)
        reader = await api.key_with("reports:read", "members:read")
        assert problem(await api.get(f"/v1/partners/{code}/statements", key=reader)) == (403, "forbidden")
        response = await api.post(
            f"/v1/partners/{code}/statements",
            {"period_end": datetime.now(UTC).isoformat()},
            key=key,
            idempotency_key=None,
        )
        assert problem(response) == (403, "forbidden")
        assert problem(await close(other, code, datetime.now(UTC))) == (404, "partner_not_found")
        assert problem(await api.get("/v1/partner/statements")) == (403, "forbidden")


class TestLateLines:
    async def test_an_unchained_line_lands_in_the_next_statement(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        code, key = await trading_partner(api)
        member = await api.enrol()
        chained = await earned(api, key, member, "1.00")
        await chain_program(db, api.program)
        waiting = await earned(api, key, member, "2.00")  # not chained yet
        first = await closed(api, code, datetime.now(UTC))
        first_lines = await statement_lines(api, f"/v1/partners/{code}/statements/{first['id']}")
        assert [line["entry_id"] for line in first_lines] == [chained["entry_id"]]
        assert first["lines_count"] == 1

        await chain_program(db, api.program)
        second = await closed(api, code, datetime.now(UTC))
        second_lines = await statement_lines(api, f"/v1/partners/{code}/statements/{second['id']}")
        assert [line["entry_id"] for line in second_lines] == [waiting["entry_id"]]
        assert second["sections"]["earn"]["points"] == 6
        assert (await api.get(f"/v1/partners/{code}/statements/{first['id']}")).json() == first

    async def test_an_entry_recorded_inside_a_closed_period_lands_in_the_next(
        self, api: Api, db: asyncpg.Connection, clock: MovableClock
    ) -> None:
        # another process's clock ran ahead and closed the period; this one records
        # an entry dated inside it afterwards
        code, key = await trading_partner(api)
        member = await api.enrol()
        await earned(api, key, member, "1.00")
        await chain_program(db, api.program)
        clock.offset = timedelta(hours=1)
        first = await closed(api, code, datetime.now(UTC) + timedelta(minutes=59))
        clock.offset = timedelta()
        late = await earned(api, key, member, "2.00")
        window = {
            "from": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
            "to": (datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
        }
        items = (await api.get(f"/v1/partners/{code}/settlement/lines", **window)).json()["items"]
        [line] = [item for item in items if item["entry_id"] == late["entry_id"]]
        assert instant(line["recorded_at"]) < instant(first["period_end"])
        await chain_program(db, api.program)
        clock.offset = timedelta(hours=2)
        second = await closed(api, code, datetime.now(UTC) + timedelta(minutes=90))
        assert second["lines_count"] == 1
        second_lines = await statement_lines(api, f"/v1/partners/{code}/statements/{second['id']}")
        assert [item["entry_id"] for item in second_lines] == [late["entry_id"]]
        assert (await api.get(f"/v1/partners/{code}/statements/{first['id']}")).json() == first
        first_lines = await statement_lines(api, f"/v1/partners/{code}/statements/{first['id']}")
        assert late["entry_id"] not in [item["entry_id"] for item in first_lines]
        assert first["lines_count"] == 1


def next_month_start(created: datetime, zone: str) -> datetime:
    local = created.astimezone(ZoneInfo(zone))
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return datetime(year, month, 1, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def next_monday(created: datetime) -> datetime:
    day = created.astimezone(UTC).date() + timedelta(days=7 - created.astimezone(UTC).weekday())
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


class TestCloseStatementsJob:
    async def test_closes_complete_months_in_the_partners_timezone(
        self, api: Api, db: asyncpg.Connection, clock: MovableClock
    ) -> None:
        code, key = await trading_partner(api, timezone="Europe/Berlin")
        member = await api.enrol()
        await earned(api, key, member, "1.00")
        await chain_program(db, api.program)
        created = instant((await get_partner(api, code))["created_at"])
        end = next_month_start(created, "Europe/Berlin")

        assert (await run_job(api, "close-statements"))["counts"] == {"statements": 0, "lines": 0}
        clock.offset = end + timedelta(days=1) - datetime.now(UTC)
        summary = await run_job(api, "close-statements")
        assert summary["job"] == "close-statements"
        assert summary["counts"] == {"statements": 1, "lines": 1}
        [statement] = (await api.get(f"/v1/partners/{code}/statements")).json()["items"]
        assert instant(statement["period_end"]) == end
        assert instant(statement["period_start"]) == created
        assert statement["lines_count"] == 1
        assert (await run_job(api, "close-statements"))["counts"] == {"statements": 0, "lines": 0}

    async def test_closes_each_complete_week(
        self, api: Api, db: asyncpg.Connection, clock: MovableClock
    ) -> None:
        code, _ = await trading_partner(api, settlement_period="week")
        created = instant((await get_partner(api, code))["created_at"])
        first_end = next_monday(created)
        clock.offset = first_end + timedelta(days=8) - datetime.now(UTC)
        summary = await run_job(api, "close-statements")
        assert summary["counts"] == {"statements": 2, "lines": 0}
        items = (await api.get(f"/v1/partners/{code}/statements")).json()["items"]
        assert [instant(item["period_end"]) for item in items] == [first_end + timedelta(days=7), first_end]
        assert instant(items[0]["period_start"]) == first_end

    async def test_as_of_in_the_future_closes_nothing_past_now(self, api: Api) -> None:
        code, _ = await trading_partner(api)
        summary = await run_job(api, "close-statements", datetime.now(UTC) + timedelta(days=70))
        assert summary["counts"] == {"statements": 0, "lines": 0}
        assert (await api.get(f"/v1/partners/{code}/statements")).json()["items"] == []


def flagged(outcomes: list[Any], needle: str) -> list[str]:
    return [example for outcome in outcomes for example in outcome.examples if needle in example]


async def tamper(db: asyncpg.Connection, statement_id: str, assignment: str, *args: Any) -> None:
    async with db.transaction():
        await db.execute("ALTER TABLE partner_statement DISABLE TRIGGER partner_statement_append_only")
        await db.execute(
            f"UPDATE partner_statement SET {assignment} WHERE id = $1", uuid.UUID(statement_id), *args
        )
        await db.execute("ALTER TABLE partner_statement ENABLE TRIGGER partner_statement_append_only")


class TestVerifyStatements:
    async def test_a_closed_statement_is_append_only(self, api: Api, db: asyncpg.Connection) -> None:
        code, _ = await trading_partner(api)
        statement = await closed(api, code, datetime.now(UTC))
        with pytest.raises(asyncpg.PostgresError):
            await db.execute(
                "UPDATE partner_statement SET lines_count = 99 WHERE id = $1", uuid.UUID(statement["id"])
            )
        with pytest.raises(asyncpg.PostgresError):
            await db.execute("DELETE FROM partner_statement WHERE id = $1", uuid.UUID(statement["id"]))
        assert (await api.get(f"/v1/partners/{code}/statements/{statement['id']}")).json() == statement

    async def test_verify_flags_a_tampered_statement(self, api: Api, db: asyncpg.Connection) -> None:
        code, key = await trading_partner(api)
        member = await api.enrol()
        await earned(api, key, member, "1.00")
        await earned(api, key, member, "2.00")
        await chain_program(db, api.program)
        statement = await closed(api, code, datetime.now(UTC))
        sid = statement["id"]
        assert flagged(await verify(db, VERIFY_CHECKS), sid) == []

        original_totals = await db.fetchval(
            "SELECT totals::text FROM partner_statement WHERE id = $1", uuid.UUID(sid)
        )
        try:
            await tamper(db, sid, "lines_count = lines_count + 1")
            assert flagged(await verify(db, VERIFY_CHECKS), sid) != []
        finally:
            await tamper(db, sid, "lines_count = $2", statement["lines_count"])
        assert flagged(await verify(db, VERIFY_CHECKS), sid) == []

        try:
            forged = json.loads(original_totals)
            forged["partner_owes"]["amount"] = "999.99"
            await tamper(db, sid, "totals = $2::jsonb", json.dumps(forged))
            assert flagged(await verify(db, VERIFY_CHECKS), sid) != []
        finally:
            await tamper(db, sid, "totals = $2::jsonb", original_totals)
        assert flagged(await verify(db, VERIFY_CHECKS), sid) == []
        assert (await api.get(f"/v1/partners/{code}/statements/{sid}")).json() == statement


class TestChainSequence:
    async def test_settlement_and_statement_name_the_ledger_head_they_read(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        code, key = await trading_partner(api)
        member = await api.enrol()
        await earned(api, key, member, "1.00")
        await chain_program(db, api.program)
        head = (await api.get("/v1/ledger/head")).json()
        assert head["entries_unchained"] == 0
        assert (await settlement_of(api, code))["chain_sequence"] == head["sequence"]
        statement = await closed(api, code, datetime.now(UTC))
        assert statement["chain_sequence"] == head["sequence"]
