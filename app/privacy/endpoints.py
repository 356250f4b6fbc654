"""HTTP routes for a member's personal data: thin, the rules live in service.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response, StreamingResponse

from app.context import Context, require
from app.errors import Forbidden, error_responses
from app.fields import MemberPath
from app.http import api_router
from app.idempotency import IdempotencyKey, IdempotencyKeyRequired, IdempotencyKeyReused, keyed_request
from app.ledger.errors import MemberNotFound
from app.members.errors import MemberErased
from app.principal import Principal
from app.privacy import service
from app.privacy.schemas import ErasureIn, ErasureOut, MemberExport

router = api_router(prefix="/v1/members", tags=["members"])
Admin = Annotated[Principal, Depends(require("admin"))]


@router.get(
    "/{member}/export",
    response_model=None,
    operation_id="exportMember",
    responses={
        200: {"model": MemberExport, "description": "everything held about the member, as one JSON document"},
        **error_responses(Forbidden, MemberNotFound),
    },
)
async def export_member(member: MemberPath, context: Context, principal: Admin) -> StreamingResponse:
    """Everything the service holds about a member, as one JSON document (a data
    subject's access request, GDPR art. 15): the profile and balances, lots, every
    entry with its postings, holds, orders with their refunds, conversions, tier and
    tier history, and every event that concerns the member. Scope `admin`: it holds
    more than any one read scope grants (events need `events:read`). Streamed, each
    section read a page at a time, so a member with 100,000 entries is never held in
    memory at once; `complete: true` comes last, and a document without it was cut
    short (retry). Sections are read one after another, not as one snapshot: a
    change made while it streams may show in one section and not another (export a
    closed or frozen member for a settled picture)."""
    chunks = await service.export(context, principal, member)
    return StreamingResponse(chunks, media_type="application/json")


@router.post(
    "/{member}/erasure",
    status_code=201,
    response_model=ErasureOut,
    operation_id="eraseMember",
    responses=error_responses(
        Forbidden,
        IdempotencyKeyRequired,
        IdempotencyKeyReused,
        MemberNotFound,
        MemberErased,
        *service.CLOSING_ERRORS,
    ),
)
async def erase_member(
    http: Request,
    member: MemberPath,
    body: ErasureIn,
    context: Context,
    key: IdempotencyKey,
    principal: Admin,
) -> Response:
    """Erase a member's personal data (GDPR art. 17). First the member is closed as
    `POST /v1/members/{id}/close` closes it (409 `member_has_active_holds` while points
    are held; its available points forfeited in one `forfeit` entry, the only entry an
    erasure writes; a member closed before is erased as it is). Then its birthday,
    metadata and the link to the member who referred it are removed, and its external
    id is replaced by a pseudonym (`erased:` and an HMAC-SHA256 of the id under a
    secret of the program that never leaves the service), everywhere it was stored:
    the member, its events, the kept answers to its entries' Idempotency-Keys. Every
    entry stays, with its postings and hash: the ledger names members by internal id.
    From then on the member is read by its pseudonym; enrolling its old id again is
    409 `member_erased`, and so is erasing it again (a retry with the same
    Idempotency-Key replays the answer instead). Writes a `member.erased` event that
    holds no personal data."""
    result = await service.erase(context, keyed_request(http, principal, key, body), member, body)
    return result.to_response()
