"""The request id: taken from the caller's X-Request-ID (1-128 printable ASCII
characters, no spaces) or made here, returned on every response, written in problem
documents (`request_id`) and in every log line of the request."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

HEADER = "X-Request-ID"
_USABLE = re.compile(r"^[\x21-\x7e]{1,128}$")

current: ContextVar[str | None] = ContextVar("request_id", default=None)


def accept(sent: bytes | None) -> str:
    """The caller's id if it is usable, else a new one."""
    if sent is not None:
        text = sent.decode("latin-1")
        if _USABLE.match(text):
            return text
    return uuid.uuid4().hex
