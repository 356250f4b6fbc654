from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.eventlog.types import check_pattern

Pattern = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(check_pattern)]
Note = Annotated[str, Field(max_length=500, pattern=r"^[^\x00-\x1f\x7f]*$", description="a note for people")]
Url = Annotated[
    str,
    Field(
        min_length=8,
        max_length=2000,
        pattern=r"^[^\x00-\x20\x7f]+$",
        description="where to POST events: https (and, outside production, http to loopback)",
        examples=["https://crm.example.com/hooks/loyalty"],
    ),
]
Patterns = Annotated[
    list[Pattern],
    Field(
        min_length=1,
        max_length=50,
        description="event types to send: exact types, families such as `points.*`, or `*`",
        examples=[["points.*", "tier.changed"]],
    ),
]


class WebhookIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://crm.example.com/hooks/loyalty",
                    "events": ["points.*", "tier.changed"],
                    "description": "CRM balance mirror",
                }
            ]
        },
    )

    url: Url
    events: Patterns
    description: Note | None = Field(
        default=None, description="a note for people", examples=["CRM balance mirror"]
    )


class WebhookPatch(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"status": "disabled"}, {"events": ["*"]}]}
    )

    url: Url | None = Field(default=None, description="where to send events from now on")
    events: Patterns | None = Field(default=None, description="event types to send from now on")
    status: Literal["enabled", "disabled"] | None = Field(
        default=None, description="disabled: nothing is sent; deliveries wait until it is enabled again"
    )
    description: Note | None = Field(default=None, description="a note for people")


class WebhookOut(BaseModel):
    id: uuid.UUID = Field(description="the webhook's id", examples=["0193b1a2-7c1e-7d2a-9a4f-5a1e2f3b4c5d"])
    url: str = Field(description="where events are sent", examples=["https://crm.example.com/hooks/loyalty"])
    events: list[str] = Field(
        description="the event types it receives", examples=[["points.*", "tier.changed"]]
    )
    description: str | None = Field(description="a note for people", examples=["CRM balance mirror"])
    status: Literal["enabled", "disabled"] = Field(
        description="enabled: events are sent; disabled: none are", examples=["enabled"]
    )
    disabled_reason: str | None = Field(
        description="why the service disabled it (gone: the receiver answered 410; failing: every attempt "
        "failed for 5 days; or by request)",
        examples=[None],
    )
    created_at: datetime = Field(description="when it was created (UTC)", examples=["2026-11-24T10:00:00Z"])
    updated_at: datetime = Field(description="when it last changed (UTC)", examples=["2026-11-24T10:00:00Z"])


class WebhookCreated(WebhookOut):
    secret: str = Field(
        description="the signing secret (Standard Webhooks, `whsec_...`): shown only now",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )


class WebhookPage(BaseModel):
    items: list[WebhookOut] = Field(description="webhooks, newest first")
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page", examples=[None])


class AttemptOut(BaseModel):
    attempt: int = Field(description="1 for the first try", examples=[1])
    attempted_at: datetime = Field(description="when it was sent (UTC)", examples=["2026-11-24T10:00:01Z"])
    status_code: int | None = Field(description="the receiver's answer (null: none)", examples=[200])
    duration_ms: int = Field(description="how long until the answer (or the failure)", examples=[41])
    error: str | None = Field(description="what went wrong, if it did", examples=[None])


class DeliveryOut(BaseModel):
    id: int = Field(description="the delivery's id", examples=[981])
    event_id: uuid.UUID = Field(
        description="the event (its webhook-id header)", examples=["0193b1a2-7c1e-7d2a-9a4f-5a1e2f3b4c5d"]
    )
    event_type: str = Field(description="the event's type", examples=["points.award"])
    event_sequence: int = Field(description="the event's sequence in the program's log", examples=[17])
    status: Literal["pending", "succeeded", "failed"] = Field(
        description="pending: to be tried (again); succeeded: a 2xx came back; failed: no more attempts",
        examples=["succeeded"],
    )
    next_attempt_at: datetime | None = Field(
        description="when it is tried next (pending only)", examples=[None]
    )
    created_at: datetime = Field(description="when it was queued (UTC)", examples=["2026-11-24T10:00:00Z"])
    attempts: list[AttemptOut] = Field(description="every attempt so far, oldest first")


class DeliveryPage(BaseModel):
    items: list[DeliveryOut] = Field(description="newest first")
    next_cursor: str | None = Field(description="pass as ?cursor= for older deliveries", examples=[None])


class ReplayIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"after_sequence": 1200, "until_sequence": 1300}]}
    )

    after_sequence: int = Field(ge=0, le=2**62, description="redeliver events with a sequence above this")
    until_sequence: int | None = Field(default=None, ge=1, le=2**62, description="up to this one, inclusive")


class ReplayOut(BaseModel):
    deliveries: int = Field(description="events queued again for this endpoint", examples=[42])
