"""HTTP routes for webhooks: thin, the work is in service.py and dispatcher.py."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import Depends, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from app.context import Context, require
from app.errors import Forbidden, error_responses
from app.http import api_router
from app.pagination import Cursor, Limit
from app.principal import Principal
from app.webhooks import service
from app.webhooks.schemas import (
    DeliveryPage,
    ReplayIn,
    ReplayOut,
    WebhookCreated,
    WebhookIn,
    WebhookOut,
    WebhookPage,
    WebhookPatch,
)

router = api_router(prefix="/v1/webhooks", tags=["webhooks"])
Writer = Annotated[Principal, Depends(require("webhooks:write"))]
WebhookPath = Annotated[
    uuid.UUID, Path(description="the webhook's id", examples=["0193b1a2-7c1e-7d2a-9a4f-5a1e2f3b4c5d"])
]


class TestSent(BaseModel):
    event_id: uuid.UUID = Field(
        description="the webhook.test event's id (its webhook-id); see it in the deliveries",
        examples=["0193b1a2-7c1e-7d2a-9a4f-5a1e2f3b4c5d"],
    )


@router.post(
    "",
    status_code=201,
    response_model=WebhookCreated,
    operation_id="createWebhook",
    responses=error_responses(Forbidden, service.WebhookUrlRefused),
)
async def create_webhook(body: WebhookIn, context: Context, principal: Writer) -> WebhookCreated:
    """Send the program's events matching `events` to `url`, signed with the secret in
    this answer (shown only now). Events from now on; older ones with replay."""
    return await service.create(context, principal, body)


@router.get("", response_model=WebhookPage, operation_id="listWebhooks", responses=error_responses(Forbidden))
async def list_webhooks(
    context: Context, principal: Writer, limit: Limit = 50, cursor: Cursor = None
) -> WebhookPage:
    """The program's webhooks, newest first (secrets are never shown again)."""
    return await service.listing(context, principal, limit=limit, cursor=cursor)


@router.get(
    "/{webhook_id}",
    response_model=WebhookOut,
    operation_id="getWebhook",
    responses=error_responses(Forbidden, service.WebhookNotFound),
)
async def get_webhook(webhook_id: WebhookPath, context: Context, principal: Writer) -> WebhookOut:
    return await service.get(context, principal, webhook_id)


@router.patch(
    "/{webhook_id}",
    response_model=WebhookOut,
    operation_id="updateWebhook",
    responses=error_responses(Forbidden, service.WebhookNotFound, service.WebhookUrlRefused),
)
async def update_webhook(
    webhook_id: WebhookPath, body: WebhookPatch, context: Context, principal: Writer
) -> WebhookOut:
    """Change the URL, the event patterns, the description, or the status. A disabled
    webhook gets no new deliveries; enable it and replay what it missed."""
    return await service.patch(context, principal, webhook_id, body)


@router.delete(
    "/{webhook_id}",
    status_code=204,
    response_class=Response,
    operation_id="deleteWebhook",
    responses=error_responses(Forbidden, service.WebhookNotFound),
)
async def delete_webhook(webhook_id: WebhookPath, context: Context, principal: Writer) -> Response:
    """Stop sending to it for good (its delivery record stays)."""
    await service.delete(context, principal, webhook_id)
    return Response(status_code=204)


@router.post(
    "/{webhook_id}/rotate-secret",
    response_model=WebhookCreated,
    operation_id="rotateWebhookSecret",
    responses=error_responses(Forbidden, service.WebhookNotFound),
)
async def rotate_secret(webhook_id: WebhookPath, context: Context, principal: Writer) -> WebhookCreated:
    """A new signing secret, shown only now. For 24 hours every delivery carries two
    signatures, one per secret, so receivers can switch without losing one."""
    return await service.rotate_secret(context, principal, webhook_id)


@router.post(
    "/{webhook_id}/test",
    status_code=202,
    response_model=TestSent,
    operation_id="testWebhook",
    responses=error_responses(Forbidden, service.WebhookNotFound),
)
async def test_webhook(webhook_id: WebhookPath, context: Context, principal: Writer) -> TestSent:
    """Send this webhook (only) a `webhook.test` event, through the event log like any
    other: it shows in its deliveries within seconds."""
    return TestSent(event_id=await service.send_test(context, principal, webhook_id))


@router.get(
    "/{webhook_id}/deliveries",
    response_model=DeliveryPage,
    operation_id="listWebhookDeliveries",
    responses=error_responses(Forbidden, service.WebhookNotFound),
)
async def list_deliveries(
    webhook_id: WebhookPath,
    context: Context,
    principal: Writer,
    status: Annotated[
        Literal["pending", "succeeded", "failed"] | None,
        Query(description="only deliveries in this state", examples=["failed"]),
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> DeliveryPage:
    """Every delivery to this webhook, newest first, with each attempt: status code,
    duration, error, and when the next one is due."""
    return await service.deliveries(context, principal, webhook_id, status=status, limit=limit, cursor=cursor)


@router.post(
    "/{webhook_id}/replay",
    status_code=202,
    response_model=ReplayOut,
    operation_id="replayWebhook",
    responses=error_responses(Forbidden, service.WebhookNotFound, service.ReplayTooLarge),
)
async def replay_webhook(
    webhook_id: WebhookPath, body: ReplayIn, context: Context, principal: Writer
) -> ReplayOut:
    """Deliver again this webhook's events with a sequence above `after_sequence` (up to
    `until_sequence`, inclusive), with the same event ids, matching its current patterns."""
    return await service.replay(context, principal, webhook_id, body)
