"""Four-eyes approvals: an award above `limits.award_approval_above` waits (202)
for an admin key other than the requester's, which posts it or drops it."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import asyncpg
import httpx

from app.ledger.verify import verify
from tests.support import Api, MovableClock, entries_with_key, new_program, program_id, unique

BASE: dict[str, Any] = {"earn": {"base": {"points": 1, "per": "1", "rounding": "floor"}}}
FOUR_EYES: dict[str, Any] = {**BASE, "limits": {"award_approval_above": 1000}}


async def ask(
    api: Api, member: str, points: int, *, key: str | None = None, idem: str | None = None
) -> httpx.Response:
    return await api.post(
        f"/v1/members/{member}/awards",
        {"points": points, "reason": "claim 4711", "metadata": {"ticket": "4711"}},
        key=key,
        idempotency_key=idem or unique("award"),
    )


async def pending(api: Api, member: str, points: int = 5000, *, key: str | None = None) -> dict[str, Any]:
    response = await ask(api, member, points, key=key)
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


async def decide(api: Api, approval_id: str, how: str, key: str, reason: str = "checked") -> httpx.Response:
    return await api.post(
        f"/v1/approvals/{approval_id}/{how}", {"reason": reason}, key=key, idempotency_key=None
    )


async def setup(api: Api) -> tuple[str, str, str]:
    """Four-eyes rules, a member, the agent key that asks and a second admin key."""
    await api.use_rules(FOUR_EYES)
    member = await api.enrol()
    agent = await api.key_with("points:adjust")
    approver = await api.key_with("admin")
    return member, agent, approver


def per_key(points: int) -> dict[str, Any]:
    return {**BASE, "limits": {"award_approval_above": 1000, "award_points_per_key_per_day": points}}


async def assert_sound(db: asyncpg.Connection) -> None:
    assert {o.name: o.examples for o in await verify(db) if o.mismatches} == {}


class TestRequest:
    async def test_an_award_above_the_threshold_waits_and_posts_nothing(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        member, agent, _ = await setup(api)
        response = await ask(api, member, 1001, key=agent, idem="big-1")
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["status"] == "pending_approval"
        assert (body["member"], body["points"], body["idempotency_key"]) == (member, 1001, "big-1")
        assert body["award"]["reason"] == "claim 4711"
        assert body["request_id"] == response.headers["X-Request-ID"]
        assert body["entry_id"] is None
        assert await api.available(member) == 0
        assert await entries_with_key(db, api.program, "big-1") == 0
        # a retry replays the 202 and asks for nothing more
        again = await ask(api, member, 1001, key=agent, idem="big-1")
        assert (again.status_code, again.content) == (202, response.content)
        assert again.headers["Idempotent-Replayed"] == "true"
        listed = (await api.get("/v1/approvals")).json()["items"]
        assert [item["approval_id"] for item in listed] == [body["approval_id"]]

    async def test_at_the_threshold_the_award_posts(self, api: Api) -> None:
        member, agent, _ = await setup(api)
        assert (await ask(api, member, 1000, key=agent)).status_code == 201
        assert await api.available(member) == 1000

    async def test_zero_sends_every_award_for_approval(self, api: Api) -> None:
        await api.use_rules({**BASE, "limits": {"award_approval_above": 0}})
        member = await api.enrol()
        assert (await ask(api, member, 1)).status_code == 202

    async def test_an_unknown_member_is_404(self, api: Api) -> None:
        await api.use_rules(FOUR_EYES)
        response = await ask(api, "nobody", 5000)
        assert (response.status_code, response.json()["code"]) == (404, "member_not_found")

    async def test_the_maximum_comes_before_approval(self, api: Api) -> None:
        await api.use_rules({**BASE, "limits": {"award_approval_above": 1000, "award_max_points": 2000}})
        member = await api.enrol()
        response = await ask(api, member, 2001)
        assert (response.status_code, response.json()["code"]) == (422, "limit_exceeded")
        assert (await api.get("/v1/approvals")).json()["items"] == []

    async def test_the_request_is_an_event(self, api: Api, db: asyncpg.Connection) -> None:
        member, agent, _ = await setup(api)
        body = await pending(api, member, key=agent)
        pid = await program_id(db, api.program)
        data = await db.fetchval(
            "SELECT data FROM event_log WHERE program_id = $1 AND type = 'award.approval_requested'", pid
        )
        assert json.loads(data)["approval_id"] == body["approval_id"]


class TestApprove:
    async def test_another_admin_key_posts_the_award_once(self, api: Api, db: asyncpg.Connection) -> None:
        member, agent, approver = await setup(api)
        body = await pending(api, member, 5000, key=agent)
        approved = await decide(api, body["approval_id"], "approve", approver, "ticket checked")
        assert approved.status_code == 200, approved.text
        result = approved.json()
        assert (result["status"], result["decision_reason"]) == ("approved", "ticket checked")
        assert result["decided_by"] is not None
        assert result["decided_by"] != result["requested_by"]
        assert await api.available(member) == 5000
        # traceable: the entry names the approval, the approval the request and the approver
        entry = (await api.get(f"/v1/entries/{result['entry_id']}")).json()
        assert entry["kind"] == "award"
        assert entry["metadata"] == {"ticket": "4711", "approval_id": body["approval_id"]}
        pid = await program_id(db, api.program)
        actor = await db.fetchval(
            "SELECT actor_key_id::text FROM journal_entry WHERE program_id = $1 AND id = $2",
            pid,
            result["entry_id"],
        )
        assert actor == result["decided_by"]
        # again: the same answer, nothing more posted
        again = await decide(api, body["approval_id"], "approve", approver, "ticket checked")
        assert (again.status_code, again.json()) == (200, result)
        assert await api.available(member) == 5000
        types = await db.fetch(
            "SELECT type FROM event_log WHERE program_id = $1 AND type LIKE 'award.%' ORDER BY position", pid
        )
        assert [row["type"] for row in types] == ["award.approval_requested", "award.approval_approved"]
        await assert_sound(db)

    async def test_approving_at_once_many_times_posts_once(self, api: Api, db: asyncpg.Connection) -> None:
        member, agent, approver = await setup(api)
        other_approver = await api.key_with("admin")
        body = await pending(api, member, 3000, key=agent)
        responses = await asyncio.gather(
            *(decide(api, body["approval_id"], "approve", k) for k in [approver, other_approver] * 5)
        )
        assert {r.status_code for r in responses} == {200}
        assert len({r.json()["entry_id"] for r in responses}) == 1
        assert await api.available(member) == 3000
        pid = await program_id(db, api.program)
        assert (
            await db.fetchval(
                "SELECT count(*) FROM journal_entry WHERE program_id = $1 AND kind = 'award'", pid
            )
            == 1
        )

    async def test_the_requesting_key_may_not_decide(self, api: Api) -> None:
        await api.use_rules(FOUR_EYES)
        member = await api.enrol()
        asker = await api.key_with("admin")
        body = await pending(api, member, key=asker)
        for how in ("approve", "reject"):
            refused = await decide(api, body["approval_id"], how, asker)
            assert (refused.status_code, refused.json()["code"]) == (403, "approval_by_requester")
        assert (await api.get(f"/v1/approvals/{body['approval_id']}")).json()["status"] == "pending_approval"
        assert await api.available(member) == 0

    async def test_admin_scope_is_needed(self, api: Api) -> None:
        member, agent, _ = await setup(api)
        body = await pending(api, member, key=agent)
        other_agent = await api.key_with("points:adjust")
        refused = await decide(api, body["approval_id"], "approve", other_agent)
        assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
        for path in ("/v1/approvals", f"/v1/approvals/{body['approval_id']}"):
            response = await api.get(path, key=other_agent)
            assert (response.status_code, response.json()["code"]) == (403, "forbidden")

    async def test_limits_at_approval_time_leave_it_pending(self, api: Api) -> None:
        member, agent, approver = await setup(api)
        body = await pending(api, member, 5000, key=agent)
        await api.use_rules(
            {**BASE, "limits": {"award_approval_above": 1000, "award_points_per_key_per_day": 4000}}
        )
        refused = await decide(api, body["approval_id"], "approve", approver)
        assert refused.status_code == 422, refused.text
        assert (refused.json()["code"], refused.json()["limit"]) == (
            "limit_exceeded",
            "award_points_per_key_per_day",
        )
        assert (await api.get(f"/v1/approvals/{body['approval_id']}")).json()["status"] == "pending_approval"
        await api.use_rules(
            {**BASE, "limits": {"award_approval_above": 1000, "award_points_per_key_per_day": 6000}}
        )
        assert (await decide(api, body["approval_id"], "approve", approver)).status_code == 200
        # the approved award counted against the key that asked for it
        over = await ask(api, member, 1001, key=agent)
        assert over.status_code == 202  # still waits: approval is before the daily limit
        assert (await ask(api, member, 1000, key=agent)).status_code == 201  # 5000 + 1000: all of it
        refused = await ask(api, member, 1, key=agent)
        assert (refused.status_code, refused.json()["remaining"]) == (422, 0)


class TestReject:
    async def test_rejecting_drops_the_award(self, api: Api, db: asyncpg.Connection) -> None:
        member, agent, approver = await setup(api)
        body = await pending(api, member, key=agent)
        rejected = await decide(api, body["approval_id"], "reject", approver, "no claim on file")
        assert rejected.status_code == 200, rejected.text
        assert (rejected.json()["status"], rejected.json()["entry_id"]) == ("rejected", None)
        again = await decide(api, body["approval_id"], "reject", approver, "no claim on file")
        assert (again.status_code, again.json()) == (200, rejected.json())
        conflict = await decide(api, body["approval_id"], "approve", approver)
        assert (conflict.status_code, conflict.json()["code"]) == (409, "approval_already_decided")
        assert await api.available(member) == 0
        pid = await program_id(db, api.program)
        assert (
            await db.fetchval(
                "SELECT count(*) FROM event_log WHERE program_id = $1 AND type = 'award.approval_rejected'",
                pid,
            )
            == 1
        )

    async def test_an_approved_one_cannot_be_rejected(self, api: Api) -> None:
        member, agent, approver = await setup(api)
        body = await pending(api, member, key=agent)
        assert (await decide(api, body["approval_id"], "approve", approver)).status_code == 200
        conflict = await decide(api, body["approval_id"], "reject", approver)
        assert (conflict.status_code, conflict.json()["code"]) == (409, "approval_already_decided")
        assert await api.available(member) == 5000

    async def test_a_reason_is_required(self, api: Api) -> None:
        member, agent, approver = await setup(api)
        body = await pending(api, member, key=agent)
        response = await api.post(
            f"/v1/approvals/{body['approval_id']}/reject", {}, key=approver, idempotency_key=None
        )
        assert (response.status_code, response.json()["code"]) == (422, "validation_error")


class TestExpiry:
    async def test_after_seven_days_it_reads_expired_and_cannot_be_decided(
        self, api: Api, clock: MovableClock
    ) -> None:
        member, agent, approver = await setup(api)
        body = await pending(api, member, key=agent)
        clock.offset = timedelta(days=7, seconds=-5)
        assert (await api.get(f"/v1/approvals/{body['approval_id']}")).json()["status"] == "pending_approval"
        clock.offset = timedelta(days=7, seconds=5)
        assert (await api.get(f"/v1/approvals/{body['approval_id']}")).json()["status"] == "expired"
        for how in ("approve", "reject"):
            refused = await decide(api, body["approval_id"], how, approver)
            assert (refused.status_code, refused.json()["code"]) == (409, "approval_expired")
        assert await api.available(member) == 0
        expired = (await api.get("/v1/approvals", status="expired")).json()["items"]
        assert [item["approval_id"] for item in expired] == [body["approval_id"]]
        assert (await api.get("/v1/approvals", status="pending_approval")).json()["items"] == []


class TestRead:
    async def test_list_filters_by_status_and_pages_newest_first(self, api: Api) -> None:
        member, agent, approver = await setup(api)
        made = [(await pending(api, member, 2000 + i, key=agent))["approval_id"] for i in range(5)]
        assert (await decide(api, made[0], "approve", approver)).status_code == 200
        assert (await decide(api, made[1], "reject", approver)).status_code == 200
        first = (await api.get("/v1/approvals", limit=2)).json()
        second = (await api.get("/v1/approvals", limit=2, cursor=first["next_cursor"])).json()
        third = (await api.get("/v1/approvals", limit=2, cursor=second["next_cursor"])).json()
        seen = [i["approval_id"] for page in (first, second, third) for i in page["items"]]
        assert seen == list(reversed(made))
        assert third["next_cursor"] is None
        waiting = (await api.get("/v1/approvals", status="pending_approval")).json()["items"]
        assert [i["approval_id"] for i in waiting] == list(reversed(made[2:]))
        approved = (await api.get("/v1/approvals", status="approved")).json()["items"]
        assert [i["approval_id"] for i in approved] == [made[0]]
        bad = await api.get("/v1/approvals", status="maybe")
        assert (bad.status_code, bad.json()["code"]) == (422, "validation_error")
        bad_cursor = await api.get("/v1/approvals", cursor="nonsense")
        assert (bad_cursor.status_code, bad_cursor.json()["code"]) == (400, "invalid_cursor")

    async def test_unknown_and_other_programs_approvals_are_404(
        self, api: Api, client: httpx.AsyncClient
    ) -> None:
        member, agent, _ = await setup(api)
        body = await pending(api, member, key=agent)
        other = await new_program(client)
        for response in (
            await other.get(f"/v1/approvals/{body['approval_id']}"),
            await decide(other, body["approval_id"], "approve", other.key),
            await decide(other, body["approval_id"], "reject", other.key),
            await api.get("/v1/approvals/0193b1a2-7c1e-7d2a-9a4f-5a1e2f3b4c5d"),
        ):
            assert (response.status_code, response.json()["code"]) == (404, "approval_not_found")
        assert (await other.get("/v1/approvals")).json()["items"] == []

    async def test_no_key_is_401(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/v1/approvals")
        assert (response.status_code, response.json()["code"]) == (401, "unauthorized")
