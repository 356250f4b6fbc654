from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from app.rules import RulesDocument


class RulesVersionOut(BaseModel):
    version: int = Field(description="version number, from 1 up, per program", examples=[3])
    active: bool = Field(description="whether orders and events earn under this version now", examples=[True])
    created_at: datetime = Field(description="when it was stored (UTC)", examples=["2026-11-25T10:00:00Z"])
    activated_at: datetime | None = Field(
        description="when it was last switched on (UTC)", examples=["2026-11-25T10:05:00Z"]
    )
    document: RulesDocument = Field(description="the rules, with every default filled in")


class RulesVersionSummary(BaseModel):
    version: int = Field(description="version number, from 1 up, per program", examples=[3])
    active: bool = Field(description="whether orders and events earn under this version now", examples=[True])
    created_at: datetime = Field(description="when it was stored (UTC)", examples=["2026-11-25T10:00:00Z"])
    activated_at: datetime | None = Field(
        description="when it was last switched on (UTC)", examples=["2026-11-25T10:05:00Z"]
    )


class RulesVersionPage(BaseModel):
    items: list[RulesVersionSummary] = Field(description="versions, newest first")
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page", examples=[None])
