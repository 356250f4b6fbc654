"""Read-your-writes with a read replica: the `Ledger-Position` a write answers, and
the `Ledger-Min-Position` a read sends back.

With LEDGER_READ_DATABASE_URL set, reads that tolerate lag are served by a
streaming replica (app/db.py, `Database.read`). A caller that must see its own
write sends the write's `Ledger-Position` back on the read as
`Ledger-Min-Position`: the replica serves it once it has replayed that position,
else (after LEDGER_READ_WAIT_MS) the primary does.

The value is opaque to callers: today `1.` and the primary's WAL position after
the commit in 16 hex digits; the leading `1.` names the format, so a later one can
be told apart. Without a replica every read is the primary's and writes answer no
position (it would cost a round trip per write for nothing to wait on); a read may
still send one and is served as always.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated

from fastapi import Depends, Header
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.db import ReadFrom
from app.errors import AppError

logger = logging.getLogger(__name__)

POSITION_HEADER = "Ledger-Position"
MIN_POSITION_HEADER = "Ledger-Min-Position"
_FORMAT = re.compile(r"^1\.([0-9a-f]{16})$")
# Methods that may write: their successful answers carry the position.
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class MalformedLedgerPosition(AppError):
    status, code, title = 400, "malformed_ledger_position", "Ledger-Min-Position is not a position"


def encode(position: int) -> str:
    """A WAL position as callers see it (opaque to them)."""
    return f"1.{position:016x}"


def decode(text: str) -> int:
    """The WAL position a Ledger-Position value names; 400 `malformed_ledger_position`
    for anything this service did not write."""
    found = _FORMAT.match(text)
    if found is None:
        raise MalformedLedgerPosition(
            f"send back the value of a {POSITION_HEADER} header exactly as it came (got {text[:40]!r})"
        )
    return int(found.group(1), 16)


async def replica_read(
    min_position: Annotated[
        str | None,
        Header(
            alias=MIN_POSITION_HEADER,
            description=f"the `{POSITION_HEADER}` a write answered, sent back as it came: the answer "
            "then shows that write (and everything before it). Without it the answer may lag the "
            "latest writes by the read replica's delay",
            examples=["1.0000000003a1c2f8"],
        ),
    ] = None,
) -> ReadFrom:
    """A read that tolerates the replica's lag, or waits for the position sent."""
    return ReadFrom(replica=True, after=None if min_position is None else decode(min_position))


# An endpoint that reads from the replica takes this (and documents the header).
ReplicaRead = Annotated[ReadFrom, Depends(replica_read)]


class WritePositions:
    """Plain ASGI middleware: a successful answer to a method that may write
    (POST, PUT, PATCH, DELETE) carries `Ledger-Position`, the primary's WAL position
    read after the request's transactions committed (every unit of work commits
    before the endpoint answers), idempotent replays included. Only with a read
    replica configured; if the position can't be read, the answer goes without it
    (the write is done; the caller's next read is then lag-tolerant)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _WRITES:
            await self.app(scope, receive, send)
            return
        context = getattr(scope["app"].state, "context", None)
        if context is None or not context.db.has_replica:
            await self.app(scope, receive, send)
            return

        async def send_with_position(message: Message) -> None:
            if message["type"] == "http.response.start" and 200 <= message["status"] < 300:
                try:
                    position = await context.db.wal_position()
                except Exception:  # the answer stands without it
                    logger.warning(
                        "no %s for %s %s", POSITION_HEADER, scope["method"], scope["path"], exc_info=True
                    )
                else:
                    header = (POSITION_HEADER.lower().encode(), encode(position).encode())
                    message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_position)
