from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from app.fields import Instant, Metadata
from app.rules.document import EventType


class EventIn(BaseModel):
    """A non-order activity of the member; the rules decide what it earns."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "type": "check_in",
                    "occurred_at": "2026-11-24T08:00:00Z",
                    "attributes": {"store": "berlin-mitte"},
                }
            ]
        },
    )

    type: EventType = Field(
        description="sign_up, review, check_in, referral, or a type the program's rules define",
        examples=["check_in"],
    )
    occurred_at: Instant = Field(
        description="when it happened (RFC 3339, not in the future); its local day counts for limits",
        examples=["2026-11-25T08:00:00Z"],
    )
    attributes: Metadata | None = Field(
        default=None, description="free-form JSON object kept with the event (at most 8 KiB)"
    )
