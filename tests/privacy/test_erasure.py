"""POST /v1/members/{id}/erasure: close, then remove personal data; the ledger keeps every entry."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from app.ledger.verify import verify
from tests.support import Api, chain_program, program_id, unique

RULES = {
    "timezone": "UTC",
    "currency": "EUR",
    "earn": {
        "base": {"points": 1, "per": "1.00", "rounding": "floor"},
        "multipliers": [{"id": "birthday", "factor": "2", "when": {"birthday_month": True}}],
    },
}


async def sound(db: asyncpg.Connection) -> dict[str, list[str]]:
    return {outcome.name: outcome.examples for outcome in await verify(db) if outcome.mismatches}


async def erase(api: Api, member: str, *, key: str | None = None, idempotency_key: str = "auto") -> Any:
    return await api.post(
        f"/v1/members/{member}/erasure",
        {"reason": "GDPR request #5521"},
        key=key,
        idempotency_key=unique("erase") if idempotency_key == "auto" else idempotency_key,
    )


async def entries_of(db: asyncpg.Connection, pid: int) -> int:
    return int(await db.fetchval("SELECT count(*) FROM journal_entry WHERE program_id = $1", pid))


async def totals(db: asyncpg.Connection, pid: int) -> dict[str, int]:
    """The program's points by account kind, as any report of the ledger sums them."""
    rows = await db.fetch(
        "SELECT a.kind, sum(p.amount) AS points FROM posting p"
        " JOIN account a ON a.program_id = p.program_id AND a.id = p.account_id"
        " WHERE p.program_id = $1 GROUP BY a.kind",
        pid,
    )
    return {row["kind"]: int(row["points"]) for row in rows}


async def stored_text(db: asyncpg.Connection, pid: int) -> list[str]:
    """Every place an external id could be stored in the program outside the member
    row: event data, kept first responses, order facts."""
    rows = await db.fetch(
        "SELECT data::text AS t FROM event_log WHERE program_id = $1 AND data IS NOT NULL"
        " UNION ALL SELECT convert_from(response_body, 'UTF8') FROM idempotency_record WHERE program_id = $1"
        " UNION ALL SELECT facts::text FROM paid_order WHERE program_id = $1",
        pid,
    )
    return [row["t"] for row in rows]


