"""A member's status (POST /v1/members/{id}/status), its history, the lift-statuses
job, and closing (POST /v1/members/{id}/close, close_member())."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.db import Database
from app.ledger.verify import verify
from app.members.status import close_member
from tests.support import Api, chain_program, database_url, program_id, unique


def problem(response: httpx.Response) -> tuple[int, str | None]:
    return response.status_code, response.json().get("code")


async def set_status(
    api: Api,
    member: str,
    status: str,
    *,
    key: str | None = None,
    idempotency_key: str | None = "auto",
    **fields: Any,
) -> httpx.Response:
    return await api.post(
        f"/v1/members/{member}/status",
        {"status": status, "reason": "review", **fields},
        key=key,
        idempotency_key=idempotency_key,
    )


async def close(api: Api, member: str, **fields: Any) -> httpx.Response:
    return await api.post(f"/v1/members/{member}/close", {"reason": "asked to leave"}, **fields)


async def history(api: Api, member: str, **params: Any) -> dict[str, Any]:
    response = await api.get(f"/v1/members/{member}/status-history", **params)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def events(db: asyncpg.Connection, api: Api, type_: str) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT data FROM event_log WHERE program_id = $1 AND type = $2 ORDER BY created_at, id",
        await program_id(db, api.program),
        type_,
    )
    return [json.loads(row["data"]) for row in rows]


async def key_id(db: asyncpg.Connection, api: Api) -> str:
    """The id of the program's admin key (the one new_program() made)."""
    value = await db.fetchval(
        "SELECT k.id FROM api_key k JOIN program p ON p.id = k.program_id"
        " WHERE p.code = $1 ORDER BY k.created_at LIMIT 1",
        api.program,
    )
    return str(value)


async def run_job(api: Api, as_of: datetime) -> dict[str, Any]:
    response = await api.post("/v1/jobs/lift-statuses", {"as_of": as_of.isoformat()}, idempotency_key=None)
    assert response.status_code == 200, response.text
    counts: dict[str, Any] = response.json()["counts"]
    return counts


async def sound(db: asyncpg.Connection) -> None:
    assert [outcome.name for outcome in await verify(db) if outcome.mismatches] == []


