from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field, JsonValue


class EventOut(BaseModel):
    id: uuid.UUID = Field(
        description="event id: the same in the log and on every webhook delivery (webhook-id)",
        examples=["0193b1a2-7c1e-7d2a-9a4f-5a1e2f3b4c5d"],
    )
    type: str = Field(description="what happened", examples=["points.award"])
    sequence: int = Field(
        description="its place in the program's event log: 1, 2, 3, ... with no gap", examples=[17]
    )
    occurred_at: datetime = Field(description="when it happened (UTC)", examples=["2026-11-24T10:00:00Z"])
    created_at: datetime = Field(
        description="when the ledger recorded it (UTC)", examples=["2026-11-24T10:00:00Z"]
    )
    data: dict[str, JsonValue] = Field(
        description="points.*: the entry as GET /v1/entries/{id} shows it; other types: see docs/events.md",
        examples=[{"member": "cust-10042", "from": None, "to": "silver"}],
    )


class EventPage(BaseModel):
    items: list[EventOut] = Field(description="events in sequence order")
    next_cursor: str | None = Field(
        description="pass as ?cursor= for the next page; null when this page reached the end of the "
        "log (then ask again later with ?after= the last sequence you saw)",
        examples=[None],
    )


class ChainHeadOut(BaseModel):
    sequence: int = Field(description="the last chained entry's sequence (0: none yet)", examples=[1042])
    hash: str | None = Field(
        description="its hash (hex); publish or keep it: every entry before it is bound to it",
        examples=["9f2c4e0b7a1d3c5e8f6a2b4d6c8e0f1a3b5d7e9f1a2c4e6b8d0f2a4c6e8b0d2f"],
    )
    entries_unchained: int = Field(
        description="entries committed but not yet chained (the chainer runs within seconds)", examples=[0]
    )