class TestEraseMember:
    async def test_erases_personal_data_and_keeps_every_entry(self, api: Api, db: asyncpg.Connection) -> None:
        await api.use_rules(RULES)
        referrer = await api.enrol()
        member = await api.enrol(
            unique("erase-me"),
            birthday="1990-04-17",
            metadata={"email": "jo@example.com"},
            referred_by=referrer,
        )
        friend = await api.enrol(referred_by=member)
        assert (await api.award(member, 500)).status_code == 201
        assert (await api.order(member, "30.00", paid_at="2026-04-10T10:00:00Z")).status_code == 201
        assert (await api.transfer(member, friend, 40)).status_code == 201
        redemption = await api.redeem(member, 10)
        assert (await api.reverse(redemption.json()["id"])).status_code == 201
        patched = await api.client.patch(
            f"/v1/members/{member}", json={"metadata": {"phone": "+49 30 1234"}}, headers=api.headers()
        )
        assert patched.status_code == 200, patched.text
        pid = await program_id(db, api.program)
        await chain_program(db, api.program)
        statement = (await api.get(f"/v1/members/{member}/entries", limit=500)).json()["items"]
        before = {item["id"]: (await api.get(f"/v1/entries/{item['id']}")).json() for item in statement}
        available = await api.available(member)
        entries_before = await entries_of(db, pid)
        totals_before = await totals(db, pid)

        response = await erase(api, member)

        assert response.status_code == 201, response.text
        erased = response.json()
        pseudonym = erased["member"]
        key = await db.fetchval(
            "SELECT value FROM program_secret WHERE program_id = $1 AND name = 'erasure'", pid
        )
        assert pseudonym == "erased:" + hmac.new(bytes(key), member.encode(), hashlib.sha256).hexdigest()
        assert key.hex() not in response.text
        assert erased["status"] == "closed"
        assert erased["forfeited_points"] == available
        # the closing's forfeit entry is the only new entry
        assert await entries_of(db, pid) == entries_before + 1
        forfeit = (await api.get(f"/v1/entries/{erased['entry_id']}")).json()
        assert forfeit["kind"] == "forfeit"
        assert forfeit["points"] == available
        # the program's figures move by the forfeit alone
        moved = {"available": -available, "forfeit": available}
        after = await totals(db, pid)
        assert {kind: after.get(kind, 0) - totals_before.get(kind, 0) for kind in after} == {
            **dict.fromkeys(totals_before, 0),
            **moved,
        }
        await chain_program(db, api.program)
        # every entry before keeps its lines and its chain hash
        for entry_id, old in before.items():
            new = (await api.get(f"/v1/entries/{entry_id}")).json()
            assert (new["hash"], new["canonical"], new["sequence"]) == (
                old["hash"],
                old["canonical"],
                old["sequence"],
            )
            assert [(p["account"], p["points"]) for p in new["postings"]] == [
                (p["account"], p["points"]) for p in old["postings"]
            ]
            assert [p["member"] for p in new["postings"]] == [
                pseudonym if p["member"] == member else p["member"] for p in old["postings"]
            ]
        # the member: readable by its pseudonym, closed, nothing personal
        assert (await api.get(f"/v1/members/{member}")).status_code == 404
        view = (await api.get(f"/v1/members/{pseudonym}")).json()
        assert view["status"] == "closed"
        assert (view["birthday"], view["metadata"], view["referred_by"]) == (None, {}, None)
        assert view["balances"]["available"] == 0
        # the members it referred keep their link, to the pseudonym
        assert (await api.get(f"/v1/members/{friend}")).json()["referred_by"] == pseudonym
        # no stored copy of the old id is left: events, kept responses, order facts
        stored = await stored_text(db, pid)
        assert not [text for text in stored if member in text]
        assert not [text for text in stored if "1990-04-17" in text]
        assert (
            await db.fetchval(
                "SELECT count(*) FROM member WHERE program_id = $1 AND external_id = $2", pid, member
            )
            == 0
        )
        # the events: member.erased without personal data; the enrolment names no referrer
        events = (await api.get("/v1/events", limit=500, member=pseudonym)).json()["items"]
        assert member not in json.dumps(events)
        (enrolment,) = [event for event in events if event["type"] == "member.created"]
        assert enrolment["data"] == {**enrolment["data"], "member": pseudonym, "referred_by": None}
        (event,) = [event for event in events if event["type"] == "member.erased"]
        assert event["data"] == {
            "member": pseudonym,
            "erased_at": erased["erased_at"],
            "entry_id": erased["entry_id"],
        }
        friend_events = (await api.get("/v1/events", limit=500, member=friend)).json()["items"]
        assert [e["data"]["referred_by"] for e in friend_events if e["type"] == "member.created"] == [
            pseudonym
        ]
        assert await sound(db) == {}

    async def test_the_export_of_an_erased_member_holds_nothing_personal(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        member = await api.enrol(unique("exp"), birthday="1985-02-03", metadata={"name": "Jo"})
        await api.award(member, 30)
        erased = (await erase(api, member)).json()
        await chain_program(db, api.program)
        response = await api.get(f"/v1/members/{erased['member']}/export")
        assert response.status_code == 200
        assert member not in response.text
        assert "1985-02-03" not in response.text
        document = response.json()
        assert document["erasure"]["reason"] == "GDPR request #5521"
        assert document["erasure"]["entry_id"] == erased["entry_id"]
        assert [change["status"] for change in document["status_history"]] == ["closed"]
        assert len(document["entries"]) == 2

    async def test_re_enrolling_an_erased_id_is_409(self, api: Api, other: Api) -> None:
        member = await api.enrol(unique("again"))
        assert (await erase(api, member)).status_code == 201
        again = await api.post("/v1/members", {"external_id": member}, idempotency_key=None)
        assert again.status_code == 409
        assert again.json()["code"] == "member_erased"
        # another program never erased it
        assert (
            await other.post("/v1/members", {"external_id": member}, idempotency_key=None)
        ).status_code == 201
        # nobody takes the pseudonyms' prefix
        taken = await api.post("/v1/members", {"external_id": "erased:abc"}, idempotency_key=None)
        assert taken.status_code == 422
        assert taken.json()["errors"][0]["field"] == "body.external_id"

    async def test_erasing_again(self, api: Api, db: asyncpg.Connection) -> None:
        member = await api.enrol()
        await api.award(member, 70)
        key = unique("erase")
        first = await erase(api, member, idempotency_key=key)
        assert first.status_code == 201
        pid = await program_id(db, api.program)
        entries = await entries_of(db, pid)
        # the same key: the same answer, nothing more written
        replay = await erase(api, member, idempotency_key=key)
        assert replay.status_code == 201
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.content == first.content
        # another key, by the old id or the pseudonym: 409 member_erased
        for name in (member, first.json()["member"]):
            again = await erase(api, name)
            assert again.status_code == 409, name
            assert again.json()["code"] == "member_erased"
        assert await entries_of(db, pid) == entries

    async def test_concurrent_erasures_erase_once(self, api: Api, db: asyncpg.Connection) -> None:
        member = await api.enrol()
        await api.award(member, 70)
        pid = await program_id(db, api.program)
        entries = await entries_of(db, pid)
        key = unique("erase")
        same = await asyncio.gather(*(erase(api, member, idempotency_key=key) for _ in range(3)))
        assert [response.status_code for response in same] == [201, 201, 201]
        assert len({response.content for response in same}) == 1
        other = await asyncio.gather(*(erase(api, member) for _ in range(3)))
        assert [response.status_code for response in other] == [409, 409, 409]
        assert await entries_of(db, pid) == entries + 1
        assert await db.fetchval("SELECT count(*) FROM member_erasure WHERE program_id = $1", pid) == 1

    async def test_active_holds_are_409_and_nothing_is_written(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        member = await api.enrol(birthday="1990-04-17")
        await api.award(member, 50)
        assert (await api.post(f"/v1/members/{member}/holds", {"points": 20})).status_code == 201
        pid = await program_id(db, api.program)
        entries = await entries_of(db, pid)
        response = await erase(api, member)
        assert response.status_code == 409
        assert response.json()["code"] == "member_has_active_holds"
        view = (await api.get(f"/v1/members/{member}")).json()
        assert (view["status"], view["birthday"]) == ("active", "1990-04-17")
        assert await entries_of(db, pid) == entries

    async def test_a_closed_member_is_erased_without_a_new_entry(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        member = await api.enrol()
        await api.award(member, 25)
        closed = await api.post(f"/v1/members/{member}/close", {"reason": "customer left"})
        assert closed.status_code == 201, closed.text
        pid = await program_id(db, api.program)
        entries = await entries_of(db, pid)
        response = await erase(api, member)
        assert response.status_code == 201
        assert (response.json()["entry_id"], response.json()["forfeited_points"]) == (None, 0)
        assert await entries_of(db, pid) == entries

    async def test_refusals(self, api: Api, other: Api) -> None:
        member = await api.enrol()
        writer = await api.key_with("members:write", "members:read")
        assert (await erase(api, member, key=writer)).status_code == 403
        assert (await erase(other, member)).status_code == 404
        assert (await erase(api, "nobody")).json()["code"] == "member_not_found"
        missing = await api.post(f"/v1/members/{member}/erasure", {"reason": "x"}, idempotency_key=None)
        assert missing.json()["code"] == "idempotency_key_required"
        empty = await api.post(f"/v1/members/{member}/erasure", {"reason": ""})
        assert empty.status_code == 422
        assert (await api.get(f"/v1/members/{member}")).json()["status"] == "active"


class TestTheEventLogGuard:
    """Only an erasure's transaction may rewrite an event's data, and nothing else of it."""

    async def test_data_changes_only_inside_an_erasure(self, api: Api, db: asyncpg.Connection) -> None:
        member = await api.enrol()
        pid = await program_id(db, api.program)
        position = await db.fetchval(
            "SELECT position FROM event_log WHERE program_id = $1 AND type = 'member.created'"
            " AND data->>'member' = $2",
            pid,
            member,
        )
        rewrite = "UPDATE event_log SET data = '{}'::jsonb WHERE program_id = $1 AND position = $2"
        with pytest.raises(asyncpg.PostgresError) as outside:
            await db.execute(rewrite, pid, position)
        assert outside.value.sqlstate == "LP002"
        async with db.transaction():
            await db.execute("SET LOCAL ledger.erasure = 'on'")
            with pytest.raises(asyncpg.PostgresError) as other_column:
                await db.execute(
                    "UPDATE event_log SET type = 'member.updated' WHERE program_id = $1 AND position = $2",
                    pid,
                    position,
                )
            assert other_column.value.sqlstate == "LP002"
        with pytest.raises(asyncpg.PostgresError):
            await db.execute("DELETE FROM event_log WHERE program_id = $1 AND position = $2", pid, position)
        # inside an erasure's transaction, data alone: allowed (rolled back here)
        tx = db.transaction()
        await tx.start()
        try:
            await db.execute("SET LOCAL ledger.erasure = 'on'")
            await db.execute(
                "UPDATE event_log SET data = jsonb_set(data, '{member}', '\"x\"') WHERE program_id = $1"
                " AND position = $2",
                pid,
                position,
            )
            changed = await db.fetchval(
                "SELECT data->>'member' FROM event_log WHERE program_id = $1 AND position = $2", pid, position
            )
        finally:
            await tx.rollback()
        assert changed == "x"


class TestErasureAndReports:
    async def test_the_reports_before_the_erasure_read_the_same_after_it(self, api: Api) -> None:
        """Erasure forfeits the member's points (the only new entry) and rewrites no
        figure: every report for an instant or a period before it answers the same."""
        a, b = await api.enrol(birthday="1991-01-02"), await api.enrol()
        assert (await api.award(a, 70)).status_code == 201
        assert (await api.award(b, 20)).status_code == 201
        assert (await api.redeem(a, 10)).status_code == 201
        start = datetime.now(UTC) - timedelta(days=1)
        cut = datetime.now(UTC)
        span = {"from": start.isoformat(), "to": cut.isoformat()}

        async def figures() -> list[Any]:
            answers = []
            for name, params in (
                ("liability", {"as_of": cut.isoformat()}),
                ("activity", {**span, "granularity": "day"}),
                ("breakage", span),
                ("redemption-cost", span),
                ("overview", span),
            ):
                response = await api.get(f"/v1/reports/{name}", **params)
                assert response.status_code == 200, response.text
                answers.append({k: v for k, v in response.json().items() if k != "chain_sequence"})
            return answers

        before = await figures()
        assert before[0]["outstanding"] == 80
        assert (await erase(api, a)).status_code in (200, 201)
        assert await figures() == before
        now = await api.get("/v1/reports/liability", as_of=datetime.now(UTC).isoformat())
        assert now.json()["outstanding"] == 20  # the erased member's 60 were forfeited