class TestChangeStatus:
    async def test_freezes_a_member_and_keeps_the_change(self, api: Api, db: asyncpg.Connection) -> None:
        member = await api.enrol()
        until = datetime.now(UTC) + timedelta(days=3)
        response = await set_status(api, member, "frozen", until=until.isoformat())
        assert response.status_code == 201, response.text
        change = response.json()
        assert change["member"] == member
        assert (change["status"], change["previous_status"], change["reason"]) == (
            "frozen",
            "active",
            "review",
        )
        assert datetime.fromisoformat(change["until"]) == until.replace(microsecond=until.microsecond)
        assert change["actor_key_id"] == await key_id(db, api)
        assert change["entry_id"] is None
        view = (await api.get(f"/v1/members/{member}")).json()
        assert view["status"] == "frozen"
        assert datetime.fromisoformat(view["status_until"]) == until
        assert (await history(api, member))["items"] == [change]
        assert await events(db, api, "member.status_changed") == [
            {
                "member": member,
                "status": "frozen",
                "previous_status": "active",
                "reason": "review",
                "until": change["until"].replace("+00:00", "Z"),
                "actor_key_id": change["actor_key_id"],
                "entry_id": None,
            }
        ]
        listed = (await api.get("/v1/members", status="frozen")).json()["items"]
        assert [item["external_id"] for item in listed] == [member]

    async def test_a_retry_replays_and_changes_nothing_more(self, api: Api) -> None:
        member = await api.enrol()
        key = unique("idem")
        first = await set_status(api, member, "suspended", idempotency_key=key)
        again = await set_status(api, member, "suspended", idempotency_key=key)
        assert (again.status_code, again.json()) == (201, first.json())
        assert again.headers["Idempotent-Replayed"] == "true"
        assert len((await history(api, member))["items"]) == 1
        reused = await api.post(
            f"/v1/members/{member}/status", {"status": "active", "reason": "x"}, idempotency_key=key
        )
        assert problem(reused) == (422, "idempotency_key_reused")

    async def test_reactivating_clears_until(self, api: Api) -> None:
        member = await api.enrol()
        await set_status(api, member, "suspended", until=(datetime.now(UTC) + timedelta(days=1)).isoformat())
        back = await set_status(api, member, "active")
        assert (back.json()["status"], back.json()["previous_status"], back.json()["until"]) == (
            "active",
            "suspended",
            None,
        )
        view = (await api.get(f"/v1/members/{member}")).json()
        assert (view["status"], view["status_until"]) == ("active", None)

    async def test_refuses_bad_input_and_writes_nothing(self, api: Api) -> None:
        member = await api.enrol()
        past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        assert problem(await set_status(api, member, "closed")) == (422, "validation_error")
        assert problem(await set_status(api, member, "paused")) == (422, "validation_error")
        assert problem(await set_status(api, member, "frozen", until=past)) == (422, "validation_error")
        assert problem(await set_status(api, member, "active", until=future)) == (422, "validation_error")
        no_reason = await api.post(f"/v1/members/{member}/status", {"status": "frozen"})
        assert problem(no_reason) == (422, "validation_error")
        no_key = await api.post(
            f"/v1/members/{member}/status", {"status": "frozen", "reason": "x"}, idempotency_key=None
        )
        assert problem(no_key) == (400, "idempotency_key_required")
        assert problem(await set_status(api, "nobody-here", "frozen")) == (404, "member_not_found")
        assert (await history(api, member))["items"] == []
        assert (await api.get(f"/v1/members/{member}")).json()["status"] == "active"

    async def test_needs_members_write_and_the_members_program(self, api: Api, other: Api) -> None:
        member = await api.enrol()
        reader = await api.key_with("members:read")
        assert problem(await set_status(api, member, "frozen", key=reader)) == (403, "forbidden")
        assert problem(await set_status(other, member, "frozen")) == (404, "member_not_found")
        writer = await api.key_with("members:write")
        assert (await set_status(api, member, "frozen", key=writer)).status_code == 201

    async def test_a_closed_member_keeps_its_status(self, api: Api) -> None:
        member = await api.enrol()
        assert (await close(api, member)).status_code == 201
        refused = await set_status(api, member, "active")
        assert problem(refused) == (409, "member_closed")
        assert f"member {member} is closed" in refused.json()["detail"]
        assert (await api.get(f"/v1/members/{member}")).json()["status"] == "closed"

    async def test_a_frozen_member_may_not_keep_a_tier_with_points(self, api: Api) -> None:
        await api.use_rules(
            {
                "earn": {"base": {"points": 1, "per": "1"}},
                "tiers": [{"code": "gold", "name": "Gold", "rank": 1, "qualify": {"orders": 1}}],
                "tier_policy": {"keep_with_points": {"gold": 100}},
            }
        )
        member = await api.enrol()
        assert (await api.order(member, "500.00")).status_code == 201
        await set_status(api, member, "frozen")
        refused = await api.post(f"/v1/members/{member}/tier/keep", {})
        assert problem(refused) == (409, "member_not_eligible")
        assert await api.available(member) == 500


class TestStatusHistory:
    async def test_pages_newest_first(self, api: Api) -> None:
        member = await api.enrol()
        for status in ("frozen", "suspended", "active", "frozen"):
            assert (await set_status(api, member, status)).status_code == 201
        first = await history(api, member, limit=3)
        assert [item["status"] for item in first["items"]] == ["frozen", "active", "suspended"]
        second = await history(api, member, limit=3, cursor=first["next_cursor"])
        assert [item["previous_status"] for item in second["items"]] == ["active"]
        assert second["next_cursor"] is None

    async def test_unknown_members_and_other_programs_are_404(self, api: Api, other: Api) -> None:
        member = await api.enrol()
        assert problem(await api.get("/v1/members/nobody-here/status-history")) == (404, "member_not_found")
        assert problem(await other.get(f"/v1/members/{member}/status-history")) == (404, "member_not_found")
        writer = await api.key_with("points:earn")
        assert problem(await api.get(f"/v1/members/{member}/status-history", key=writer)) == (
            403,
            "forbidden",
        )
        bad = await api.get(f"/v1/members/{member}/status-history", cursor="nope")
        assert bad.status_code == 400


