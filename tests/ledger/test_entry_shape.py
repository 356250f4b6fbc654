"""ledger_post() renders the entry response in SQL; it must stay exactly EntryOut."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.ledger.schemas import EntryOut
from tests.support import Api


async def test_every_posting_kind_answers_an_entry_out(api: Api) -> None:
    alice, bob = await api.enrol(), await api.enrol()
    expires = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    bodies = [
        await api.award(alice, 100, expires_at=expires, metadata={"nested": {"a": [1, "x", None]}}),
        await api.redeem(alice, 10, reward="mug", order_id="o-9"),
        await api.transfer(alice, bob, 5),
    ]
    bodies.append(await api.reverse(bodies[1].json()["id"]))
    for response in bodies:
        assert response.status_code == 201, response.text
        assert response.headers["content-type"] == "application/json"
        entry = EntryOut.model_validate_json(response.content)
        assert set(response.json()) == set(EntryOut.model_fields)
        assert sum(p.points for p in entry.postings) == 0
        assert entry.points == sum(p.points for p in entry.postings if p.points > 0)
        assert entry.recorded_at.tzinfo is not None
    award = EntryOut.model_validate_json(bodies[0].content)
    assert award.metadata == {"nested": {"a": [1, "x", None]}}
    assert award.expires_at == datetime.fromisoformat(expires)
    redemption = bodies[1].json()
    assert (redemption["reason"], redemption["order_id"]) == ("mug", "o-9")
    transfer = EntryOut.model_validate_json(bodies[2].content)
    assert [b.member for b in transfer.balances] == sorted([alice, bob])  # byte order