class TestLiftStatuses:
    async def test_returns_members_to_active_at_until(self, api: Api, db: asyncpg.Connection) -> None:
        frozen, suspended, staying = await api.enrol(), await api.enrol(), await api.enrol()
        soon = datetime.now(UTC) + timedelta(hours=1)
        await set_status(api, frozen, "frozen", until=soon.isoformat())
        await set_status(api, suspended, "suspended", until=(soon + timedelta(hours=1)).isoformat())
        await set_status(api, staying, "frozen")

        assert await run_job(api, soon - timedelta(seconds=1)) == {"members": 0}
        assert await run_job(api, soon) == {"members": 1}
        assert (await api.get(f"/v1/members/{frozen}")).json()["status"] == "active"
        assert (await api.get(f"/v1/members/{suspended}")).json()["status"] == "suspended"
        lifted = (await history(api, frozen))["items"][0]
        assert (lifted["status"], lifted["previous_status"], lifted["actor_key_id"]) == (
            "active",
            "frozen",
            None,
        )
        assert datetime.fromisoformat(lifted["changed_at"]) == soon
        assert await run_job(api, soon + timedelta(hours=2)) == {"members": 1}
        assert await run_job(api, soon + timedelta(hours=2)) == {"members": 0}
        assert (await api.get(f"/v1/members/{staying}")).json()["status"] == "frozen"
        assert [event["member"] for event in await events(db, api, "member.status_changed")][-2:] == [
            frozen,
            suspended,
        ]
        assert (await api.award(frozen, 5)).status_code == 201
        assert (await api.redeem(frozen, 5)).status_code == 201

    async def test_a_status_changed_again_is_not_lifted_at_the_old_until(self, api: Api) -> None:
        member = await api.enrol()
        soon = datetime.now(UTC) + timedelta(hours=1)
        await set_status(api, member, "frozen", until=soon.isoformat())
        await set_status(api, member, "suspended", until=(soon + timedelta(days=1)).isoformat())
        assert await run_job(api, soon) == {"members": 0}
        assert (await api.get(f"/v1/members/{member}")).json()["status"] == "suspended"

    async def test_needs_admin(self, api: Api) -> None:
        writer = await api.key_with("members:write")
        response = await api.post("/v1/jobs/lift-statuses", {}, key=writer, idempotency_key=None)
        assert problem(response) == (403, "forbidden")

    @pytest.mark.usefixtures("fresh_settings")
    async def test_runs_from_the_cli(self, api: Api) -> None:
        member = await api.enrol()
        soon = datetime.now(UTC) + timedelta(hours=1)
        await set_status(api, member, "suspended", until=soon.isoformat())
        env = {"LEDGER_DATABASE_URL": database_url(), "LEDGER_ENV": "test"}
        args = ["jobs", "run", "lift-statuses", "--program", api.program, "--as-of", soon.isoformat()]
        result = await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)
        assert result.exit_code == 0, result.output
        assert "1 members" in result.output
        assert (await api.get(f"/v1/members/{member}")).json()["status"] == "active"


PENDING_RULES: dict[str, Any] = {"earn": {"base": {"points": 1, "per": "1"}, "pending_days": 14}}


class TestClose:
    async def test_forfeits_available_now_and_pending_when_it_would_activate(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        await api.use_rules(PENDING_RULES)
        member = await api.enrol()
        assert (await api.award(member, 300)).status_code == 201
        paid_at = datetime.now(UTC) - timedelta(days=1)
        assert (await api.order(member, "80.00", paid_at=paid_at.isoformat())).status_code == 201
        assert await api.balances(member) == {"available": 300, "pending": 80, "held": 0, "debt": 0}

        response = await close(api, member)
        assert response.status_code == 201, response.text
        closed = response.json()
        assert (closed["member"], closed["status"], closed["reason"]) == (member, "closed", "asked to leave")
        assert (closed["forfeited_points"], closed["pending_points"]) == (300, 80)
        entry = (await api.get(f"/v1/entries/{closed['entry_id']}")).json()
        assert (entry["kind"], entry["points"], entry["reason"]) == ("forfeit", 300, "asked to leave")
        assert sorted(
            ((p["member"], p["account"], p["points"]) for p in entry["postings"]), key=str
        ) == sorted([(member, "available", -300), (None, "forfeit", 300)], key=str)
        assert await api.balances(member) == {"available": 0, "pending": 80, "held": 0, "debt": 0}
        view = (await api.get(f"/v1/members/{member}")).json()  # closed members stay readable
        assert (view["status"], view["expiring"]) == ("closed", [])
        change = (await history(api, member))["items"][0]
        assert (change["status"], change["entry_id"], change["id"]) == (
            "closed",
            closed["entry_id"],
            closed["status_change_id"],
        )

        activated = await api.post(
            "/v1/jobs/activate-pending",
            {"as_of": (paid_at + timedelta(days=14)).isoformat()},
            idempotency_key=None,
        )
        assert activated.json()["counts"] == {"credits": 1, "points": 80}
        assert await api.balances(member) == {"available": 0, "pending": 0, "held": 0, "debt": 0}
        statement = (await api.get(f"/v1/members/{member}/entries")).json()["items"]
        assert [(item["kind"], item["points"], item["pending_points"]) for item in statement[:2]] == [
            ("forfeit", 0, -80),
            ("forfeit", -300, 0),
        ]
        pid = await program_id(db, api.program)
        forfeited = await db.fetchval(
            "SELECT sum(p.amount) FROM posting p JOIN account a ON a.program_id = p.program_id"
            " AND a.id = p.account_id WHERE p.program_id = $1 AND a.kind = 'forfeit'",
            pid,
        )
        assert forfeited == 380
        assert [event["member"] for event in await events(db, api, "member.status_changed")] == [member]
        await chain_program(db, api.program)  # entries become points.* events as they are chained
        chained = (await api.get("/v1/events", type="points.forfeit")).json()["items"]
        assert sorted(event["data"]["points"] for event in chained) == [80, 300]
        assert {event["data"]["kind"] for event in chained} == {"forfeit"}
        await sound(db)

    async def test_refused_while_holds_are_active(self, api: Api, db: asyncpg.Connection) -> None:
        member = await api.enrol()
        await api.award(member, 100)
        hold = await api.post(f"/v1/members/{member}/holds", {"points": 40})
        refused = await close(api, member)
        assert problem(refused) == (409, "member_has_active_holds")
        assert "40 points on hold" in refused.json()["detail"]
        assert (await api.get(f"/v1/members/{member}")).json()["status"] == "active"
        assert await api.balances(member) == {"available": 60, "pending": 0, "held": 40, "debt": 0}
        assert (await history(api, member))["items"] == []
        released = await api.post(f"/v1/holds/{hold.json()['hold_id']}/release", {})
        assert released.status_code == 201
        closed = await close(api, member)
        assert closed.json()["forfeited_points"] == 100
        await sound(db)

    async def test_is_idempotent_and_closes_once(self, api: Api) -> None:
        member = await api.enrol()
        await api.award(member, 50)
        key = unique("idem")
        first = await close(api, member, idempotency_key=key)
        again = await close(api, member, idempotency_key=key)
        assert (again.status_code, again.json()) == (201, first.json())
        assert again.headers["Idempotent-Replayed"] == "true"
        twice = await close(api, member)
        assert problem(twice) == (409, "member_closed")
        kinds = [item["kind"] for item in (await api.get(f"/v1/members/{member}/entries")).json()["items"]]
        assert kinds == ["forfeit", "award"]

    async def test_with_nothing_to_forfeit_writes_no_entry(self, api: Api) -> None:
        member = await api.enrol()
        closed = (await close(api, member)).json()
        assert (closed["forfeited_points"], closed["pending_points"], closed["entry_id"]) == (0, 0, None)
        assert (await api.get(f"/v1/members/{member}/entries")).json()["items"] == []

    async def test_a_closed_member_accepts_no_change(self, api: Api) -> None:
        member = await api.enrol()
        await close(api, member)
        patched = await api.client.patch(
            f"/v1/members/{member}", json={"metadata": {"a": 1}}, headers=api.headers()
        )
        assert problem(patched) == (409, "member_closed")
        assert problem(await api.award(member, 5)) == (409, "member_closed")
        override = await api.client.put(
            f"/v1/members/{member}/tier", json={"code": None, "reason": "x"}, headers=api.headers()
        )
        assert problem(override) == (409, "member_closed")

    async def test_bad_requests(self, api: Api, other: Api) -> None:
        member = await api.enrol()
        assert problem(await close(api, "nobody-here")) == (404, "member_not_found")
        assert problem(await close(other, member)) == (404, "member_not_found")
        reader = await api.key_with("members:read")
        assert problem(await close(api, member, key=reader)) == (403, "forbidden")
        assert problem(await close(api, member, idempotency_key=None)) == (400, "idempotency_key_required")
        empty = await api.post(f"/v1/members/{member}/close", {})
        assert problem(empty) == (422, "validation_error")
        assert (await api.get(f"/v1/members/{member}")).json()["status"] == "active"


class TestCloseMemberService:
    async def test_closes_in_the_callers_transaction_and_returns_the_forfeit(
        self, api: Api, database: Database, db: asyncpg.Connection
    ) -> None:
        member, empty = await api.enrol(), await api.enrol()
        await api.award(member, 70)
        pid = await program_id(db, api.program)
        now = datetime.now(UTC)
        async with database.pool.acquire() as connection, connection.transaction():
            forfeit = await close_member(
                connection, program_id=pid, member=member, reason="erasure", actor_key_id=None, now=now
            )
            nothing = await close_member(
                connection, program_id=pid, member=empty, reason="erasure", actor_key_id=None, now=now
            )
        assert forfeit is not None
        assert forfeit.points == 70
        assert nothing is None
        entry = (await api.get(f"/v1/entries/{forfeit.entry_id}")).json()
        assert (entry["kind"], entry["points"]) == ("forfeit", 70)
        assert (await api.get(f"/v1/members/{empty}")).json()["status"] == "closed"

    async def test_rolls_back_with_the_callers_transaction(
        self, api: Api, database: Database, db: asyncpg.Connection
    ) -> None:
        member = await api.enrol()
        await api.award(member, 70)
        pid = await program_id(db, api.program)

        async def fails_after_closing() -> None:
            async with database.pool.acquire() as connection, connection.transaction():
                await close_member(
                    connection,
                    program_id=pid,
                    member=member,
                    reason="x",
                    actor_key_id=None,
                    now=datetime.now(UTC),
                )
                raise RuntimeError("the caller failed after")

        with pytest.raises(RuntimeError):
            await fails_after_closing()
        assert (await api.get(f"/v1/members/{member}")).json()["status"] == "active"
        assert await api.available(member) == 70


class TestReferralToAMemberWhoMayNotEarn:
    async def test_the_referee_earns_and_a_closed_referrer_gets_nothing(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        await api.use_rules(
            {
                "earn": {"base": {"points": 1, "per": "1"}},
                "events": {"referral": {"referrer": 200, "referee": 100}},
            }
        )
        referrer = await api.enrol()
        member = await api.enrol(referred_by=referrer)
        assert (await close(api, referrer)).status_code == 201
        response = await api.post(
            f"/v1/members/{member}/events", {"type": "referral", "occurred_at": datetime.now(UTC).isoformat()}
        )
        assert response.status_code == 201, response.text
        assert await api.available(member) == 100
        assert await api.balances(referrer) == {"available": 0, "pending": 0, "held": 0, "debt": 0}
        statement = (await api.get(f"/v1/members/{member}/entries")).json()["items"]
        lines = {line["rule"]: line for line in statement[0]["explanation"]}
        assert [line["points"] for rule, line in lines.items() if rule.endswith(":referrer")] == [0]
        await sound(db)
